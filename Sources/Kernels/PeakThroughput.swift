import Dispatch

/// The float32 multiply-add throughput of this CPU: what no kernel, ours or PyTorch's, can
/// exceed. Benchmarks print it beside their rates, so a speed target can be checked against
/// the machine before anyone tries to reach it.
///
/// Each thread runs one loop of fused multiply-adds on twelve independent 8-lane registers
/// (enough to cover the FMA latency of every current x86-64 core; with the two constants they
/// fit AVX2's sixteen registers, so nothing spills), with no memory traffic. Our code is built
/// for AVX2, so the loop is 8 lanes wide. That is the whole peak on AMD Zen 4, whose 512-bit
/// units are two 256-bit halves, and on every AVX2-only core; on a core with full-width AVX-512
/// units (Intel server cores, Zen 5) OpenBLAS's AVX-512 kernels can run up to twice as fast.
/// So a measurement also times one large sgemm: where sgemm beats the 8-lane loop, the CPU
/// must have full-width AVX-512 and the ceiling is taken as twice the loop (never below the
/// sgemm rate itself). `ceilingGflops` is the number to compare work against.
public enum PeakThroughput {
    public struct Measurement: Sendable, Codable {
        /// Threads that ran the loop at once.
        public var threads: Int
        /// Float32 lanes per FMA instruction of the loop.
        public var vectorWidth: Int
        /// FLOPs (2 per multiply-add) per second, all threads together, in units of 10⁹.
        public var gflops: Double
        /// The same for the slowest thread, times the thread count (shows an unfair share).
        public var gflopsSlowestThread: Double
        /// OpenBLAS sgemm on a 1536³ product on the same number of threads (best of three).
        public var sgemmGflops: Double
        /// True when sgemm outran the 8-lane loop: the CPU has full-width AVX-512 units.
        public var fullWidthAVX512: Bool
        /// The float32 multiply-add ceiling: the loop's rate, or twice it with full-width
        /// AVX-512, and never below the measured sgemm rate.
        public var ceilingGflops: Double
    }

    /// Runs the loop on `threads` threads at once for about `seconds` and returns the rate.
    /// The best of `repetitions` runs is kept: the loop can only be slowed down by the host.
    public static func measure(threads: Int, seconds: Double = 0.25, repetitions: Int = 3) -> Measurement {
        precondition(threads >= 1 && seconds > 0 && repetitions >= 1)
        // Calibrate the iteration count on one thread so each run lasts about `seconds`.
        var iterations = 1 << 16
        while true {
            let t = time { _ = fmaLoop(iterations: iterations, seed: 1) }
            if t >= 0.02 || iterations >= 1 << 30 {
                iterations = max(1 << 16, Int(Double(iterations) * seconds / max(t, 1e-6)))
                break
            }
            iterations *= 4
        }
        let runIterations = iterations
        var best = Measurement(threads: threads, vectorWidth: 8, gflops: 0, gflopsSlowestThread: 0,
                               sgemmGflops: 0, fullWidthAVX512: false, ceilingGflops: 0)
        let perThread = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        defer { perThread.deallocate() }
        let box = UncheckedSendable(perThread)
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                let t = time { _ = fmaLoop(iterations: runIterations, seed: Float(i + 1)) }
                box.value[i] = t
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let flopsPerThread = Double(runIterations) * Double(accumulators * 8 * 2)
            let total = flopsPerThread * Double(threads) / wall / 1e9
            let slowest = flopsPerThread / perThread.max()! * Double(threads) / 1e9
            if total > best.gflops {
                best.gflops = total; best.gflopsSlowestThread = slowest
            }
        }
        best.sgemmGflops = sgemmRate(threads: threads)
        best.fullWidthAVX512 = best.sgemmGflops > best.gflops
        best.ceilingGflops = max(best.fullWidthAVX512 ? 2 * best.gflops : best.gflops, best.sgemmGflops)
        return best
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

    static let accumulators = 12

    private static func time(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// `iterations` × 12 independent 8-lane FMAs, the result folded so nothing is dead code.
    @inline(never)
    static func fmaLoop(iterations: Int, seed: Float) -> Float {
        let m = SIMD8<Float>(repeating: 0.999_99), c = SIMD8<Float>(repeating: 1e-6 * seed)
        var a0 = SIMD8<Float>(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
        var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7
        var a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
        for _ in 0..<iterations {
            a0 = c.addingProduct(a0, m); a1 = c.addingProduct(a1, m)
            a2 = c.addingProduct(a2, m); a3 = c.addingProduct(a3, m)
            a4 = c.addingProduct(a4, m); a5 = c.addingProduct(a5, m)
            a6 = c.addingProduct(a6, m); a7 = c.addingProduct(a7, m)
            a8 = c.addingProduct(a8, m); a9 = c.addingProduct(a9, m)
            a10 = c.addingProduct(a10, m); a11 = c.addingProduct(a11, m)
        }
        let s = (a0 + a1 + a2 + a3) + (a4 + a5 + a6 + a7) + (a8 + a9 + a10 + a11)
        return s.sum()
    }
}
