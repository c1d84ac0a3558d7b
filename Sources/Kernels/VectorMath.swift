/// Vectorised transcendental functions on 8 float lanes (AVX2), for the elementwise kernels.
///
/// libm's `expf`/`erff` are scalar (~8 ns a call); these are polynomial approximations:
/// - exp: range reduction x = n·ln2 + r, |r| ≤ ln2/2, degree-6 Taylor polynomial for e^r
///   (truncation error ≤ r⁷/7! ≈ 1.2e-7 relative), 2^n assembled in the exponent bits.
///   Inputs are clamped to [-87.3, 88.3], so results stay normal and finite.
/// - erf: Abramowitz & Stegun 7.1.26, erf(x) = 1 − t·(a1 + t(a2 + …))·e^(−x²),
///   t = 1/(1 + p·|x|), absolute error ≤ 1.5e-7.
public typealias Float8 = SIMD8<Float>

@inline(__always)
func vexp(_ x: Float8) -> Float8 {
    let xc = x.clamped(lowerBound: Float8(repeating: -87.3), upperBound: Float8(repeating: 88.3))
    // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
    let magic = Float8(repeating: 12582912.0)
    let shifted = xc * Float8(repeating: 1.44269504088896341) + magic
    let n = shifted - magic
    var r = xc - n * Float8(repeating: 0.693145751953125)
    r = r - n * Float8(repeating: 1.42860682030941723212e-6)
    var p = Float8(repeating: 1.0 / 720.0)
    p = p * r + Float8(repeating: 1.0 / 120.0)
    p = p * r + Float8(repeating: 1.0 / 24.0)
    p = p * r + Float8(repeating: 1.0 / 6.0)
    p = p * r + Float8(repeating: 0.5)
    p = p * r + Float8(repeating: 1.0)
    p = p * r + Float8(repeating: 1.0)
    let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: Float8.self)
    return p * scale
}

/// erf(x) and e^(−x²) together (GELU's backward needs both).
@inline(__always)
func verfAndGaussian(_ x: Float8) -> (erf: Float8, gaussian: Float8) {
    let ax = unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: Float8.self)
    let t = 1 / (1 + Float8(repeating: 0.3275911) * ax)
    var p = Float8(repeating: 1.061405429)
    p = p * t + Float8(repeating: -1.453152027)
    p = p * t + Float8(repeating: 1.421413741)
    p = p * t + Float8(repeating: -0.284496736)
    p = p * t + Float8(repeating: 0.254829592)
    p = p * t
    let g = vexp(-(x * x))
    let e = 1 - p * g
    return (e.replacing(with: -e, where: x .< 0), g)
}

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

/// Applies `body` to `count` floats eight at a time; the tail is padded with `pad` and only
/// the valid lanes are written back. Same bits for a lane whatever its position.
@inline(__always)
func forEach8(_ count: Int, _ body: (Int, Int) -> Void) {
    var i = 0
    while i + 8 <= count { body(i, 8); i += 8 }
    if i < count { body(i, count - i) }
}

@inline(__always)
func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, pad: Float = 0) -> Float8 {
    if n == 8 { return load8(p) }
    var v = Float8(repeating: pad)
    for j in 0..<n { v[j] = p[j] }
    return v
}

@inline(__always)
func storePartial(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == 8 { store8(v, p); return }
    for j in 0..<n { p[j] = v[j] }
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
