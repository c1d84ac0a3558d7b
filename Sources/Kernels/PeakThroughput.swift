import CKernels
import Dispatch

/// The multiply-add throughput of this CPU: what no kernel, ours or PyTorch's, can exceed.
/// Benchmarks print it beside their rates, so a speed target can be checked against the
/// machine before anyone tries to reach it.
///
/// Each thread runs a loop of sixteen independent multiply-add chains in registers with no
/// memory traffic (C with intrinsics, Sources/CKernels/peak_loops.c, since our Swift code is
/// built for AVX2): the widest float32 FMA the CPU runs (AVX-512 where present, else AVX2), and
/// the bfloat16 dot product `vdpbf16ps` (two multiply-adds per float32 lane) where the CPU has
/// AVX512_BF16. A measurement is the **median** of repeated runs — never inferred from a GEMM —
/// so a one-off fast or slow run moves nothing. OpenBLAS's sgemm on a large product is timed
/// beside it for information only.
public enum PeakThroughput {
    public struct Measurement: Sendable, Codable {
        /// Threads that ran the loop at once.
        public var threads: Int
        /// Float32 lanes per FMA instruction of the loop (16 with AVX-512, 8 with AVX2).
        public var vectorWidth: Int
        /// Float32 FLOPs (2 per multiply-add) per second, all threads together, 10⁹/s: the
        /// median of the runs.
        public var gflops: Double
        /// Every run's rate, in order (the spread says how noisy the machine was).
        public var gflopsRuns: [Double]
        /// The median run's slowest thread, times the thread count (shows an unfair share).
        public var gflopsSlowestThread: Double
        /// The bfloat16 dot-product loop's rate (median), nil when the CPU lacks AVX512_BF16.
        public var bf16Gflops: Double?
        /// OpenBLAS sgemm on a 1536³ product on the same number of threads (best of three);
        /// information only, never part of the ceiling.
        public var sgemmGflops: Double
        /// The float32 ceiling: the FMA loop's median rate.
        public var ceilingGflops: Double

        /// The ceiling of products in `precision` (bf16 falls back to float32 without BF16 units).
        public func ceiling(_ precision: Precision) -> Double {
            precision == .bf16 ? bf16Gflops ?? ceilingGflops : ceilingGflops
        }
    }

    /// Runs each loop on `threads` threads at once, `repetitions` times for about `seconds`
    /// each, and returns the median rates.
    public static func measure(threads: Int, seconds: Double = 0.25, repetitions: Int = 5) -> Measurement {
        precondition(threads >= 1 && seconds > 0 && repetitions >= 1)
        var lanes: Int32 = 0
        _ = lethe_peak_fp32_loop(1, 1, &lanes)
        let fp32 = runs(threads: threads, seconds: seconds, repetitions: repetitions) { iterations, seed in
            var width: Int32 = 0
            return lethe_peak_fp32_loop(iterations, seed, &width)
        }
        let bf16: [(Double, Double)]? = lethe_cpu_has_avx512_bf16() == 0 ? nil
            : runs(threads: threads, seconds: seconds, repetitions: repetitions) { iterations, seed in
                lethe_peak_bf16_loop(iterations, seed)
            }
        let median = fp32.sorted { $0.0 < $1.0 }[fp32.count / 2]
        return Measurement(threads: threads, vectorWidth: Int(lanes), gflops: median.0, gflopsRuns: fp32.map(\.0),
                           gflopsSlowestThread: median.1, bf16Gflops: bf16.map { $0.map(\.0).sorted()[$0.count / 2] },
                           sgemmGflops: sgemmRate(threads: threads), ceilingGflops: median.0)
    }

    /// `repetitions` runs of `loop` on `threads` threads at once: (total rate, slowest thread's
    /// rate × threads) per run, in GFLOP/s. The iteration count is calibrated on one thread.
    private static func runs(threads: Int, seconds: Double, repetitions: Int,
                             _ loop: @escaping @Sendable (Int, Float) -> Double) -> [(Double, Double)] {
        var iterations = 1 << 12
        while true {
            let t = time { _ = loop(iterations, 1) }
            if t >= 0.02 || iterations >= 1 << 30 {
                iterations = max(1 << 12, Int(Double(iterations) * seconds / max(t, 1e-6)))
                break
            }
            iterations *= 4
        }
        let runIterations = iterations
        let flops = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        let seconds = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        defer { flops.deallocate(); seconds.deallocate() }
        let box = UncheckedSendable((flops, seconds))
        var results: [(Double, Double)] = []
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                var done = 0.0
                let t = time { done = loop(runIterations, Float(i + 1)) }
                box.value.0[i] = done
                box.value.1[i] = t
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let perThread = flops[0]
            results.append((perThread * Double(threads) / wall / 1e9,
                            perThread / seconds.max()! * Double(threads) / 1e9))
        }
        return results
    }

    /// GFLOP/s of OpenBLAS sgemm on one 1536 × 1536 × 1536 product (7.2 GFLOP) on `threads`
    /// threads, best of three after a warm-up; OpenBLAS's thread count is restored afterwards.
    static func sgemmRate(threads: Int, size n: Int = 1536) -> Double {
        let previous = BLASRuntime.threadCount
        BLASRuntime.setThreadCount(threads)
        defer { BLASRuntime.setThreadCount(previous) }
        let a = Tensor(shape: [n, n]), b = Tensor(shape: [n, n]), c = Tensor(shape: [n, n])
        for i in 0..<n * n { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for k in 0..<4 {
            let t = time { MatMul.gemm(false, true, n, n, n, 1, a.pointer, n, b.pointer, n, 0, c.data, n) }
            if k > 0 { best = min(best, t) }
        }
        return 2 * Double(n * n * n) / best / 1e9
    }

    private static func time(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
