import CKernels

/// GELU, exact erf form (BERT), forward and backward.
///
///     y = ½·x·(1 + erf(x/√2))
///     dy/dx = ½·(1 + erf(x/√2)) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π)
///
/// Shape glossary: `count` elements, flat; forward saves nothing beyond its input x.
/// erf and exp are the vectorised approximations of `VectorMath` (|error| ≤ 1.5e-7).
/// Elements are processed in fixed 4096-element chunks: same bits for every thread count.
/// The forward passes run on the C kernel `lethe_gelu`: the same operations in the same order
/// as `values` below, on AVX2 intrinsics, in half the time of Swift's SIMD code.
public enum GELU {
    static let chunk = 4096

    /// y = GELU(x) (x may equal y).
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            lethe_gelu(x + range.lowerBound, y + range.lowerBound, nil, range.count)
        }
    }

    /// dX += dY·GELU′(x).
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let d = values(loadPartial(x + p, w)).derivative
                storePartial(vfma(loadPartial(dY + p, w), d, loadPartial(dX + p, w)), dX + p, w)
            }
        }
    }

    /// y = GELU(x) and d = GELU′(x) in one pass: the erf and Gaussian terms are shared, and
    /// backward then needs no transcendental at all (`backward(dY:derivative:dX:…)`).
    /// Costs one [count] buffer; use it when memory allows (training), the plain form otherwise.
    /// x may equal y (in place).
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               derivative: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            let p = range.lowerBound
            lethe_gelu(x + p, y + p, derivative + p, range.count)
        }
    }

    /// dX += dY·d with d = GELU′(x) saved by `forward(_:into:derivative:…)`.
    public static func backward(dY: UnsafePointer<Float>, derivative: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let v = vfma(loadPartial(dY + p, w), loadPartial(derivative + p, w), loadPartial(dX + p, w))
                storePartial(v, dX + p, w)
            }
        }
    }

    /// gradient ← gradient·d in place, with d = GELU′(x) saved by `forward(_:into:derivative:…)`:
    /// turns dY into dX without a second buffer (overwrites; use when dY is not needed after).
    public static func backwardInPlace(_ gradient: UnsafeMutablePointer<Float>, derivative: UnsafePointer<Float>,
                                       count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                storePartial(loadPartial(gradient + p, w) * loadPartial(derivative + p, w), gradient + p, w)
            }
        }
    }

    /// GELU(v) and GELU′(v): with Φ = ½·(1 + erf(v/√2)), y = v·Φ and y′ = Φ + v·e^(−v²/2)/√(2π).
    @inline(__always)
    static func values(_ v: Float8) -> (y: Float8, derivative: Float8) {
        let (e, g) = verfAndGaussian(v * Float8(repeating: 0.70710678118654752))
        let phi = vfma(Float8(repeating: 0.5), e, Float8(repeating: 0.5))
        return (v * phi, vfma(v * g, Float8(repeating: 0.39894228040143268), phi))
    }
}
