/// GELU, exact erf form (BERT), forward and backward.
///
///     y = ½·x·(1 + erf(x/√2))
///     dy/dx = ½·(1 + erf(x/√2)) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π)
///
/// Shape glossary: `count` elements, flat; forward saves nothing beyond its input x.
/// erf and exp are the vectorised approximations of `VectorMath` (|error| ≤ 1.5e-7).
/// Elements are processed in fixed 4096-element chunks: same bits for every thread count.
public enum GELU {
    static let chunk = 4096

    /// y = GELU(x) (x may equal y).
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let v = loadPartial(x + p, w)
                let e = verfAndGaussian(v * Float8(repeating: 0.70710678118654752)).erf
                storePartial(0.5 * v * (1 + e), y + p, w)
            }
        }
    }

    /// dX += dY·GELU′(x).
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let v = loadPartial(x + p, w)
                let (e, g) = verfAndGaussian(v * Float8(repeating: 0.70710678118654752))
                let d = 0.5 * (1 + e) + v * g * Float8(repeating: 0.39894228040143268)
                storePartial(loadPartial(dX + p, w) + loadPartial(dY + p, w) * d, dX + p, w)
            }
        }
    }

    /// Fused forward for a saved pre-activation: h = GELU(x) and nothing else; provided so
    /// callers can keep x for backward and overwrite only h.
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               rows n: Int, columns c: Int, threads: Int) {
        forward(x, into: y, count: n * c, threads: threads)
    }
}
