import Kernels

/// A frozen dense layer: weight [out, in] (PyTorch orientation) and bias [out].
public struct LinearWeights: Sendable {
    public let weight: Tensor
    public let bias: Tensor

    public init(weight: Tensor, bias: Tensor) {
        precondition(weight.shape.count == 2 && bias.shape == [weight.shape[0]],
                     "linear weight \(weight.shape) and bias \(bias.shape) do not fit")
        self.weight = weight; self.bias = bias
    }

    public var outFeatures: Int { weight.shape[0] }
    public var inFeatures: Int { weight.shape[1] }
}

/// A frozen LayerNorm: gamma and beta [C].
public struct LayerNormWeights: Sendable {
    public let gamma: Tensor
    public let beta: Tensor

    public init(gamma: Tensor, beta: Tensor) {
        precondition(gamma.shape.count == 1 && gamma.shape == beta.shape, "LayerNorm gamma/beta shapes differ")
        self.gamma = gamma; self.beta = beta
    }
}

/// The sizes of one BERT encoder layer.
public struct EncoderLayerConfiguration: Sendable, Equatable {
    public var hiddenSize: Int
    public var headCount: Int
    public var intermediateSize: Int
    public var layerNormEpsilon: Float

    public init(hiddenSize: Int, headCount: Int, intermediateSize: Int, layerNormEpsilon: Float) {
        precondition(hiddenSize % headCount == 0, "hidden \(hiddenSize) not divisible by \(headCount) heads")
        self.hiddenSize = hiddenSize; self.headCount = headCount
        self.intermediateSize = intermediateSize; self.layerNormEpsilon = layerNormEpsilon
    }

    /// all-MiniLM-L6-v2: hidden 384, 12 heads, FFN 1536, eps 1e-12.
    public static let miniLM = EncoderLayerConfiguration(hiddenSize: 384, headCount: 12,
                                                         intermediateSize: 1536, layerNormEpsilon: 1e-12)

    public var headSize: Int { hiddenSize / headCount }
}

/// The frozen weights of one post-LN BERT encoder layer, by role (no names: the loader maps
/// `encoder.layer.N.attention.self.query.*` and friends onto these fields).
public struct EncoderLayerWeights: Sendable {
    public let query: LinearWeights
    public let key: LinearWeights
    public let value: LinearWeights
    public let attentionOutput: LinearWeights
    public let attentionLayerNorm: LayerNormWeights
    public let intermediate: LinearWeights
    public let output: LinearWeights
    public let outputLayerNorm: LayerNormWeights

    public init(query: LinearWeights, key: LinearWeights, value: LinearWeights,
                attentionOutput: LinearWeights, attentionLayerNorm: LayerNormWeights,
                intermediate: LinearWeights, output: LinearWeights, outputLayerNorm: LayerNormWeights) {
        self.query = query; self.key = key; self.value = value; self.attentionOutput = attentionOutput
        self.attentionLayerNorm = attentionLayerNorm; self.intermediate = intermediate
        self.output = output; self.outputLayerNorm = outputLayerNorm
    }

    /// The dense layer a LoRA target sits on.
    public func linear(_ target: LoRATarget) -> LinearWeights {
        switch target {
        case .query: query
        case .key: key
        case .value: value
        case .attentionOutput: attentionOutput
        case .intermediate: intermediate
        case .output: output
        }
    }

    /// Checks every shape against `configuration` (programmer error if they disagree; the
    /// loader validates files before building weights).
    public func validate(_ c: EncoderLayerConfiguration) {
        let h = c.hiddenSize, f = c.intermediateSize
        for (name, l, o, i) in [("query", query, h, h), ("key", key, h, h), ("value", value, h, h),
                                ("attention output", attentionOutput, h, h),
                                ("intermediate", intermediate, f, h), ("output", output, h, f)] {
            precondition(l.outFeatures == o && l.inFeatures == i,
                         "\(name) weight is [\(l.outFeatures), \(l.inFeatures)], expected [\(o), \(i)]")
        }
        precondition(attentionLayerNorm.gamma.count == h && outputLayerNorm.gamma.count == h,
                     "LayerNorm size differs from hidden \(h)")
    }
}
