import Kernels

/// One post-LN BERT encoder layer with frozen base weights and optional LoRA adapters on any
/// of its six linear layers, forward and backward.
///
///     q, k, v = x·W{q,k,v}ᵀ + b (+ s·x·Aᵀ·Bᵀ)          [N, C]
///     c = Attention(q, k, v; key mask)                  [N, C]
///     h = LayerNorm₁(c·Woᵀ + bo (+LoRA) + x)            [N, C]
///     f = h·Wiᵀ + bi (+LoRA),  g = GELU(f)              [N, F]
///     y = LayerNorm₂(g·Wdᵀ + bd (+LoRA) + h)            [N, C]
///
/// Shape glossary: B sequences, T tokens, N = B·T rows, C hidden, H heads, D = C/H, F FFN
/// size, r LoRA rank. Forward saves into `Activations`; backward accumulates the adapters'
/// `gradA`/`gradB` and, when a buffer is given, dInput (the layer below needs it; the lowest
/// trained layer does not, which saves the three dX products of q, k, v).
/// The base weights and LayerNorms are frozen: they get no gradient.
public final class EncoderLayer: @unchecked Sendable {
    public let configuration: EncoderLayerConfiguration
    public let weights: EncoderLayerWeights
    /// Adapters by target (only the configured targets are present).
    public let adapters: [LoRATarget: LoRAAdapter]
    /// s of every adapter of this layer.
    public let loraScale: Float
    /// Dropout probability on the adapters' input path (0 = off).
    public let loraDropout: Float

    /// A layer without adapters (frozen, forward only useful).
    public init(configuration: EncoderLayerConfiguration, weights: EncoderLayerWeights) {
        weights.validate(configuration)
        self.configuration = configuration; self.weights = weights
        adapters = [:]; loraScale = 0; loraDropout = 0
    }

    /// A layer with the given adapters; `lora.targets` must match the adapters' keys.
    public init(configuration: EncoderLayerConfiguration, weights: EncoderLayerWeights,
                lora: LoRAConfiguration, adapters: [LoRATarget: LoRAAdapter]) {
        weights.validate(configuration)
        precondition(Set(adapters.keys) == Set(lora.targets), "adapters \(adapters.keys.sorted()) differ from targets \(lora.targets)")
        for (t, a) in adapters {
            let l = weights.linear(t)
            precondition(a.inFeatures == l.inFeatures && a.outFeatures == l.outFeatures && a.rank == lora.rank,
                         "adapter for \(t) has the wrong shape")
        }
        self.configuration = configuration; self.weights = weights; self.adapters = adapters
        loraScale = lora.scale; loraDropout = lora.dropout
    }

    /// Fresh adapters (B = 0) for every target of `lora`, A seeded per target from `seed`.
    public static func freshAdapters(configuration c: EncoderLayerConfiguration, lora: LoRAConfiguration,
                                     seed: UInt64) -> [LoRATarget: LoRAAdapter] {
        var result: [LoRATarget: LoRAAdapter] = [:]
        for t in lora.targets {
            let (i, o) = t == .intermediate ? (c.hiddenSize, c.intermediateSize)
                : t == .output ? (c.intermediateSize, c.hiddenSize) : (c.hiddenSize, c.hiddenSize)
            result[t] = LoRAAdapter(inFeatures: i, outFeatures: o, rank: lora.rank,
                                    seed: seed &+ UInt64(t.index + 1) &* 0xD1B5_4A32_D192_ED03)
        }
        return result
    }

    /// y = layer(x). `activations` must be sized for (batch, tokens) of this call; `mask` is
    /// [N] (1 real, 0 padding) or nil; `dropoutSeed` picks this step's dropout masks.
    public func forward(_ x: UnsafePointer<Float>, mask: UnsafePointer<Int32>?, activations a: Activations,
                        into y: UnsafeMutablePointer<Float>, dropoutSeed: UInt64 = 0, threads: Int) {
        let n = a.rows, c = configuration.hiddenSize, f = configuration.intermediateSize
        a.dropoutSeed = dropoutSeed
        project(.query, x, into: a.q.data, a, n)
        project(.key, x, into: a.k.data, a, n)
        project(.value, x, into: a.v.data, a, n)
        Attention.forward(q: a.q.data, k: a.k.data, v: a.v.data, keyMask: mask, shape: a.attentionShape,
                          probabilities: a.probabilities.data, into: a.context.data, threads: threads)
        project(.attentionOutput, a.context.data, into: a.attentionSum.data, a, n)
        add(x, into: a.attentionSum.data, count: n * c)
        LayerNorm.forward(a.attentionSum.data, gamma: weights.attentionLayerNorm.gamma.data,
                          beta: weights.attentionLayerNorm.beta.data, epsilon: configuration.layerNormEpsilon,
                          into: a.hidden.data, mean: a.mean1.data, rstd: a.rstd1.data,
                          rows: n, columns: c, threads: threads)
        project(.intermediate, a.hidden.data, into: a.preActivation.data, a, n)
        GELU.forward(a.preActivation.data, into: a.activated.data, count: n * f, threads: threads)
        project(.output, a.activated.data, into: a.outputSum.data, a, n)
        add(a.hidden.data, into: a.outputSum.data, count: n * c)
        LayerNorm.forward(a.outputSum.data, gamma: weights.outputLayerNorm.gamma.data,
                          beta: weights.outputLayerNorm.beta.data, epsilon: configuration.layerNormEpsilon,
                          into: y, mean: a.mean2.data, rstd: a.rstd2.data, rows: n, columns: c, threads: threads)
    }

    /// Accumulates adapter gradients and (if `dInput` is non-nil) dX from dY, for the forward
    /// call that filled `activations` with input `x`.
    public func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, activations a: Activations,
                         dInput: UnsafeMutablePointer<Float>?, threads: Int) {
        let n = a.rows, c = configuration.hiddenSize, f = configuration.intermediateSize
        let g = a.gradients
        // y = LN₂(o + h): dOutputSum, which is also the residual gradient into h.
        g.dOutputSum.zero()
        LayerNorm.backward(dY: dY, x: a.outputSum.data, gamma: weights.outputLayerNorm.gamma.data,
                           mean: a.mean2.data, rstd: a.rstd2.data, dX: g.dOutputSum.data,
                           dGamma: nil, dBeta: nil, rows: n, columns: c, threads: threads)
        g.dActivated.zero()
        projectBackward(.output, dY: g.dOutputSum.data, x: a.activated.data, dX: g.dActivated.data, a, n)
        g.dPreActivation.zero()
        GELU.backward(dY: g.dActivated.data, x: a.preActivation.data, dX: g.dPreActivation.data,
                      count: n * f, threads: threads)
        g.dHidden.copy(from: g.dOutputSum)
        projectBackward(.intermediate, dY: g.dPreActivation.data, x: a.hidden.data, dX: g.dHidden.data, a, n)
        // h = LN₁(c·Woᵀ + x): dAttentionSum is also the residual gradient into x.
        g.dAttentionSum.zero()
        LayerNorm.backward(dY: g.dHidden.data, x: a.attentionSum.data, gamma: weights.attentionLayerNorm.gamma.data,
                           mean: a.mean1.data, rstd: a.rstd1.data, dX: g.dAttentionSum.data,
                           dGamma: nil, dBeta: nil, rows: n, columns: c, threads: threads)
        g.dContext.zero()
        projectBackward(.attentionOutput, dY: g.dAttentionSum.data, x: a.context.data, dX: g.dContext.data, a, n)
        g.dQ.zero(); g.dK.zero(); g.dV.zero()
        Attention.backward(dOut: g.dContext.data, q: a.q.data, k: a.k.data, v: a.v.data,
                           probabilities: a.probabilities.data, shape: a.attentionShape,
                           dQ: g.dQ.data, dK: g.dK.data, dV: g.dV.data, threads: threads)
        if let dInput { add(g.dAttentionSum.data, into: dInput, count: n * c) }
        projectBackward(.query, dY: g.dQ.data, x: x, dX: dInput, a, n)
        projectBackward(.key, dY: g.dK.data, x: x, dX: dInput, a, n)
        projectBackward(.value, dY: g.dV.data, x: x, dX: dInput, a, n)
    }

    // MARK: - One linear layer, with or without its adapter

    private func dropout(_ t: LoRATarget, _ a: Activations) -> Dropout? {
        guard loraDropout > 0 else { return nil }
        return Dropout(probability: loraDropout, seed: a.dropoutSeed &+ UInt64(t.index + 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    private func project(_ t: LoRATarget, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                         _ a: Activations, _ n: Int) {
        let l = weights.linear(t)
        guard let adapter = adapters[t], let saved = a.lora[t] else {
            Linear.forward(x, weight: l.weight.data, bias: l.bias.data, into: y, rows: n,
                           inFeatures: l.inFeatures, outFeatures: l.outFeatures)
            return
        }
        LoRALinear.forward(x, rows: n, shape: adapter.shape, weight: l.weight.data, bias: l.bias.data,
                           loraA: adapter.loraA.data, loraB: adapter.loraB.data, scale: loraScale,
                           dropout: dropout(t, a), xDropped: saved.xDropped?.data, xa: saved.xa.data, into: y)
    }

    private func projectBackward(_ t: LoRATarget, dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                 dX: UnsafeMutablePointer<Float>?, _ a: Activations, _ n: Int) {
        let l = weights.linear(t)
        guard let adapter = adapters[t], let saved = a.lora[t] else {
            Linear.backward(dY: dY, x: x, weight: l.weight.data, dX: dX, dWeight: nil, dBias: nil,
                            rows: n, inFeatures: l.inFeatures, outFeatures: l.outFeatures)
            return
        }
        LoRALinear.backward(dY: dY, x: x, rows: n, shape: adapter.shape, weight: l.weight.data,
                            loraA: adapter.loraA.data, loraB: adapter.loraB.data, scale: loraScale,
                            dropout: dropout(t, a), xDropped: saved.xDropped.map { UnsafePointer($0.data) },
                            xa: saved.xa.data, dLoraA: adapter.gradA.data, dLoraB: adapter.gradB.data,
                            dX: dX, scratch: a.gradients.loraScratch.data)
    }

    private func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }
}
