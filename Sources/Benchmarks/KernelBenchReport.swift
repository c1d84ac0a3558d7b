import CommandSupport
import Foundation
import Support

/// The numbers `lethe bench kernels` prints, as a table or as JSON.
struct KernelBenchReport: Codable {
    struct Product: Codable {
        var name: String
        var milliseconds: Double
        /// Rate in `unit` (GFLOP/s for products).
        var gflops: Double
        var unit = "GFLOP/s"
    }

    var coreName: String
    /// 1, 5 and 15 minute load averages when the report was made (the machine is shared).
    var loadAverage: [Double] = []
    var threads: Int
    var tokens: Int
    var hidden: Int
    var heads: Int
    var ffn: Int
    var rank: Int
    var products: [Product] = []
    /// FLOPs over time of the layer's base products (the non-LoRA sgemm shapes).
    var sgemmGflops = 0.0
    var blockStepMilliseconds = 0.0
    /// Median process CPU time of one step (all threads; OpenBLAS threads may spin).
    var blockStepCPUMilliseconds = 0.0
    var blockStepGflop = 0.0
    var blockStepGflops = 0.0
    var blockStepShareOfSgemm = 0.0
    /// Float32 FMA peak of the CPU on `threads` threads (`lethe bench peak`), GFLOP/s.
    var peakGflops = 0.0
    /// The block step's FLOPs at that peak: no implementation of the step can be faster.
    var blockStepFloorMilliseconds = 0.0
    /// Mean wall and CPU time of each operation of the step, in execution order.
    var blockStepPhases: [Phase] = []

    struct Phase: Codable {
        var name: String
        var milliseconds: Double
        var cpuMilliseconds: Double
    }

    func print(json: Bool) {
        if json {
            if let data = try? JSONEncoder.report(pretty: true).encode(self), let text = String(data: data, encoding: .utf8) {
                Swift.print(text)
            }
            return
        }
        Swift.print("OpenBLAS core: \(coreName), threads: \(threads)")
        if loadAverage.count == 3 {
            Swift.print(String(format: "Load average: %.2f %.2f %.2f", loadAverage[0], loadAverage[1], loadAverage[2]))
        }
        Swift.print("One MiniLM layer: N = B·T = \(tokens), hidden \(hidden), \(heads) heads, FFN \(ffn), LoRA rank \(rank)")
        for p in products {
            Swift.print("  " + p.name.padding(toLength: 50, withPad: " ", startingAt: 0)
                        + String(format: " %8.3f ms %8.1f ", p.milliseconds, p.gflops) + p.unit)
        }
        Swift.print(String(format: "  base products together: %.1f GFLOP/s (sgemm reference) = %.0f%% of the FMA peak",
                           sgemmGflops, 100 * sgemmGflops / peakGflops))
        Swift.print(String(format: "Float32 FMA peak on %d thread%@: %.1f GFLOP/s (lethe bench peak)",
                           threads, threads == 1 ? "" : "s", peakGflops))
        Swift.print(String(format: "Block step (forward + backward + AdamW, LoRA on 6 targets): %.2f ms, %.2f GFLOP, %.1f GFLOP/s = %.0f%% of sgemm, %.0f%% of peak%@",
                           blockStepMilliseconds, blockStepGflop, blockStepGflops, 100 * blockStepShareOfSgemm,
                           100 * blockStepGflops / peakGflops, MachineLoad.caveat(share: blockStepGflops / peakGflops)))
        Swift.print(String(format: "  floor at the FMA peak: %.2f ms (no implementation is faster; another's step time ÷ this is the largest possible speed-up over it)",
                           blockStepFloorMilliseconds))
        Swift.print(String(format: "  CPU time per step (all threads): %.2f ms", blockStepCPUMilliseconds))
        Swift.print("  operations (mean of the timed steps; wall ms, CPU ms of all threads):")
        for p in blockStepPhases {
            Swift.print("    " + p.name.padding(toLength: 46, withPad: " ", startingAt: 0)
                        + String(format: " %8.2f %8.2f", p.milliseconds, p.cpuMilliseconds))
        }
        let forward = blockStepPhases.filter { $0.name.hasPrefix("forward") }.reduce(0) { $0 + $1.milliseconds }
        let backward = blockStepPhases.filter { $0.name.hasPrefix("backward") }.reduce(0) { $0 + $1.milliseconds }
        Swift.print(String(format: "  forward %.2f ms, backward %.2f ms", forward, backward))
    }
}
