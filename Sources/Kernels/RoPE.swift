import Foundation

/// Rotary position embedding, adjacent-pair layout (Llama GGUF / Meta convention), forward
/// and backward.
///
///     θ_i = pos · base^(−2i/D),  i = 0 ..< D/2
///     (y[2i], y[2i+1]) = (x[2i]·cos θ_i − x[2i+1]·sin θ_i,  x[2i]·sin θ_i + x[2i+1]·cos θ_i)
///     backward is the inverse rotation: dx[2i] += dy[2i]·cos + dy[2i+1]·sin,
///                                       dx[2i+1] += −dy[2i]·sin + dy[2i+1]·cos
///
/// Shape glossary: N rows (N = B·T), H heads, D head size (even); x, y [N, H·D];
/// position of row n = positions[n] if given, else n mod T. The "rotate half" layout would
/// give garbage with SmolLM2's GGUF weights (ASSETS.md).
public enum RoPE {
    /// cos θ and sin θ for positions 0 ..< maxPositions, computed once in Double.
    public final class Table: @unchecked Sendable {
        public let headSize: Int
        public let base: Double
        public let maxPositions: Int
        /// [maxPositions, D/2] each.
        let cosines: UnsafeMutablePointer<Float>
        let sines: UnsafeMutablePointer<Float>

        public init(headSize: Int, base: Double, maxPositions: Int) {
            precondition(headSize % 2 == 0 && headSize > 0, "RoPE head size \(headSize) must be even")
            self.headSize = headSize; self.base = base; self.maxPositions = maxPositions
            let half = headSize / 2
            cosines = .allocate(capacity: maxPositions * half)
            sines = .allocate(capacity: maxPositions * half)
            for p in 0..<maxPositions {
                for i in 0..<half {
                    let angle = Double(p) * pow(base, -2.0 * Double(i) / Double(headSize))
                    cosines[p * half + i] = Float(cos(angle))
                    sines[p * half + i] = Float(sin(angle))
                }
            }
        }

        deinit { cosines.deallocate(); sines.deallocate() }
    }

    /// y = rotate(x) (x may equal y).
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               table: Table, positions: UnsafePointer<Int32>?,
                               rows n: Int, tokens t: Int, heads h: Int, threads: Int) {
        rotate(x, y, table: table, positions: positions, rows: n, tokens: t, heads: h,
               threads: threads, inverse: false, accumulate: false)
    }

    /// dX += rotate⁻¹(dY).
    public static func backward(dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                                table: Table, positions: UnsafePointer<Int32>?,
                                rows n: Int, tokens t: Int, heads h: Int, threads: Int) {
        rotate(dY, dX, table: table, positions: positions, rows: n, tokens: t, heads: h,
               threads: threads, inverse: true, accumulate: true)
    }

    static func rotate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, table: Table,
                       positions: UnsafePointer<Int32>?, rows n: Int, tokens t: Int, heads h: Int,
                       threads: Int, inverse: Bool, accumulate: Bool) {
        let d = table.headSize, half = d / 2, c = h * d
        let sign: Float = inverse ? -1 : 1
        Parallel.forEachChunk(count: n, chunkSize: 16, threads: threads) { _, rows in
            for r in rows {
                let pos = positions.map { Int($0[r]) } ?? (r % t)
                precondition(pos >= 0 && pos < table.maxPositions, "position \(pos) outside the RoPE table")
                let cs = table.cosines + pos * half, sn = table.sines + pos * half
                for head in 0..<h {
                    let xr = x + r * c + head * d, yr = y + r * c + head * d
                    for i in 0..<half {
                        let a = xr[2 * i], b = xr[2 * i + 1]
                        let co = cs[i], si = sign * sn[i]
                        let y0 = a * co - b * si, y1 = a * si + b * co
                        if accumulate { yr[2 * i] += y0; yr[2 * i + 1] += y1 } else { yr[2 * i] = y0; yr[2 * i + 1] = y1 }
                    }
                }
            }
        }
    }
}
