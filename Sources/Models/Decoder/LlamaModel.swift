import Kernels

/// A Llama-architecture decoder: batched forward that saves what backward needs, with LoRA
/// and full-weight adapters, and logits computed only for the rows a loss asks for.
///
/// Shape glossary: B sequences of T tokens, N = B·T rows; C hidden, F FFN, H query heads,
/// Hkv key-value heads, D head size, V vocabulary, M rows that get logits.
/// One block (pre-norm, as in Llama):
///     h1 = RMSNorm(x)·γ1;  q, k, v = h1·Wqᵀ, h1·Wkᵀ, h1·Wvᵀ;  q, k = RoPE(q, k)
///     x' = x + attention(q, k, v)·Woᵀ        (causal, grouped-query heads)
///     h2 = RMSNorm(x')·γ2;  x'' = x' + (silu(h2·Wgᵀ) ⊙ h2·Wuᵀ)·Wdᵀ
/// Final: logits = RMSNorm(x_L)·γ_out·Eᵀ with the tied embedding E [V, C].
/// Sequences are right-padded: causality alone keeps real tokens from seeing padding.
public final class LlamaModel: @unchecked Sendable {
    public let configuration: LlamaConfiguration
    public let weights: LlamaWeights
    let rope: RoPE.Table
    /// The arithmetic of the products on frozen weights (projections and the tied LM head).
    public let precision: Precision
    /// Every frozen projection of every layer, and the LM head E [V, C], prepared once for oneDNN.
    let packed: [[LlamaProjection: FrozenLinear]]
    let packedHead: FrozenLinear

    /// A model whose frozen products run in `precision`; every frozen matrix is prepared here, once.
    public init(weights: LlamaWeights, precision: Precision) throws(KernelError) {
        self.configuration = weights.configuration
        self.weights = weights
        rope = RoPE.Table(headSize: weights.configuration.headSize, base: weights.configuration.ropeBase,
                          maxPositions: weights.configuration.maxPositions)
        self.precision = precision
        var layers: [[LlamaProjection: FrozenLinear]] = []
        for layer in weights.layers {
            var byTarget: [LlamaProjection: FrozenLinear] = [:]
            for target in LlamaProjection.allCases {
                byTarget[target] = try FrozenLinear(weight: layer.matrix(target), bias: nil, precision: precision)
            }
            layers.append(byTarget)
        }
        packed = layers
        packedHead = try FrozenLinear(weight: weights.tokenEmbedding, bias: nil, precision: precision)
    }

    /// The packed frozen projection of layer l, nil when the adapter trains it fully.
    func frozenProjection(_ l: Int, _ target: LlamaProjection, adapter: LlamaAdapter?) -> FrozenLinear? {
        guard adapter?.full[l][target] == nil else { return nil }
        return packed[l][target]
    }

    /// What one block's forward saves for backward. Not zero-filled: every buffer is written
    /// whole by the block's forward before anything reads it.
    final class LayerActivations {
        let x, h1, rstd1, q, k, v, probabilities, attention, xMid, h2, rstd2, gate, up, act: Tensor
        /// x·Aᵀ of each LoRA projection [N, r].
        var loraXA: [LlamaProjection: Tensor] = [:]
        init(_ c: LlamaConfiguration, n: Int, batch: Int, tokens: Int, x: Tensor) {
            let hd = c.headCount * c.headSize
            self.x = x
            h1 = .scratch(shape: [n, c.hiddenSize]); rstd1 = .scratch(shape: [n])
            q = .scratch(shape: [n, hd]); k = .scratch(shape: [n, c.kvSize]); v = .scratch(shape: [n, c.kvSize])
            probabilities = .scratch(shape: [batch, c.headCount, tokens, tokens])
            attention = .scratch(shape: [n, hd]); xMid = .scratch(shape: [n, c.hiddenSize])
            h2 = .scratch(shape: [n, c.hiddenSize]); rstd2 = .scratch(shape: [n])
            gate = .scratch(shape: [n, c.intermediateSize]); up = .scratch(shape: [n, c.intermediateSize])
            act = .scratch(shape: [n, c.intermediateSize])
        }
    }

    /// The result of a forward pass: logits [M, V] for the requested rows, plus saved activations.
    public final class ForwardPass: @unchecked Sendable {
        public let batch: Int
        public let tokens: Int
        /// Row indices (into N = B·T) whose logits were computed, in `logits` order.
        public let logitRows: [Int]
        /// [M, V]
        public let logits: Tensor
        /// The first layer the pass ran (the ones below it came in as a residual stream).
        let firstLayer: Int
        /// The activations of layers firstLayer…, in order.
        let layers: [LayerActivations]
        let finalInput: Tensor, finalRstd: Tensor, finalHidden: Tensor
        init(batch: Int, tokens: Int, logitRows: [Int], logits: Tensor, firstLayer: Int, layers: [LayerActivations],
             finalInput: Tensor, finalRstd: Tensor, finalHidden: Tensor) {
            self.batch = batch; self.tokens = tokens; self.logitRows = logitRows; self.logits = logits
            self.firstLayer = firstLayer; self.layers = layers; self.finalInput = finalInput; self.finalRstd = finalRstd; self.finalHidden = finalHidden
        }
    }

    /// Runs B right-padded sequences of T tokens (`ids` [B·T]) and returns logits for `logitRows`.
    public func forward(ids: [Int32], batch b: Int, tokens t: Int, logitRows: [Int],
                        adapter: LlamaAdapter? = nil, threads: Int = 1) throws -> ForwardPass {
        try forward(hidden: embed(ids: ids, batch: b, tokens: t), fromLayer: 0, batch: b, tokens: t,
                    logitRows: logitRows, adapter: adapter, threads: threads)
    }

    /// The token embeddings of B right-padded sequences of T tokens [B·T, C], after checking
    /// the length and every id.
    public func embed(ids: [Int32], batch b: Int, tokens t: Int) throws -> Tensor {
        let c = configuration, n = b * t
        precondition(ids.count == n, "\(ids.count) ids for \(b)×\(t)")
        guard t <= c.maxPositions else {
            throw ModelsError.invalidValue(field: "maxPositions", value: "\(c.maxPositions)",
                                               reason: "sequence of \(t) tokens is longer")
        }
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= c.vocabularySize }) {
            throw ModelsError.tokenOutOfRange(id: Int(bad), vocabularySize: c.vocabularySize)
        }
        let x = Tensor(shape: [n, c.hiddenSize])
        ids.withUnsafeBufferPointer {
            Embedding.forward(ids: $0.baseAddress!, table: weights.tokenEmbedding.pointer, into: x.data,
                              rows: n, vocabulary: c.vocabularySize, columns: c.hiddenSize)
        }
        return x
    }

    /// The residual stream after layers `layers` of the frozen base (no adapter) on `x` [B·T, C]:
    /// what every adapter that leaves those layers alone sees, computed once for all of them.
    public func baseHidden(_ x: Tensor, layers: Range<Int>, batch b: Int, tokens t: Int, threads: Int = 1) -> Tensor {
        var x = x
        for l in layers { x = layer(l, x, batch: b, tokens: t, adapter: nil, threads: threads).output }
        return x
    }

    /// Runs layers `first`… and the head on the residual stream `hidden` [B·T, C] entering layer
    /// `first`; backward reaches down to `first` at most, so `first` must not exceed the
    /// adapter's lowest adapted layer when the pass is differentiated.
    public func forward(hidden input: Tensor, fromLayer first: Int, batch b: Int, tokens t: Int, logitRows: [Int],
                        adapter: LlamaAdapter? = nil, threads: Int = 1) -> ForwardPass {
        let c = configuration, n = b * t, cs = c.hiddenSize
        precondition(input.count == n * cs && (0 ... c.layerCount).contains(first))
        var x = input
        var saved: [LayerActivations] = []
        for l in first ..< c.layerCount {
            let (s, next) = layer(l, x, batch: b, tokens: t, adapter: adapter, threads: threads)
            saved.append(s)
            x = next
        }
        let hidden = Tensor(shape: [n, cs]), rstd = Tensor(shape: [n])
        RMSNorm.forward(x.pointer, gamma: weights.outputNorm.pointer, epsilon: c.rmsEpsilon, into: hidden.data,
                        rstd: rstd.data, rows: n, columns: cs, threads: threads)
        let logits = self.logits(hidden, rows: logitRows)
        return ForwardPass(batch: b, tokens: t, logitRows: logitRows, logits: logits, firstLayer: first, layers: saved,
                           finalInput: x, finalRstd: rstd, finalHidden: hidden)
    }

    /// One block on the residual stream `x` [B·T, C]: its saved activations and its output.
    func layer(_ l: Int, _ x: Tensor, batch b: Int, tokens t: Int, adapter: LlamaAdapter?,
               threads: Int) -> (saved: LayerActivations, output: Tensor) {
        let c = configuration, n = b * t, cs = c.hiddenSize
        let shape = Attention.Shape(batch: b, tokens: t, heads: c.headCount, kvHeads: c.kvHeadCount,
                                    headSize: c.headSize, causal: true)
        let w = weights.layers[l]
        let s = LayerActivations(c, n: n, batch: b, tokens: t, x: x)
        RMSNorm.forward(x.pointer, gamma: w.attentionNorm.pointer, epsilon: c.rmsEpsilon, into: s.h1.data,
                        rstd: s.rstd1.data, rows: n, columns: cs, threads: threads)
        project(s.h1, into: s.q, layer: l, .query, adapter: adapter, saved: s)
        project(s.h1, into: s.k, layer: l, .key, adapter: adapter, saved: s)
        project(s.h1, into: s.v, layer: l, .value, adapter: adapter, saved: s)
        RoPE.forward(s.q.pointer, into: s.q.data, table: rope, positions: nil, rows: n, tokens: t,
                     heads: c.headCount, threads: threads)
        RoPE.forward(s.k.pointer, into: s.k.data, table: rope, positions: nil, rows: n, tokens: t,
                     heads: c.kvHeadCount, threads: threads)
        Attention.forward(q: s.q.pointer, k: s.k.pointer, v: s.v.pointer, keyMask: nil, shape: shape,
                          probabilities: s.probabilities.data, into: s.attention.data, threads: threads)
        project(s.attention, into: s.xMid, layer: l, .output, adapter: adapter, saved: s)
        add(x, into: s.xMid)
        RMSNorm.forward(s.xMid.pointer, gamma: w.ffnNorm.pointer, epsilon: c.rmsEpsilon, into: s.h2.data,
                        rstd: s.rstd2.data, rows: n, columns: cs, threads: threads)
        project(s.h2, into: s.gate, layer: l, .gate, adapter: adapter, saved: s)
        project(s.h2, into: s.up, layer: l, .up, adapter: adapter, saved: s)
        SwiGLU.forward(gate: s.gate.pointer, up: s.up.pointer, into: s.act.data, count: n * c.intermediateSize,
                       threads: threads)
        let next = Tensor.scratch(shape: [n, cs])   // the down projection writes it whole
        project(s.act, into: next, layer: l, .down, adapter: adapter, saved: s)
        add(s.xMid, into: next)
        return (s, next)
    }

    /// logits[m] = hidden[rows[m]]·Eᵀ, gathering the rows first so the LM head is one product.
    func logits(_ hidden: Tensor, rows: [Int]) -> Tensor {
        let cs = configuration.hiddenSize, v = configuration.vocabularySize, m = rows.count
        let gathered = Tensor.scratch(shape: [m, cs]), out = Tensor.scratch(shape: [m, v])
        for (i, r) in rows.enumerated() { (gathered.data + i * cs).update(from: hidden.data + r * cs, count: cs) }
        packedHead.forward(gathered.pointer, into: out.data, rows: m)
        return out
    }

    /// y = x·Wᵀ (+ s·x·Aᵀ·Bᵀ), with W the adapter's trainable copy when the projection is fully trained.
    func project(_ x: Tensor, into y: Tensor, layer l: Int, _ target: LlamaProjection,
                 adapter: LlamaAdapter?, saved: LayerActivations?) {
        let (o, i) = target.shape(configuration)
        let n = x.count / i
        let weight = adapter?.full[l][target]?.value ?? weights.layers[l].matrix(target)
        if let frozen = frozenProjection(l, target, adapter: adapter) {
            frozen.forward(x.pointer, into: y.data, rows: n)
            if let pair = adapter?.lora[l][target] {
                let r = adapter!.configuration.rank
                let xa = Tensor.scratch(shape: [n, r])
                LoRALinear.addAdapter(x.pointer, rows: n, shape: .init(inFeatures: i, outFeatures: o, rank: r),
                                      loraA: pair.a.value.pointer, loraB: pair.b.value.pointer,
                                      scale: adapter!.configuration.scale, xa: xa.data, into: y.data)
                saved?.loraXA[target] = xa
            }
        } else if let pair = adapter?.lora[l][target] {
            let r = adapter!.configuration.rank
            let xa = Tensor.scratch(shape: [n, r])
            LoRALinear.forward(x.pointer, rows: n, shape: .init(inFeatures: i, outFeatures: o, rank: r),
                               weight: weight.pointer, bias: nil, loraA: pair.a.value.pointer,
                               loraB: pair.b.value.pointer, scale: adapter!.configuration.scale,
                               xa: xa.data, into: y.data)
            saved?.loraXA[target] = xa
        } else {
            MatMul.gemm(false, true, n, o, i, 1, x.pointer, i, weight.pointer, i, 0, y.data, o)
        }
    }

    /// y += x, elementwise.
    func add(_ x: Tensor, into y: Tensor) {
        let p = x.data, q = y.data
        for j in 0 ..< x.count { q[j] += p[j] }
    }
}
