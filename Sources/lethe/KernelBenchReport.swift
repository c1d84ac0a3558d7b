import Foundation

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
    var threads: Int
    var environmentCoreType: String?
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
    var blockStepPhases: [String: Double] = [:]

    func print(json: Bool) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            if let data = try? encoder.encode(self), let text = String(data: data, encoding: .utf8) {
                Swift.print(text)
            }
            return
        }
        Swift.print("OpenBLAS core: \(coreName), threads: \(threads)"
                    + (environmentCoreType.map { " (OPENBLAS_CORETYPE=\($0) in the environment)" } ?? ""))
        Swift.print("One MiniLM layer: N = B·T = \(tokens), hidden \(hidden), \(heads) heads, FFN \(ffn), LoRA rank \(rank)")
        for p in products {
            Swift.print("  " + p.name.padding(toLength: 50, withPad: " ", startingAt: 0)
                        + String(format: " %8.3f ms %8.1f ", p.milliseconds, p.gflops) + p.unit)
        }
        Swift.print(String(format: "  base products together: %.1f GFLOP/s (sgemm reference)", sgemmGflops))
        Swift.print(String(format: "Block step (forward + backward + AdamW, LoRA on 6 targets): %.2f ms, %.2f GFLOP, %.1f GFLOP/s = %.0f%% of sgemm",
                           blockStepMilliseconds, blockStepGflop, blockStepGflops, 100 * blockStepShareOfSgemm))
        Swift.print(String(format: "  CPU time per step (all threads): %.2f ms", blockStepCPUMilliseconds))
        let phases = blockStepPhases.sorted { $0.key < $1.key }
            .map { String(format: "%@ %.2f ms", $0.key, $0.value) }.joined(separator: ", ")
        Swift.print("  phases (mean): \(phases)")
    }
}
