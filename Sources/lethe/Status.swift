import ArgumentParser
import CommandSupport
import Forgetting
import Foundation
import Models
import Planning
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

    struct ShardStatus: Encodable {
        var shard: Int
        var stages: Int
        var completeStages: Int
        var servedSequence: Int?
        var servedPrefixLength: Int?
        var byteCount: Int
    }

    struct Report: Encodable {
        var run: String
        var examples: Int
        var shards: Int
        var slices: Int
        var budget: Int
        var tombstones: Int
        var settings: TrainingSettings?
        var shardStatus: [ShardStatus]
        var stageByteCount: Int
        var forgetting: ForgettingStatus
    }

    func run() throws {
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        try RunAccess.recover(layout.directory)
        let plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        let settingsExist = FileManager.default.fileExists(atPath: layout.settingsURL.path)
        let settings = settingsExist ? try TrainingSettings.load(from: layout.settingsURL) : nil
        let served = FileManager.default.fileExists(atPath: layout.servedURL.path)
            ? try ServedComposition.load(from: layout.servedURL) : nil
        var shardStatus: [ShardStatus] = []
        if let settings {
            let layerCount = try BertConfiguration(
                contentsOf: settings.baseModelDirectory(run: layout.directory).appendingPathComponent("config.json").path).layerCount
            let shardIndices = settings.strategy == .full ? [0] : Array(0..<plan.shardCount)
            for shard in shardIndices {
                let stages: [StageLineage]
                if settings.strategy == .full {
                    stages = try FileManager.default.contentsOfDirectory(atPath: layout.shardDirectory(0).path)
                        .filter { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }.map { _ in
                            StageLineage(shard: 0, sequences: [0], stage: 1, prefixSlices: [0],
                                         prefixSliceHashes: [""], blockLayers: []) }
                } else {
                    stages = try StageSchedule(shard: shard, sequences: plan.sequences(of: shard),
                                               sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                                               layerCount: layerCount, layersPerBlock: settings.layersPerBlock,
                                               strategy: settings.strategy).stages
                }
                let complete = settings.strategy == .full ? stages.count : stages.filter(layout.isComplete).count
                let entry = served?.entry(shard: shard)
                shardStatus.append(ShardStatus(shard: shard, stages: settings.strategy == .full ? 1 : stages.count,
                                               completeStages: complete, servedSequence: entry?.sequence,
                                               servedPrefixLength: entry?.prefixLength,
                                               byteCount: layout.stageByteCount(shard: shard)))
            }
        }
        let report = Report(run: runDirectory, examples: plan.exampleCount, shards: plan.shardCount,
                            slices: plan.sliceCount, budget: plan.budget, tombstones: plan.tombstones.count,
                            settings: settings, shardStatus: shardStatus, stageByteCount: layout.stageByteCount(),
                            forgetting: try ForgettingStatus.load(run: layout.directory))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("run \(runDirectory): \(plan.exampleCount) examples, \(plan.shardCount) shards × \(plan.sliceCount) slices, "
              + "budget \(plan.budget), \(plan.tombstones.count) deleted")
        guard let settings else { print("not trained yet: run `lethe train --run \(runDirectory)`"); return }
        print("training: \(settings.strategy.rawValue), \(settings.epochs) epochs, r \(settings.rank), alpha \(settings.alpha), "
              + "targets \(settings.targets.joined(separator: ",")), \(settings.layersPerBlock) layers/block, "
              + "lr \(settings.learningRate), text \(settings.textField), seed \(settings.seed), threads \(settings.threadCount)")
        for s in shardStatus {
            let servedText = s.servedPrefixLength.map { p in
                p == 0 ? "dead" : "serves sequence \(s.servedSequence ?? -1) prefix \(p)" } ?? "not served"
            print("  shard \(s.shard): \(s.completeStages)/\(s.stages) stages trained, \(servedText), "
                  + String(format: "%.1f MB", Double(s.byteCount) / 1e6))
        }
        print(String(format: "stage files: %.1f MB", Double(report.stageByteCount) / 1e6))
        print(report.forgetting.summary)
    }
}
