import Kernels

/// Greedy generation with a key-value cache: each new token costs one row through the network.
///
/// Shape glossary: n new rows at positions p0 ..< p0+n, L = p0+n cached positions,
/// caches K, V [maxPositions, Hkv·D] per layer. A query at position p attends to keys 0 … p.
public final class LlamaGenerator {
    public let model: LlamaModel
    let keys: [Tensor]
    let values: [Tensor]
    /// Number of positions already in the cache.
    public private(set) var length = 0
    let threads: Int

    public init(model: LlamaModel, threads: Int = 1) {
        self.model = model
        self.threads = threads
        let c = model.configuration
        keys = (0 ..< c.layerCount).map { _ in Tensor(shape: [c.maxPositions, c.kvSize]) }
        values = (0 ..< c.layerCount).map { _ in Tensor(shape: [c.maxPositions, c.kvSize]) }
    }

    /// Feeds `ids` after the cached context and returns the logits [V] of the last one.
    public func append(_ ids: [Int]) throws -> [Float] {
        let c = model.configuration, w = model.weights, n = ids.count, cs = c.hiddenSize
        let hd = c.headCount * c.headSize, f = c.intermediateSize, p0 = length
        precondition(n > 0, "append needs at least one token")
        guard p0 + n <= c.maxPositions else {
            throw ModelsError.invalidValue(field: "maxPositions", value: "\(c.maxPositions)",
                                               reason: "generation reached \(p0 + n) tokens")
        }
        if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabularySize }) {
            throw ModelsError.tokenOutOfRange(id: bad, vocabularySize: c.vocabularySize)
        }
        let x = Tensor(shape: [n, cs]), h = Tensor(shape: [n, cs]), rstd = Tensor(shape: [n])
        let positions = (0 ..< n).map { Int32(p0 + $0) }
        for (r, id) in ids.enumerated() { (x.data + r * cs).update(from: w.tokenEmbedding.data + id * cs, count: cs) }
        let q = Tensor(shape: [n, hd]), att = Tensor(shape: [n, hd]), o = Tensor(shape: [n, cs])
        let g = Tensor(shape: [n, f]), u = Tensor(shape: [n, f])
        for l in 0 ..< c.layerCount {
            let lw = w.layers[l]
            RMSNorm.forward(x.pointer, gamma: lw.attentionNorm.pointer, epsilon: c.rmsEpsilon, into: h.data,
                            rstd: rstd.data, rows: n, columns: cs, threads: threads)
            let kNew = keys[l].data + p0 * c.kvSize, vNew = values[l].data + p0 * c.kvSize
            MatMul.gemm(false, true, n, hd, cs, 1, h.pointer, cs, lw.query.pointer, cs, 0, q.data, hd)
            MatMul.gemm(false, true, n, c.kvSize, cs, 1, h.pointer, cs, lw.key.pointer, cs, 0, kNew, c.kvSize)
            MatMul.gemm(false, true, n, c.kvSize, cs, 1, h.pointer, cs, lw.value.pointer, cs, 0, vNew, c.kvSize)
            positions.withUnsafeBufferPointer { pos in
                RoPE.forward(q.pointer, into: q.data, table: model.rope, positions: pos.baseAddress, rows: n,
                             tokens: n, heads: c.headCount, threads: threads)
                RoPE.forward(kNew, into: kNew, table: model.rope, positions: pos.baseAddress, rows: n,
                             tokens: n, heads: c.kvHeadCount, threads: threads)
            }
            cachedAttention(q: q, layer: l, start: p0, rows: n, into: att)
            MatMul.gemm(false, true, n, cs, hd, 1, att.pointer, hd, lw.output.pointer, hd, 0, o.data, cs)
            model.add(o, into: x)
            RMSNorm.forward(x.pointer, gamma: lw.ffnNorm.pointer, epsilon: c.rmsEpsilon, into: h.data,
                            rstd: rstd.data, rows: n, columns: cs, threads: threads)
            MatMul.gemm(false, true, n, f, cs, 1, h.pointer, cs, lw.gate.pointer, cs, 0, g.data, f)
            MatMul.gemm(false, true, n, f, cs, 1, h.pointer, cs, lw.up.pointer, cs, 0, u.data, f)
            SwiGLU.forward(gate: g.pointer, up: u.pointer, into: g.data, count: n * f, threads: threads)
            MatMul.gemm(false, true, n, cs, f, 1, g.pointer, f, lw.down.pointer, f, 0, o.data, cs)
            model.add(o, into: x)
        }
        length = p0 + n
        RMSNorm.forward(x.pointer, gamma: w.outputNorm.pointer, epsilon: c.rmsEpsilon, into: h.data,
                        rstd: rstd.data, rows: n, columns: cs, threads: threads)
        return model.logits(h, rows: [n - 1]).values
    }

    /// Softmax(s·q·Kᵀ)·V per head over the cache, causal from position `start`.
    func cachedAttention(q: Tensor, layer l: Int, start p0: Int, rows n: Int, into out: Tensor) {
        let c = model.configuration, d = c.headSize, hd = c.headCount * d, kv = c.kvSize
        let total = p0 + n, group = c.headCount / c.kvHeadCount
        let scale = 1 / Float(d).squareRoot()
        let scores = Tensor(shape: [n, total])
        for head in 0 ..< c.headCount {
            let kg = keys[l].pointer + (head / group) * d, vg = values[l].pointer + (head / group) * d
            MatMul.gemm(false, true, n, total, d, scale, q.pointer + head * d, hd, kg, kv, 0, scores.data, total)
            for i in 0 ..< n {
                let row = scores.data + i * total, visible = p0 + i + 1
                var mx = -Float.greatestFiniteMagnitude
                for j in 0 ..< visible { mx = max(mx, row[j]) }
                var sum: Float = 0
                for j in 0 ..< visible { row[j] = VectorMath.exp(row[j] - mx); sum += row[j] }
                for j in 0 ..< visible { row[j] /= sum }
                for j in visible ..< total { row[j] = 0 }
            }
            MatMul.gemm(false, false, n, d, total, 1, scores.pointer, total, vg, kv, 0, out.data + head * d, hd)
        }
    }

    /// Greedy continuation: feeds `prompt`, then appends the argmax token `maxTokens` times
    /// (stopping early at `stop`). Returns the generated ids only. Logits with a NaN or an
    /// infinity have no meaningful argmax, so they are an error rather than a token.
    public func greedy(prompt: [Int], maxTokens: Int, stop: Int? = nil) throws -> [Int] {
        var logits = try append(prompt)
        var out: [Int] = []
        for _ in 0 ..< maxTokens {
            if let bad = logits.first(where: { !$0.isFinite }) {
                throw ModelsError.nonFiniteLogits(position: length - 1, value: bad)
            }
            var best = 0
            for j in 1 ..< logits.count where logits[j] > logits[best] { best = j }
            out.append(best)
            if best == stop || out.count == maxTokens { break }
            logits = try append([best])
        }
        return out
    }
}
