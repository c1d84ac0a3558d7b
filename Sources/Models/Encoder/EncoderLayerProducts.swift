import Kernels

/// The frozen dense layers of one encoder layer as their products run: query, key and value
/// stacked to [3C, C] (one product x·Wqkvᵀ instead of three thin ones), each layer in the
/// encoder's precision. Built once per loaded encoder and shared by every `EncoderLayer` made
/// on those weights, so installing adapters never repacks them.
public final class EncoderLayerProducts: Sendable {
    public let precision: Precision
    let qkv: FrozenLinear
    let attentionOutput: FrozenLinear
    let intermediate: FrozenLinear
    let output: FrozenLinear

    public init(weights: EncoderLayerWeights, precision: Precision) throws(KernelError) {
        self.precision = precision
        let stacked = Self.stack([weights.query, weights.key, weights.value])
        qkv = try FrozenLinear(weight: stacked.weight, bias: stacked.bias, precision: precision)
        func frozen(_ l: LinearWeights) throws(KernelError) -> FrozenLinear {
            try FrozenLinear(weight: l.weight, bias: l.bias, precision: precision)
        }
        attentionOutput = try frozen(weights.attentionOutput)
        intermediate = try frozen(weights.intermediate)
        output = try frozen(weights.output)
    }

    /// Float32 products (nothing to pack, so nothing can fail).
    public static func float32(_ weights: EncoderLayerWeights) -> EncoderLayerProducts {
        do { return try EncoderLayerProducts(weights: weights, precision: .fp32) } catch {
            preconditionFailure("float32 products need no packing: \(error)")
        }
    }

    /// The dense layer of a target outside the stacked query/key/value.
    func linear(_ target: LoRATarget) -> FrozenLinear {
        switch target {
        case .attentionOutput: attentionOutput
        case .intermediate: intermediate
        case .output: output
        case .query, .key, .value: preconditionFailure("query, key and value run stacked")
        }
    }

    /// Rows of several dense layers stacked into one (weights [ΣO, I], biases [ΣO]).
    static func stack(_ layers: [LinearWeights]) -> LinearWeights {
        let i = layers[0].inFeatures, o = layers.reduce(0) { $0 + $1.outFeatures }
        let w = Tensor(shape: [o, i]), b = Tensor(shape: [o])
        var row = 0
        for l in layers {
            (w.data + row * i).update(from: l.weight.data, count: l.outFeatures * i)
            (b.data + row).update(from: l.bias.data, count: l.outFeatures)
            row += l.outFeatures
        }
        return LinearWeights(weight: w, bias: b)
    }
}
