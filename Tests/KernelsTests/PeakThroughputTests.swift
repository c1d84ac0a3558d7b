@testable import Kernels
import Testing

/// The peak loop computes what it claims (twelve chains a ← c + a·m, fused), so the rate it
/// reports counts real multiply-adds; a measurement is a finite positive rate, and its ceiling
/// is never below the loop or the sgemm rate it measured.
@Suite struct PeakThroughputTests {
    @Test func loopMatchesScalarChains() {
        let iterations = 1000, seed: Float = 3
        let m: Float = 0.999_99, c: Float = 1e-6 * seed
        var lanes = [Float](repeating: 0, count: 12)
        for k in 0..<12 {
            var a = seed + Float(k)
            for _ in 0..<iterations { a = c.addingProduct(a, m) }
            lanes[k] = a
        }
        // The loop folds (a0+a1+a2+a3) + … lane-wise, then sums the eight lanes; every lane of a
        // chain holds the same value, so the fold is 8 × the scalar fold.
        var groups: [Float] = []
        for g in stride(from: 0, to: 12, by: 4) {
            let pair: Float = lanes[g] + lanes[g + 1]
            groups.append(pair + lanes[g + 2] + lanes[g + 3])
        }
        let folded: Float = groups[0] + groups[1] + groups[2]
        let total = 8 * folded
        let loop = PeakThroughput.fmaLoop(iterations: iterations, seed: seed)
        #expect(abs(loop - total) <= 1e-5 * abs(total), "loop \(loop) vs scalar chains \(total)")
    }

    @Test func measurementIsAPositiveRate() {
        let one = PeakThroughput.measure(threads: 1, seconds: 0.02, repetitions: 1)
        #expect(one.threads == 1 && one.vectorWidth == 8)
        #expect(one.gflops.isFinite && one.gflops > 1, "\(one.gflops) GFLOP/s")
        #expect(one.gflopsSlowestThread <= one.gflops * 1.05)
        // The ceiling covers both the loop and what OpenBLAS actually reaches.
        #expect(one.sgemmGflops.isFinite && one.sgemmGflops > 1, "sgemm \(one.sgemmGflops) GFLOP/s")
        #expect(one.ceilingGflops >= one.gflops && one.ceilingGflops >= one.sgemmGflops)
        #expect(one.ceilingGflops == (one.fullWidthAVX512 ? max(2 * one.gflops, one.sgemmGflops) : one.gflops))
    }
}
