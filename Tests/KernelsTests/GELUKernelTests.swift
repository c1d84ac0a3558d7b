import CKernels
@testable import Kernels
import Testing

/// The C GELU kernel gives every finite input the bits of the Swift expression it replaces
/// (`GELU.values`), value and derivative, for counts with and without a partial last vector and
/// in place, on each of its paths (AVX2, and AVX-512 where the CPU has it); so runs trained
/// before it, or on another CPU, replay bit for bit.
@Test func cGELUMatchesTheSwiftExpressionBitForBit() {
    var rng = TestRandom(seed: 44)
    let special: [Float] = [0, -0, 1e-30, -1e-30, 1, -1, 0.5, -0.5, 3, -3, 5.5, -5.5, 9.3, -9.3, 13, -13, 50, -50,
                            1e30, -1e30, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude,
                            -.greatestFiniteMagnitude, .infinity, -.infinity]
    for count in [1, 7, 8, 9, 15, 16, 17, 4096 + 5] {
        let x = (0..<count).map { i in i < special.count ? special[i] : rng.normal() * Float(1 + i % 7) }
        // The kernel as called (the widest path this CPU has), then each path alone.
        let paths: [(String, (UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?) -> Bool)] = [
            ("dispatched", { lethe_gelu($0, $1, $2, count); return true }),
            ("AVX2", { lethe_gelu_avx2($0, $1, $2, count); return true }),
            ("AVX-512", { lethe_gelu_avx512($0, $1, $2, count) != 0 }),
        ]
        for (name, path) in paths {
            var y = [Float](repeating: .nan, count: count), d = [Float](repeating: .nan, count: count)
            var inPlace = x
            guard path(x, &y, &d) else { continue }   // AVX-512 on a CPU without it
            _ = inPlace.withUnsafeMutableBufferPointer { path($0.baseAddress!, $0.baseAddress!, nil) }
            for i in 0..<count {
                let (value, slope) = GELU.values(Float8(repeating: x[i]))
                #expect(y[i].bitPattern == value[0].bitPattern, "\(name) GELU(\(x[i])): \(y[i]) against \(value[0])")
                #expect(d[i].bitPattern == slope[0].bitPattern, "\(name) GELU′(\(x[i])): \(d[i]) against \(slope[0])")
                #expect(inPlace[i].bitPattern == value[0].bitPattern, "\(name) in place, GELU(\(x[i]))")
            }
        }
    }
}
