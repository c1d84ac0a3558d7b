import CKernels

/// Multi-head scaled dot-product self-attention with a key padding mask, an optional causal
/// mask and grouped-query heads, forward and backward.
///
///     S = s·Q_h·K_gᵀ,  P = softmax(S masked),  O_h = P·V_g,   g = h / (H / Hkv)
///
/// Shape glossary: B sequences, T tokens each, N = B·T rows (or, for packed sequences, T_b
/// tokens for sequence b, its rows following the previous sequence's, N = Σ T_b, no padding
/// rows and no mask needed); H query heads, Hkv key/value
/// heads (H % Hkv == 0), D head size; q [N, H·D], k, v [N, Hkv·D], out [N, H·D] (heads side
/// by side in a row, as the projections produce them, so no transposes are copied; rows may be
/// further apart, `Shape.queryRowStride`/`keyValueRowStride`, e.g. inside a fused [N, 3C] qkv);
/// keyMask [N] (1 = real token, 0 = padding; nil = all real); P [B, H, T, T] saved by forward
/// (packed: sequence b's [H, T_b, T_b] after the previous sequence's).
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
        /// For packed sequences, the first row of each sequence and, last, N; nil when every
        /// sequence has `tokens` rows.
        public private(set) var sequenceStarts: [Int]?
        /// For packed sequences, where each sequence's probabilities start and, last, their count.
        private var probabilityStarts: [Int]?

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

        /// Packed sequences of `lengths` tokens (each ≥ 1), rows back to back; `tokens` is then
        /// the longest length.
        public init(lengths: [Int], heads: Int, kvHeads: Int? = nil, headSize: Int, causal: Bool = false,
                    scale: Float? = nil, queryRowStride: Int? = nil, keyValueRowStride: Int? = nil) {
            precondition(lengths.allSatisfy { $0 > 0 }, "every packed sequence needs at least one token")
            self.init(batch: lengths.count, tokens: lengths.max() ?? 0, heads: heads, kvHeads: kvHeads,
                      headSize: headSize, causal: causal, scale: scale, queryRowStride: queryRowStride,
                      keyValueRowStride: keyValueRowStride)
            var starts = [0], probabilityStarts = [0]
            for length in lengths {
                starts.append(starts.last! + length)
                probabilityStarts.append(probabilityStarts.last! + heads * length * length)
            }
            sequenceStarts = starts
            self.probabilityStarts = probabilityStarts
        }

        /// Rows of all sequences (N).
        public var rows: Int { sequenceStarts?.last ?? batch * tokens }
        /// First row of sequence b.
        func firstRow(_ b: Int) -> Int { sequenceStarts?[b] ?? b * tokens }
        /// Tokens of sequence b.
        func length(_ b: Int) -> Int { sequenceStarts.map { $0[b + 1] - $0[b] } ?? tokens }
        /// Offset of sequence b's probabilities [H, T_b, T_b].
        func probabilityOffset(_ b: Int) -> Int { probabilityStarts?[b] ?? b * heads * tokens * tokens }

        /// Floats in the saved probabilities P.
        public var probabilityCount: Int { probabilityOffset(batch) }
    }

    /// out = attention(q, k, v); writes the saved probabilities [B, H, T, T].
    public static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               keyMask: UnsafePointer<Int32>?, shape: Shape,
                               probabilities: UnsafeMutablePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, threads: Int) {
        let (bN, h, hkv, d) = (shape.batch, shape.heads, shape.kvHeads, shape.headSize)
        let group = h / hkv, qStride = shape.queryRowStride, kvStride = shape.keyValueRowStride, oStride = h * d
        // The key mask as 0/1 floats, so the softmax can apply it with vector multiplies.
        let keepMask: UnsafeMutablePointer<Float>? = keyMask.map { mask in
            let f = UnsafeMutablePointer<Float>.allocate(capacity: shape.rows)
            for j in 0..<shape.rows { f[j] = mask[j] != 0 ? 1 : 0 }
            return f
        }
        defer { keepMask?.deallocate() }
        // Each unit lays out s·K_gᵀ and V_g in panels for the panel kernel (its products
        // run on the calling thread, and each output is one FMA chain, whatever T is).
        Parallel.forEachChunk(count: bN * h, chunkSize: 1, threads: threads) { unit, _ in
            let b = unit / h, head = unit % h, g = head / group
            let t = shape.length(b), row = shape.firstRow(b)
            let kFloats = lethe_panel_floats(d, t), vFloats = lethe_panel_floats(t, d)
            let qh = q + row * qStride + head * d
            let kg = k + row * kvStride + g * d
            let vg = v + row * kvStride + g * d
            let p = probabilities + shape.probabilityOffset(b) + head * t * t
            let panels = UnsafeMutablePointer<Float>.allocate(capacity: kFloats + vFloats)
            defer { panels.deallocate() }
            lethe_panel_pack(kg, kvStride, d, t, 1, shape.scale, panels)
            lethe_panel_multiply(panels, d, t, qh, t, qStride, 1, p, t, 0)
            let keep = keepMask.map { UnsafePointer($0) + row }
            lethe_softmax_rows(p, t, t, keep, shape.causal ? 1 : 0)
            lethe_panel_pack(vg, kvStride, t, d, 0, 1, panels + kFloats)
            lethe_panel_multiply(panels + kFloats, t, d, p, t, t, 1, out + row * oStride + head * d, oStride, 0)
        }
    }

    /// Accumulates dQ, dK, dV, or overwrites them when `accumulate` is false (saves the caller
    /// a zero fill of [N, (H + 2·Hkv)·D] floats).
    public static func backward(dOut: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                probabilities: UnsafePointer<Float>, shape: Shape,
                                dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                dV: UnsafeMutablePointer<Float>, accumulate: Bool = true, threads: Int) {
        let (bN, h, hkv, d) = (shape.batch, shape.heads, shape.kvHeads, shape.headSize)
        let group = h / hkv, qStride = shape.queryRowStride, kvStride = shape.keyValueRowStride, oStride = h * d
        Parallel.forEachChunk(count: bN * hkv, chunkSize: 1, threads: threads) { unit, _ in
            let b = unit / hkv, g = unit % hkv
            let t = shape.length(b), row = shape.firstRow(b)
            // Panels: Vᵀ (for dP), s·K (for dQ), and per head dO_h (for dV) and s·Q_h (for dK).
            let vtFloats = lethe_panel_floats(d, t), nFloats = lethe_panel_floats(t, d)
            let dS = UnsafeMutablePointer<Float>.allocate(capacity: t * t + vtFloats + 3 * nFloats)
            defer { dS.deallocate() }
            let vtPanels = dS + t * t, kPanels = vtPanels + vtFloats
            let dOPanels = kPanels + nFloats, qPanels = dOPanels + nFloats
            let kg = k + row * kvStride + g * d, vg = v + row * kvStride + g * d
            let dKg = dK + row * kvStride + g * d, dVg = dV + row * kvStride + g * d
            lethe_panel_pack(vg, kvStride, d, t, 1, 1, vtPanels)
            lethe_panel_pack(kg, kvStride, t, d, 0, shape.scale, kPanels)
            for head in g * group..<(g + 1) * group {
                // The first head of a group starts dK and dV (and each head its dQ) at zero.
                let addKV: Int32 = accumulate || head > g * group ? 1 : 0, addQ: Int32 = accumulate ? 1 : 0
                let qh = q + row * qStride + head * d
                let dOh = dOut + row * oStride + head * d
                let dQh = dQ + row * qStride + head * d
                let p = probabilities + shape.probabilityOffset(b) + head * t * t
                lethe_panel_multiply(vtPanels, d, t, dOh, t, oStride, 1, dS, t, 0)
                lethe_panel_pack(dOh, oStride, t, d, 0, 1, dOPanels)
                // dV += Pᵀ·dO, reading P transposed in place.
                lethe_panel_multiply(dOPanels, t, d, p, t, 1, t, dVg, kvStride, addKV)
                for i in 0..<t {
                    let pr = p + i * t, sr = dS + i * t
                    let k0 = vdot(sr, pr, t)
                    forEach8(t) { j, w in
                        storePartial(loadPartial(pr + j, w) * (loadPartial(sr + j, w) - k0), sr + j, w)
                    }
                }
                lethe_panel_multiply(kPanels, t, d, dS, t, t, 1, dQh, qStride, addQ)
                lethe_panel_pack(qh, qStride, t, d, 0, shape.scale, qPanels)
                lethe_panel_multiply(qPanels, t, d, dS, t, 1, t, dKg, kvStride, addKV)
            }
        }
    }
}
