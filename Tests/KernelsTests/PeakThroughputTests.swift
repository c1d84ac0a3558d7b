import CKernels
@testable import Kernels
import Testing

/// The peak loops count real work and a measurement is the median of its runs, never a GEMM.
@Suite struct PeakThroughputTests {
    @Test func loopsReportTheirWork() {
        var lanes: Int32 = 0
        let flops = lethe_peak_fp32_loop(1000, 1, &lanes)
        // Chains of one FMA (2 FLOPs per lane) per iteration: sixteen with AVX-512's 32
        // registers, twelve with AVX2's 16 (the operands need two of them).
        #expect(lanes == 16 || lanes == 8)
        #expect(flops == 2 * (lanes == 16 ? 16 : 12) * Double(lanes) * 1000)
        let bf16 = lethe_peak_bf16_loop(1000, 1)
        #expect(bf16 == (lethe_cpu_has_avx512_bf16() != 0 ? 4 * 16 * 16 * 1000 : 0))
    }

    @Test func measurementIsTheMedianRun() {
        let one = PeakThroughput.measure(threads: 1, seconds: 0.02, repetitions: 3)
        #expect(one.threads == 1 && one.gflopsRuns.count == 3)
        #expect(one.gflops == one.gflopsRuns.sorted()[1], "\(one.gflopsRuns)")
        #expect(one.gflops.isFinite && one.gflops > 1, "\(one.gflops) GFLOP/s")
        #expect(one.ceilingGflops == one.gflops && one.ceiling(.fp32) == one.gflops)
        if let bf16 = one.bf16Gflops {
            #expect(bf16.isFinite && bf16 > 1 && one.ceiling(.bf16) == bf16)
        } else {
            #expect(one.ceiling(.bf16) == one.gflops)
        }
        #expect(one.sgemmGflops.isFinite && one.sgemmGflops > 1)
    }
}
