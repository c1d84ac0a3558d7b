/// Multi-head scaled dot-product self-attention with a key padding mask, an optional causal
/// mask and grouped-query heads, forward and backward.
///
///     S = s·Q_h·K_gᵀ,  P = softmax(S masked),  O_h = P·V_g,   g = h / (H / Hkv)
///
/// Shape glossary: B sequences, T tokens each, N = B·T rows; H query heads, Hkv key/value
/// heads (H % Hkv == 0), D head size; q [N, H·D], k, v [N, Hkv·D], out [N, H·D] (heads side
/// by side in a row, as the projections produce them, so no transposes are copied; rows may be
/// further apart, `Shape.queryRowStride`/`keyValueRowStride`, e.g. inside a fused [N, 3C] qkv);
/// keyMask [N] (1 = real token, 0 = padding; nil = all real); P [B, H, T, T] saved by forward.
/// Query i attends to key j iff keyMask[j] ≠ 0 and (not causal or j ≤ i); a query with no
/// visible key gets P = 0 and O = 0.
/// Backward (accumulates), per head:
///     dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dV += Pᵀ·dO,  dQ += s·dS·K,  dK += s·dSᵀ·Q
/// Work is split by (sequence, head) in forward and (sequence, kv head) in backward, so every
/// output element is written by one unit in a fixed order: same bits for every thread count.
public enum Attention {
    /// The sizes and masking of one attention call.
    public struct Shape: Sendable, Equatable {
        public var batch: Int
        public var tokens: Int
        public var heads: Int
        public var kvHeads: Int
        public var headSize: Int
        public var causal: Bool
        /// Score scale s, 1/√D by default.
        public var scale: Float
        /// Floats between consecutive rows of q and dQ (default H·D); larger when q is a column
        /// block of a fused [N, 3C] projection. out and dOut are always dense [N, H·D].
        public var queryRowStride: Int
        /// Floats between consecutive rows of k, v, dK, dV (default Hkv·D).
        public var keyValueRowStride: Int

        public init(batch: Int, tokens: Int, heads: Int, kvHeads: Int? = nil, headSize: Int,
                    causal: Bool = false, scale: Float? = nil,
                    queryRowStride: Int? = nil, keyValueRowStride: Int? = nil) {
            let kv = kvHeads ?? heads
            precondition(heads > 0 && kv > 0 && heads % kv == 0, "heads \(heads) not a multiple of kv heads \(kv)")
            self.batch = batch; self.tokens = tokens; self.heads = heads; self.kvHeads = kv
            self.headSize = headSize; self.causal = causal
            self.scale = scale ?? 1 / Float(headSize).squareRoot()
            self.queryRowStride = queryRowStride ?? heads * headSize
            self.keyValueRowStride = keyValueRowStride ?? kv * headSize
            precondition(self.queryRowStride >= heads * headSize && self.keyValueRowStride >= kv * headSize,
                         "row strides shorter than the heads")
        }

        /// Floats in the saved probabilities P.
        public var probabilityCount: Int { batch * heads * tokens * tokens }
    }

    /// out = attention(q, k, v); writes the saved probabilities [B, H, T, T].
    public static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               keyMask: UnsafePointer<Int32>?, shape: Shape,
                               probabilities: UnsafeMutablePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, threads: Int) {
        let (bN, t, h, hkv, d) = (shape.batch, shape.tokens, shape.heads, shape.kvHeads, shape.headSize)
        let group = h / hkv, qStride = shape.queryRowStride, kvStride = shape.keyValueRowStride, oStride = h * d
        // The key mask as 0/1 floats, so the softmax can apply it with vector multiplies.
        let keepMask: UnsafeMutablePointer<Float>? = keyMask.map { mask in
            let f = UnsafeMutablePointer<Float>.allocate(capacity: bN * t)
            for j in 0..<bN * t { f[j] = mask[j] != 0 ? 1 : 0 }
            return f
        }
        defer { keepMask?.deallocate() }
        withSingleThreadedProducts(if: threads > 1) {
            Parallel.forEachChunk(count: bN * h, chunkSize: 1, threads: threads) { unit, _ in
                let b = unit / h, head = unit % h, g = head / group
                let qh = q + b * t * qStride + head * d
                let kg = k + b * t * kvStride + g * d
                let vg = v + b * t * kvStride + g * d
                let p = probabilities + unit * t * t
                MatMul.gemm(false, true, t, t, d, shape.scale, qh, qStride, kg, kvStride, 0, p, t)
                let keep = keepMask.map { UnsafePointer($0) + b * t }
                for i in 0..<t { maskedSoftmaxRow(p + i * t, query: i, tokens: t, keep: keep, causal: shape.causal) }
                MatMul.gemm(false, false, t, d, t, 1, p, t, vg, kvStride, 0, out + b * t * oStride + head * d, oStride)
            }
        }
    }

    /// Accumulates dQ, dK, dV, or overwrites them when `accumulate` is false (saves the caller
    /// a zero fill of [N, (H + 2·Hkv)·D] floats).
    public static func backward(dOut: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                probabilities: UnsafePointer<Float>, shape: Shape,
                                dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                dV: UnsafeMutablePointer<Float>, accumulate: Bool = true, threads: Int) {
        let (bN, t, h, hkv, d) = (shape.batch, shape.tokens, shape.heads, shape.kvHeads, shape.headSize)
        let group = h / hkv, qStride = shape.queryRowStride, kvStride = shape.keyValueRowStride, oStride = h * d
        withSingleThreadedProducts(if: threads > 1) {
            Parallel.forEachChunk(count: bN * hkv, chunkSize: 1, threads: threads) { unit, _ in
                let b = unit / hkv, g = unit % hkv
                let dS = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
                defer { dS.deallocate() }
                let kg = k + b * t * kvStride + g * d, vg = v + b * t * kvStride + g * d
                let dKg = dK + b * t * kvStride + g * d, dVg = dV + b * t * kvStride + g * d
                for head in g * group..<(g + 1) * group {
                    // The first head of a group starts dK and dV (and each head its dQ) at zero.
                    let betaKV: Float = accumulate || head > g * group ? 1 : 0, betaQ: Float = accumulate ? 1 : 0
                    let qh = q + b * t * qStride + head * d
                    let dOh = dOut + b * t * oStride + head * d
                    let dQh = dQ + b * t * qStride + head * d
                    let p = probabilities + (b * h + head) * t * t
                    MatMul.gemm(false, true, t, t, d, 1, dOh, oStride, vg, kvStride, 0, dS, t)
                    MatMul.gemm(true, false, t, d, t, 1, p, t, dOh, oStride, betaKV, dVg, kvStride)
                    for i in 0..<t {
                        let pr = p + i * t, sr = dS + i * t
                        let k0 = vdot(sr, pr, t)
                        forEach8(t) { j, w in
                            storePartial(loadPartial(pr + j, w) * (loadPartial(sr + j, w) - k0), sr + j, w)
                        }
                    }
                    MatMul.gemm(false, false, t, d, t, shape.scale, dS, t, kg, kvStride, betaQ, dQh, qStride)
                    MatMul.gemm(true, false, t, d, t, shape.scale, dS, t, qh, qStride, betaKV, dKg, kvStride)
                }
            }
        }
    }

    /// Softmax over the visible keys of one score row; hidden keys get probability 0.
    /// `keep` is the sequence's key mask as 0/1 floats (nil = all real).
    @inline(__always)
    static func maskedSoftmaxRow(_ row: UnsafeMutablePointer<Float>, query i: Int, tokens t: Int,
                                 keep: UnsafePointer<Float>?, causal: Bool) {
        let visible = causal ? i + 1 : t
        if visible < t { (row + visible).update(repeating: 0, count: t - visible) }
        guard let keep else { Softmax.row(row, into: row, count: visible); return }
        let lowest = Float8(repeating: -.greatestFiniteMagnitude)
        var mx = lowest
        forEach8(visible) { j, w in
            let k = loadPartial(keep + j, w)
            mx = vmax(mx, loadPartial(row + j, w, pad: 0).replacing(with: lowest, where: k .== 0))
        }
        let m = vhmax(mx)
        guard m > -.greatestFiniteMagnitude else { row.update(repeating: 0, count: visible); return }
        var acc = Float8()
        forEach8(visible) { j, w in
            // Padding lanes of a partial vector have keep = 0, so they add nothing.
            let e = vexp(loadPartial(row + j, w) - m) * loadPartial(keep + j, w)
            acc += e
            storePartial(e, row + j, w)
        }
        let inv = 1 / acc.sum()
        forEach8(visible) { j, w in storePartial(loadPartial(row + j, w) * inv, row + j, w) }
    }

    /// Runs `body` with products on one thread when our own threads are in use.
    static func withSingleThreadedProducts(if condition: Bool, _ body: () -> Void) {
        guard condition else { body(); return }
        BLASRuntime.withSingleThreadedProducts(body)
    }
}
