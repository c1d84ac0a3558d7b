import ArgumentParser
import Benchmarks

/// `lethe bench …`: measurements printed as numbers and ratios, never asserted in tests.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure speed: kernels, training, planning, forgetting, unlearning.",
        discussion: """
            Every bench subcommand prints measurements and exits with one of these codes.

            \(ExitStatus.help())
            """,
        subcommands: [
            BenchKernelsCommand.self,
            BenchPeakCommand.self,
            BenchForgetCommand.self,
            BenchLedgerCommand.self,
            BenchPlanCommand.self,
            BenchStoreCommand.self,
            BenchTrainCommand.self,
            BenchUnlearnCommand.self,
            BenchDecoderCommand.self,
            BenchServeCommand.self,
        ]
    )
}
