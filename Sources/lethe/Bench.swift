import ArgumentParser
import Benchmarks

/// `lethe bench …`: measurements printed as numbers and ratios, never asserted in tests.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed: kernels, training, planning, forgetting, unlearning.",
        subcommands: [
            BenchKernels.self,
            BenchPeak.self,
            BenchForget.self,
            BenchLedger.self,
            BenchPlan.self,
            BenchStore.self,
            BenchTrain.self,
            BenchUnlearn.self,
            BenchDecoder.self,
        ]
    )
}
