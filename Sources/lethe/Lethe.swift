import ArgumentParser
import Kernels
import Store

/// The `lethe` command: exact machine unlearning (S3T) and approximate unlearning.
@main
struct Lethe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lethe",
        abstract: "Train models that can forget any training example on request.",
        discussion: """
            Lethe partitions training data into shards and slices, trains LoRA adapter \
            blocks per slice sequence on a frozen pre-trained transformer (S3T), and \
            forgets an example by deactivating only the blocks that saw it.

            A first run:
              lethe plan --data Datasets/bbc-news/train.jsonl --shards 4 --slices 3 --budget 3 --run Checkpoints/runs/demo
              lethe train --run Checkpoints/runs/demo
              lethe evaluate --run Checkpoints/runs/demo --data Datasets/bbc-news/test.jsonl
              lethe forget --run Checkpoints/runs/demo --id business/001

            Every option with a numeric value states its range in `--help` and is checked before \
            any work; each command's help lists the exit codes it returns.

            \(ExitStatus.list(ExitStatus.allCases))
            """,
        version: letheVersion,
        subcommands: [
            PlanCommand.self,
            SimulateCommand.self,
            TrainCommand.self,
            FinetuneCommand.self,
            StatusCommand.self,
            EvaluateCommand.self,
            PredictCommand.self,
            ForgetCommand.self,
            RetrainCommand.self,
            AuditCommand.self,
            VerifyCommand.self,
            EmbedCommand.self,
            GenerateCommand.self,
            PerplexityCommand.self,
            UnlearnCommand.self,
            EvalForgetCommand.self,
            BenchCommand.self,
        ]
    )

    /// Training steps free and reallocate their activations: keep that memory in the heap
    /// rather than faulting it in again every step (Kernels/HeapPolicy.swift).
    static func main() {
        HeapPolicy.retainFreedMemory()
        ShardJobs.dieWithParentIfChild()
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch {
            exit(withError: UserFacingError.translate(error))
        }
    }
}
