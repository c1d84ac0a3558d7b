import ArgumentParser
import CommandSupport
import Forgetting
import Foundation
import Models
import Planning
import Support
import Training

/// `lethe status`: what a run holds — plan, trained stages, served composition, disk use.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Summarise a run: plan, trained stages per shard, served composition, disk use, and deletions (pending, dead shards, sequences to retrain, δ remaining).",
        discussion: """
            Example:
              lethe status --run Checkpoints/runs/demo --json

            \(ExitStatus.help())
            """)

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    func run() throws {
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        let report = try RunAccess.inspect(layout.directory) { try RunStatusReport.load(layout: layout, runName: runDirectory) }
        let settings = report.settings, shardStatus = report.shardStatus
        if json {
            print(String(decoding: try report.json(), as: UTF8.self))
            return
        }
        print("run \(runDirectory): \(counted(report.examples, "example")), \(counted(report.shards, "shard")) × "
              + "\(counted(report.slices, "slice")), budget \(report.budget), \(report.tombstones) deleted")
        // A Slurm array of the run is shown even when train.json is missing (one whose tasks
        // could not start may have left none).
        func printSlurmJob() {
            guard let slurm = report.slurm else { return }
            print("Slurm job \(slurm.jobId): " + slurm.shards.sorted { Int($0.key) ?? 0 < Int($1.key) ?? 0 }
                .map { "shard \($0.key) \($0.value)" }.joined(separator: ", ") + " (\(slurm.script))")
        }
        guard let settings else {
            print("train.json: " + TrainingSettings.missingReason(run: layout.directory))
            // Deletions are recorded before any training: they are the run's too.
            print(report.forgetting.summary)
            printSlurmJob()
            return
        }
        print("training: \(settings.strategy.rawValue)\(settings.modelKind == .decoder ? " on a decoder" : ""), "
              + "\(counted(settings.epochs, "epoch")), r \(settings.rank), alpha \(settings.alpha), "
              + "targets \(settings.targets.joined(separator: ",")), \(counted(settings.layersPerBlock, "layer")) per block, "
              + "lr \(settings.learningRate), text field \(settings.textField), seed \(settings.seed), "
              + "\(counted(settings.threadCount, "thread")), precision \(settings.precision.rawValue)")
        if let reason = report.stagesUnavailable { print("stages per shard: unknown: \(reason)") }
        for s in shardStatus {
            let servedText = s.servedPrefixLength.map { p in
                p == 0 ? "dead" : "serves sequence \(s.servedSequence ?? -1) prefix \(p)" } ?? "not served"
            print("  shard \(s.shard): \(s.completeStages)/\(s.stages) stages on disk, \(servedText), "
                  + String(format: "%.1f MB", Double(s.byteCount) / 1e6))
        }
        print(String(format: "stage files: %.1f MB", Double(report.stageByteCount) / 1e6))
        print(report.forgetting.summary)
        printSlurmJob()
    }
}
