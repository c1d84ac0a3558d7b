/// Vectorised transcendental functions on 8 float lanes (AVX2), for the elementwise kernels.
///
/// libm's `expf`/`erff` are scalar (~8 ns a call); these are polynomial approximations:
/// - exp: range reduction x = n·ln2 + r, |r| ≤ ln2/2, degree-6 Taylor polynomial for e^r
///   (truncation error ≤ r⁷/7! ≈ 1.2e-7 relative), 2^n assembled in the exponent bits.
///   Inputs are clamped to [-87.3, 88.3], so results stay normal and finite.
/// - erf: Abramowitz & Stegun 7.1.26, erf(x) = 1 − t·(a1 + t(a2 + …))·e^(−x²),
///   t = 1/(1 + p·|x|), absolute error ≤ 1.5e-7.
public typealias Float8 = SIMD8<Float>

/// a·b + c in one rounding (vfmadd): Swift does not contract `a * b + c` on its own.
@inline(__always)
func vfma(_ a: Float8, _ b: Float8, _ c: Float8) -> Float8 { c.addingProduct(a, b) }

@inline(__always)
func vexp(_ x: Float8) -> Float8 {
    let xc = vmin(vmax(x, Float8(repeating: -87.3)), Float8(repeating: 88.3))
    // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
    let magic = Float8(repeating: 12582912.0)
    let shifted = vfma(xc, Float8(repeating: 1.44269504088896341), magic)
    let n = shifted - magic
    // r = x − n·ln2 with ln2 split in two (Cody–Waite), so r keeps its low bits.
    var r = vfma(n, Float8(repeating: -0.693145751953125), xc)
    r = vfma(n, Float8(repeating: -1.42860682030941723212e-6), r)
    var p = Float8(repeating: 1.0 / 720.0)
    p = vfma(p, r, Float8(repeating: 1.0 / 120.0))
    p = vfma(p, r, Float8(repeating: 1.0 / 24.0))
    p = vfma(p, r, Float8(repeating: 1.0 / 6.0))
    p = vfma(p, r, Float8(repeating: 0.5))
    p = vfma(p, r, Float8(repeating: 1.0))
    p = vfma(p, r, Float8(repeating: 1.0))
    let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: Float8.self)
    return p * scale
}

/// erf(x) and e^(−x²) together (GELU's backward needs both).
@inline(__always)
func verfAndGaussian(_ x: Float8) -> (erf: Float8, gaussian: Float8) {
    let sign = unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x8000_0000
    let ax = unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: Float8.self)
    let t = 1 / vfma(Float8(repeating: 0.3275911), ax, Float8(repeating: 1))
    var p = Float8(repeating: 1.061405429)
    p = vfma(p, t, Float8(repeating: -1.453152027))
    p = vfma(p, t, Float8(repeating: 1.421413741))
    p = vfma(p, t, Float8(repeating: -0.284496736))
    p = vfma(p, t, Float8(repeating: 0.254829592))
    p = p * t
    let g = vexp(-(x * x))
    // erf(|x|) = 1 − p·g ≥ 0, so erf(x) is that value with the sign bit of x (odd function):
    // a bitwise or instead of a compare and blend.
    let e = vfma(-p, g, Float8(repeating: 1))
    return (unsafeBitCast(unsafeBitCast(e, to: SIMD8<UInt32>.self) | sign, to: Float8.self), g)
}

/// Lane-wise max/min. The standard library's generic `pointwiseMax`/`clamped` are not
/// specialised here and cost a call per vector; a compare and blend is one instruction each.
@inline(__always)
func vmax(_ a: Float8, _ b: Float8) -> Float8 { a.replacing(with: b, where: a .< b) }

@inline(__always)
func vmin(_ a: Float8, _ b: Float8) -> Float8 { a.replacing(with: b, where: b .< a) }

@inline(__always)
func vsigmoid(_ x: Float8) -> Float8 { 1 / (1 + vexp(-x)) }

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always)
func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}

/// Applies `body(offset, width)` to `count` floats eight at a time; the last call may have
/// width < 8. `body` is called from one place only, so the optimiser inlines the closure into
/// the loop (a closure called from two places stays a call per vector and loses its
/// registers). Same bits for a lane whatever its position.
@inline(__always)
func forEach8(_ count: Int, _ body: (Int, Int) -> Void) {
    var i = 0
    while i < count { body(i, min(8, count &- i)); i &+= 8 }
}

/// Eight floats from p, or the first n (< 8) and `pad` in the other lanes. The partial case
/// copies bytes instead of inserting lanes: lane inserts on one path make LLVM scalarise the
/// arithmetic that follows on both paths.
@inline(__always)
func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, pad: Float = 0) -> Float8 {
    if n == 8 { return load8(p) }
    var v = Float8(repeating: pad)
    withUnsafeMutableBytes(of: &v) { $0.baseAddress?.copyMemory(from: p, byteCount: n * 4) }
    return v
}

/// Stores the first n lanes of v at p (all eight when n = 8).
@inline(__always)
func storePartial(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == 8 { store8(v, p); return }
    withUnsafeBytes(of: v) { bytes in
        if let base = bytes.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: n * 4) }
    }
}

/// v with the lanes from n on set to zero (n ≥ 8 keeps all): a compare and blend, no lane inserts.
@inline(__always)
func vfirst(_ v: Float8, _ n: Int) -> Float8 {
    let lanes = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
    return v.replacing(with: 0, where: lanes .>= SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: min(n, 8))))
}

/// The largest lane (the standard library's generic `max()` is a call with a compare per lane).
@inline(__always)
func vhmax(_ v: Float8) -> Float {
    let h = v.lowHalf.replacing(with: v.highHalf, where: v.lowHalf .< v.highHalf)
    let q = h.lowHalf.replacing(with: h.highHalf, where: h.lowHalf .< h.highHalf)
    return q[0] < q[1] ? q[1] : q[0]
}

/// Scalar versions through the same vector code (so a value never depends on its lane).
public enum VectorMath {
    /// e^x with the kernels' polynomial approximation.
    public static func exp(_ x: Float) -> Float { vexp(Float8(repeating: x))[0] }
    /// erf(x) with the kernels' approximation.
    public static func erf(_ x: Float) -> Float { verfAndGaussian(Float8(repeating: x)).erf[0] }
}

/// Σ p[j] with eight lane accumulators (fixed order, so deterministic).
@inline(__always)
func vsum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = Float8()
    forEach8(count) { j, w in acc += loadPartial(p + j, w) }
    return acc.sum()
}

/// Σ p[j]·q[j] with eight lane accumulators.
@inline(__always)
func vdot(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = Float8()
    forEach8(count) { j, w in acc += loadPartial(p + j, w) * loadPartial(q + j, w) }
    return acc.sum()
}
