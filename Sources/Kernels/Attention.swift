/// Multi-head scaled dot-product self-attention with a key padding mask, an optional causal
/// mask and grouped-query heads, forward and backward.
///
///     S = s·Q_h·K_gᵀ,  P = softmax(S masked),  O_h = P·V_g,   g = h / (H / Hkv)
///
/// Shape glossary: B sequences, T tokens each, N = B·T rows; H query heads, Hkv key/value
/// heads (H % Hkv == 0), D head size; q [N, H·D], k, v [N, Hkv·D], out [N, H·D] (heads side
/// by side in a row, as the projections produce them, so no transposes are copied);
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

        public init(batch: Int, tokens: Int, heads: Int, kvHeads: Int? = nil, headSize: Int,
                    causal: Bool = false, scale: Float? = nil) {
            let kv = kvHeads ?? heads
            precondition(heads > 0 && kv > 0 && heads % kv == 0, "heads \(heads) not a multiple of kv heads \(kv)")
            self.batch = batch; self.tokens = tokens; self.heads = heads; self.kvHeads = kv
            self.headSize = headSize; self.causal = causal
            self.scale = scale ?? 1 / Float(headSize).squareRoot()
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
        let group = h / hkv, qStride = h * d, kvStride = hkv * d
        withSingleThreadedBLAS(if: threads > 1) {
            Parallel.forEachChunk(count: bN * h, chunkSize: 1, threads: threads) { unit, _ in
                let b = unit / h, head = unit % h, g = head / group
                let qh = q + b * t * qStride + head * d
                let kg = k + b * t * kvStride + g * d
                let vg = v + b * t * kvStride + g * d
                let p = probabilities + unit * t * t
                MatMul.gemm(false, true, t, t, d, shape.scale, qh, qStride, kg, kvStride, 0, p, t)
                let mask = keyMask.map { $0 + b * t }
                for i in 0..<t { maskedSoftmaxRow(p + i * t, query: i, tokens: t, mask: mask, causal: shape.causal) }
                MatMul.gemm(false, false, t, d, t, 1, p, t, vg, kvStride, 0, out + b * t * qStride + head * d, qStride)
            }
        }
    }

    /// Accumulates dQ, dK, dV. dK and dV may be nil only together (frozen keys and values are
    /// not a use case; pass buffers).
    public static func backward(dOut: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                probabilities: UnsafePointer<Float>, shape: Shape,
                                dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                dV: UnsafeMutablePointer<Float>, threads: Int) {
        let (bN, t, h, hkv, d) = (shape.batch, shape.tokens, shape.heads, shape.kvHeads, shape.headSize)
        let group = h / hkv, qStride = h * d, kvStride = hkv * d
        withSingleThreadedBLAS(if: threads > 1) {
            Parallel.forEachChunk(count: bN * hkv, chunkSize: 1, threads: threads) { unit, _ in
                let b = unit / hkv, g = unit % hkv
                let dS = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
                defer { dS.deallocate() }
                let kg = k + b * t * kvStride + g * d, vg = v + b * t * kvStride + g * d
                let dKg = dK + b * t * kvStride + g * d, dVg = dV + b * t * kvStride + g * d
                for head in g * group..<(g + 1) * group {
                    let qh = q + b * t * qStride + head * d
                    let dOh = dOut + b * t * qStride + head * d
                    let dQh = dQ + b * t * qStride + head * d
                    let p = probabilities + (b * h + head) * t * t
                    MatMul.gemm(false, true, t, t, d, 1, dOh, qStride, vg, kvStride, 0, dS, t)
                    MatMul.gemm(true, false, t, d, t, 1, p, t, dOh, qStride, 1, dVg, kvStride)
                    for i in 0..<t {
                        let pr = p + i * t, sr = dS + i * t
                        let k0 = vdot(sr, pr, t)
                        forEach8(t) { j, w in
                            storePartial(loadPartial(pr + j, w) * (loadPartial(sr + j, w) - k0), sr + j, w)
                        }
                    }
                    MatMul.gemm(false, false, t, d, t, shape.scale, dS, t, kg, kvStride, 1, dQh, qStride)
                    MatMul.gemm(true, false, t, d, t, shape.scale, dS, t, qh, qStride, 1, dKg, kvStride)
                }
            }
        }
    }

    /// Softmax over the visible keys of one score row; hidden keys get probability 0.
    @inline(__always)
    static func maskedSoftmaxRow(_ row: UnsafeMutablePointer<Float>, query i: Int, tokens t: Int,
                                 mask: UnsafePointer<Int32>?, causal: Bool) {
        let visible = causal ? i + 1 : t
        guard let mask else {
            Softmax.row(row, into: row, count: visible)
            if visible < t { (row + visible).update(repeating: 0, count: t - visible) }
            return
        }
        var m = -Float.greatestFiniteMagnitude
        var any = false
        for j in 0..<visible where mask[j] != 0 { m = max(m, row[j]); any = true }
        guard any else { row.update(repeating: 0, count: t); return }
        var sum: Float = 0
        for j in 0..<visible {
            if mask[j] != 0 { row[j] = VectorMath.exp(row[j] - m); sum += row[j] } else { row[j] = 0 }
        }
        let inv = 1 / sum
        for j in 0..<visible { row[j] *= inv }
        if visible < t { (row + visible).update(repeating: 0, count: t - visible) }
    }

    /// Runs `body` with OpenBLAS on one thread when our own threads are in use, then restores.
    static func withSingleThreadedBLAS(if condition: Bool, _ body: () -> Void) {
        guard condition else { body(); return }
        let previous = BLASRuntime.threadCount
        BLASRuntime.setThreadCount(1)
        body()
        BLASRuntime.setThreadCount(previous)
    }
}
