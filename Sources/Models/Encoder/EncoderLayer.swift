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
    /// The frozen products (stacked query/key/value and the other dense layers) in the
    /// encoder's precision; float32 unless the caller passes prepared ones.
    public let products: EncoderLayerProducts
    /// The adapters laid out for inference (`withInferencePanels`); empty otherwise, and then
    /// an inference pass lays them out at each product.
    private let inferencePanels: [LoRATarget: LoRALinear.InferencePanels]

    /// A layer without adapters (frozen, forward only useful).
    public init(configuration: EncoderLayerConfiguration, weights: EncoderLayerWeights,
                products: EncoderLayerProducts? = nil) {
        weights.validate(configuration)
        self.configuration = configuration; self.weights = weights
        adapters = [:]; loraScale = 0; loraDropout = 0
        self.products = products ?? .float32(weights)
        inferencePanels = [:]
    }

    /// A layer with the given adapters; `lora.targets` must match the adapters' keys.
    public init(configuration: EncoderLayerConfiguration, weights: EncoderLayerWeights,
                lora: LoRAConfiguration<LoRATarget>, adapters: [LoRATarget: LoRAAdapter],
                products: EncoderLayerProducts? = nil) {
        weights.validate(configuration)
        precondition(Set(adapters.keys) == Set(lora.targets), "adapters \(adapters.keys.sorted()) differ from targets \(lora.targets)")
        for (t, a) in adapters {
            let l = weights.linear(t)
            precondition(a.inFeatures == l.inFeatures && a.outFeatures == l.outFeatures && a.rank == lora.rank,
                         "adapter for \(t) has the wrong shape")
        }
        self.configuration = configuration; self.weights = weights; self.adapters = adapters
        loraScale = lora.scale; loraDropout = lora.dropout
        self.products = products ?? .float32(weights)
        inferencePanels = [:]
    }

    /// This layer with gradient replicas of its adapters (`LoRAAdapter.gradientReplica`): the
    /// same weights, scale, dropout and frozen products, and adapter gradients of its own.
    public func withAdapterGradientReplicas() -> EncoderLayer {
        EncoderLayer(copying: self, adapters: adapters.mapValues { $0.gradientReplica() })
    }

    private init(copying layer: EncoderLayer, adapters: [LoRATarget: LoRAAdapter],
                 inferencePanels: [LoRATarget: LoRALinear.InferencePanels] = [:]) {
        configuration = layer.configuration; weights = layer.weights; self.adapters = adapters
        loraScale = layer.loraScale; loraDropout = layer.loraDropout; products = layer.products
        self.inferencePanels = inferencePanels
    }

    /// This layer with its adapters' weights laid out once for inference passes, as they are
    /// now: for a model whose adapters no longer change (a served one). Training passes are
    /// unaffected; an inference pass would not see a later change to the adapters.
    public func withInferencePanels() -> EncoderLayer {
        EncoderLayer(copying: self, adapters: adapters, inferencePanels: adapters.mapValues { a in
            LoRALinear.InferencePanels(shape: a.shape, loraA: a.loraA.pointer, loraB: a.loraB.pointer, scale: loraScale)
        })
    }

    /// Fresh adapters (B = 0) for every target of `lora`, A seeded per target from `seed`.
    public static func freshAdapters(configuration c: EncoderLayerConfiguration, lora: LoRAConfiguration<LoRATarget>,
                                     seed: UInt64) -> [LoRATarget: LoRAAdapter] {
        var result: [LoRATarget: LoRAAdapter] = [:]
        for t in lora.targets {
            let (i, o) = t.features(hidden: c.hiddenSize, intermediate: c.intermediateSize)
            result[t] = LoRAAdapter(inFeatures: i, outFeatures: o, rank: lora.rank,
                                    seed: seed &+ UInt64(t.index + 1) &* 0xD1B5_4A32_D192_ED03)
        }
        return result
    }

    /// This layer with its adapters folded into the frozen weights, W + s·B·A and the same bias
    /// per target, and no adapters left: the same function up to float32 rounding, with one
    /// product per dense layer instead of three (and two fewer in backward). For a layer whose
    /// adapters stay frozen through a whole training run (above the block being trained). Nil
    /// when the layer has no adapters, puts dropout on them (the folded layer could not drop
    /// the adapter's input alone), or multiplies in bfloat16 (rounding W + s·B·A to bfloat16
    /// would lose most of the adapter's small change to W).
    public func foldingAdapters() -> EncoderLayer? {
        guard !adapters.isEmpty, loraDropout == 0, products.precision == .fp32 else { return nil }
        func folded(_ t: LoRATarget) -> LinearWeights {
            let base = weights.linear(t)
            guard let a = adapters[t] else { return base }
            let w = Tensor.scratch(shape: base.weight.shape)
            w.data.update(from: base.weight.pointer, count: w.count)
            // W[O,I] += s·B[O,r]·A[r,I]
            MatMul.gemm(false, false, a.outFeatures, a.inFeatures, a.rank, loraScale, a.loraB.pointer, a.rank,
                        a.loraA.pointer, a.inFeatures, 1, w.data, a.inFeatures)
            return LinearWeights(weight: w, bias: base.bias)
        }
        let merged = EncoderLayerWeights(query: folded(.query), key: folded(.key), value: folded(.value),
                                         attentionOutput: folded(.attentionOutput),
                                         attentionLayerNorm: weights.attentionLayerNorm,
                                         intermediate: folded(.intermediate), output: folded(.output),
                                         outputLayerNorm: weights.outputLayerNorm)
        return EncoderLayer(configuration: configuration, weights: merged)
    }

    /// Called after each operation of a forward or backward pass with its name (benchmarks
    /// time the operations with it; the layer itself never reads a clock).
    public typealias OperationObserver = (StaticString) -> Void

    /// y = layer(x). `activations` must be sized for (batch, tokens) of this call; `mask` is
    /// [N] (1 real, 0 padding) or nil (nil for packed sequences, which have no padding);
    /// `dropoutSeed` picks this step's dropout masks.
    public func forward(_ x: UnsafePointer<Float>, mask: UnsafePointer<Int32>?, activations a: Activations,
                        into y: UnsafeMutablePointer<Float>, dropoutSeed: UInt64 = 0, threads: Int,
                        observer: OperationObserver? = nil) {
        let n = a.rows, c = configuration.hiddenSize, f = configuration.intermediateSize
        a.dropoutSeed = dropoutSeed
        products.qkv.forward(x, into: a.qkv.data, rows: n)
        for (slot, t) in [LoRATarget.query, .key, .value].enumerated() {
            guard let adapter = adapters[t], let saved = a.lora[t] else { continue }
            if a.training {
                LoRALinear.addAdapter(x, rows: n, shape: adapter.shape, loraA: adapter.loraA.data,
                                      loraB: adapter.loraB.data, scale: loraScale, dropout: dropout(t, a),
                                      xDropped: saved.xDropped?.data, xa: saved.xa.data,
                                      into: a.qkv.data + slot * c, outputRowStride: 3 * c)
            } else {
                inferAdapter(t, adapter, x, xa: saved.xa.data, into: a.qkv.data + slot * c, outputRowStride: 3 * c, n)
            }
        }
        observer?("query/key/value")
        let q = a.qkv.data, k = q + c, v = q + 2 * c
        Attention.forward(q: q, k: k, v: v, keyMask: mask, shape: a.attentionShape,
                          probabilities: a.probabilities.data, into: a.context.data, threads: threads)
        observer?("attention")
        project(.attentionOutput, a.context.data, residual: x, into: a.attentionSum.data, a, n)
        observer?("attention output")
        LayerNorm.forward(a.attentionSum.data, gamma: weights.attentionLayerNorm.gamma.data,
                          beta: weights.attentionLayerNorm.beta.data, epsilon: configuration.layerNormEpsilon,
                          into: a.hidden.data, mean: a.mean1.data, rstd: a.rstd1.data,
                          rows: n, columns: c, threads: threads)
        observer?("layer norm 1")
        // f is written into the buffer that GELU then overwrites with g = GELU(f) in place:
        // backward needs only g and the saved GELU′(f), and a second [N, F] buffer would cost
        // a 12 MB stream per step.
        project(.intermediate, a.hidden.data, residual: nil, into: a.activated.data, a, n)
        observer?("intermediate")
        if a.training {
            GELU.forward(a.activated.data, into: a.activated.data, derivative: a.geluDerivative.data,
                         count: n * f, threads: threads)
        } else {
            GELU.forward(a.activated.data, into: a.activated.data, count: n * f, threads: threads)
        }
        observer?("GELU")
        project(.output, a.activated.data, residual: a.hidden.data, into: a.outputSum.data, a, n)
        observer?("output")
        LayerNorm.forward(a.outputSum.data, gamma: weights.outputLayerNorm.gamma.data,
                          beta: weights.outputLayerNorm.beta.data, epsilon: configuration.layerNormEpsilon,
                          into: y, mean: a.mean2.data, rstd: a.rstd2.data, rows: n, columns: c, threads: threads)
        observer?("layer norm 2")
    }

    /// Accumulates adapter gradients and (if `dInput` is non-nil) dX from dY, for the forward
    /// call that filled `activations` with input `x`. With `adapterGradients: false` (a layer
    /// whose adapters are active but frozen, above the trained ones) the adapters' gradients
    /// are neither computed nor touched: only the gradient flowing through them is.
    public func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, activations a: Activations,
                         dInput: UnsafeMutablePointer<Float>?, adapterGradients: Bool = true, threads: Int,
                         observer: OperationObserver? = nil) {
        let n = a.rows, c = configuration.hiddenSize, f = configuration.intermediateSize
        precondition(a.training, "backward needs activations made with training: true")
        let g = a.gradients
        // Every intermediate gradient is overwritten, never zeroed and accumulated: the zero
        // fills alone would move ~45 MB per step. y = LN₂(o + h): dOutputSum is also the
        // residual gradient into h.
        LayerNorm.backward(dY: dY, x: a.outputSum.data, gamma: weights.outputLayerNorm.gamma.data,
                           mean: a.mean2.data, rstd: a.rstd2.data, dX: g.dOutputSum.data,
                           dGamma: nil, dBeta: nil, rows: n, columns: c, accumulateDX: false, threads: threads)
        observer?("layer norm 2")
        projectBackward(.output, dY: g.dOutputSum.data, x: a.activated.data, dX: g.dActivated.data,
                        accumulate: false, gradients: adapterGradients, a, n)
        observer?("output")
        // dActivated becomes dPreActivation in place.
        GELU.backwardInPlace(g.dActivated.data, derivative: a.geluDerivative.data, count: n * f, threads: threads)
        observer?("GELU")
        // dHidden = residual (dOutputSum, no longer needed as such) + the FFN input gradient.
        let dHidden = g.dOutputSum.data
        projectBackward(.intermediate, dY: g.dActivated.data, x: a.hidden.data, dX: dHidden, accumulate: true,
                        gradients: adapterGradients, a, n)
        observer?("intermediate")
        // h = LN₁(c·Woᵀ + x): dAttentionSum is also the residual gradient into x.
        LayerNorm.backward(dY: dHidden, x: a.attentionSum.data, gamma: weights.attentionLayerNorm.gamma.data,
                           mean: a.mean1.data, rstd: a.rstd1.data, dX: g.dAttentionSum.data,
                           dGamma: nil, dBeta: nil, rows: n, columns: c, accumulateDX: false, threads: threads)
        observer?("layer norm 1")
        projectBackward(.attentionOutput, dY: g.dAttentionSum.data, x: a.context.data, dX: g.dContext.data,
                        accumulate: false, gradients: adapterGradients, a, n)
        observer?("attention output")
        let q = a.qkv.data, dQ = g.dQKV.data
        Attention.backward(dOut: g.dContext.data, q: q, k: q + c, v: q + 2 * c,
                           probabilities: a.probabilities.data, shape: a.attentionShape,
                           dQ: dQ, dK: dQ + c, dV: dQ + 2 * c, accumulate: false, threads: threads)
        observer?("attention")
        for (slot, t) in [LoRATarget.query, .key, .value].enumerated() {
            guard let adapter = adapters[t], let saved = a.lora[t] else { continue }
            LoRALinear.adapterBackward(dY: dQ + slot * c, x: x, rows: n, shape: adapter.shape,
                                       loraA: adapter.loraA.data, loraB: adapter.loraB.data, scale: loraScale,
                                       dropout: dropout(t, a), xDropped: saved.xDropped.map { UnsafePointer($0.data) },
                                       xa: saved.xa.data, dLoraA: adapterGradients ? adapter.gradA.data : nil,
                                       dLoraB: adapterGradients ? adapter.gradB.data : nil,
                                       dX: dInput, scratch: g.loraScratch.data, dYRowStride: 3 * c)
        }
        observer?("query/key/value adapters")
        guard let dInput else { return }
        // Residual into x, then dX += dQKV·Wqkv (one product for the three projections).
        add(g.dAttentionSum.data, into: dInput, count: n * c)
        products.qkv.backwardInput(dY: g.dQKV.data, into: dInput, rows: n, accumulate: true)
        observer?("input")
    }

    // MARK: - One linear layer, with or without its adapter

    private func dropout(_ t: LoRATarget, _ a: Activations) -> Dropout? {
        guard loraDropout > 0 else { return nil }
        return Dropout(probability: loraDropout, seed: a.dropoutSeed &+ UInt64(t.index + 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// y = x·Wᵀ + b (+ residual) (+ the adapter's term) for target t.
    private func project(_ t: LoRATarget, _ x: UnsafePointer<Float>, residual: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, _ a: Activations, _ n: Int) {
        products.linear(t).forward(x, residual: residual, into: y, rows: n)
        guard let adapter = adapters[t], let saved = a.lora[t] else { return }
        guard a.training else { return inferAdapter(t, adapter, x, xa: saved.xa.data, into: y, outputRowStride: nil, n) }
        LoRALinear.addAdapter(x, rows: n, shape: adapter.shape, loraA: adapter.loraA.data, loraB: adapter.loraB.data,
                              scale: loraScale, dropout: dropout(t, a), xDropped: saved.xDropped?.data,
                              xa: saved.xa.data, into: y)
    }

    /// y += the adapter's term in an inference pass (no dropout: it is off outside training).
    private func inferAdapter(_ t: LoRATarget, _ adapter: LoRAAdapter, _ x: UnsafePointer<Float>,
                              xa: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>,
                              outputRowStride: Int?, _ n: Int) {
        if let panels = inferencePanels[t] {
            LoRALinear.addAdapterForInference(x, rows: n, panels: panels, xa: xa, into: y, outputRowStride: outputRowStride)
        } else {
            LoRALinear.addAdapterForInference(x, rows: n, shape: adapter.shape, loraA: adapter.loraA.data,
                                              loraB: adapter.loraB.data, scale: loraScale, xa: xa, into: y,
                                              outputRowStride: outputRowStride)
        }
    }

    /// Adapter gradients of target t and dX = dY·W + the adapter's path, added to dX when
    /// `accumulate`, else written over it (the frozen product first, with β = 0).
    private func projectBackward(_ t: LoRATarget, dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                 dX: UnsafeMutablePointer<Float>?, accumulate: Bool, gradients: Bool,
                                 _ a: Activations, _ n: Int) {
        if let dX { products.linear(t).backwardInput(dY: dY, into: dX, rows: n, accumulate: accumulate) }
        guard let adapter = adapters[t], let saved = a.lora[t] else { return }
        LoRALinear.adapterBackward(dY: dY, x: x, rows: n, shape: adapter.shape,
                                   loraA: adapter.loraA.data, loraB: adapter.loraB.data, scale: loraScale,
                                   dropout: dropout(t, a), xDropped: saved.xDropped.map { UnsafePointer($0.data) },
                                   xa: saved.xa.data, dLoraA: gradients ? adapter.gradA.data : nil,
                                   dLoraB: gradients ? adapter.gradB.data : nil,
                                   dX: dX, scratch: a.gradients.loraScratch.data)
    }

    private func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }
}
