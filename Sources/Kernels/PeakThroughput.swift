import Dispatch

/// The float32 multiply-add throughput of this CPU: what no kernel, ours or PyTorch's, can
/// exceed. Benchmarks print it beside their rates, so a speed target can be checked against
/// the machine before anyone tries to reach it.
///
/// Each thread runs one loop of fused multiply-adds on twelve independent 8-lane registers
/// (enough to cover the FMA latency of every current x86-64 core; with the two constants they
/// fit AVX2's sixteen registers, so nothing spills), with no memory traffic.
/// AVX2 (8 lanes) gives the same rate as AVX-512 on AMD Zen 4, whose 512-bit units are two
/// 256-bit halves; on a core with full-width AVX-512 units it reports about half of the
/// AVX-512 peak, and says so in `PeakThroughput.Measurement.vectorWidth`.
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
        var best = Measurement(threads: threads, vectorWidth: 8, gflops: 0, gflopsSlowestThread: 0)
        for _ in 0..<repetitions {
            let perThread = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
            defer { perThread.deallocate() }
            let box = UncheckedSendable(perThread)
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
        return best
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
