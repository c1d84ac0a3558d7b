import Forgetting
import Foundation
import Support
import Models
import Planning
import Training

/// What a run holds — plan, settings, trained stages and served prefix per shard, disk use and
/// the state of deletions: what `lethe status --json` prints and the server's /v1/status says.
public struct RunStatusReport: Encodable, Sendable {
    public struct ShardStatus: Encodable, Sendable {
        public var shard: Int
        public var stages: Int
        public var completeStages: Int
        public var servedSequence: Int?
        public var servedPrefixLength: Int?
        public var byteCount: Int
    }

    public var run: String
    public var examples: Int
    public var shards: Int
    public var slices: Int
    public var budget: Int
    public var tombstones: Int
    public var settings: TrainingSettings?
    public var shardStatus: [ShardStatus]
    /// Why `shardStatus` is empty although the run is trained: its stages are named by the base
    /// model's layers, and the base model cannot be read. Everything else is still reported.
    public var stagesUnavailable: String?
    public var stageByteCount: Int
    public var forgetting: ForgettingStatus
    /// The last Slurm job array `lethe train --scheduler slurm` submitted, if any.
    public var slurm: SlurmJob?

    /// RUN/slurm/job.json and, per shard of the job, whether its task has written its result.
    public struct SlurmJob: Codable, Sendable {
        public var jobId: String
        public var script: String
        /// Shard → "done" (its result record is written), "running" or "pending" (its task is
        /// in the queue), "ended without a result" (it left the queue: failed or cancelled), or
        /// "submitted" (squeue could not be asked).
        public var shards: [String: String]

        static func load(run: URL) -> SlurmJob? {
            guard let job = SlurmQueue.lastJob(run: run) else { return nil }
            let queue = try? SlurmQueue.tasks(ofJob: job.id)
            var states: [String: String] = [:]
            for shard in job.shards {
                let result = run.appendingPathComponent("slurm/results/shard-\(shard).json")
                if FileManager.default.fileExists(atPath: result.path) {
                    states["\(shard)"] = "done"
                } else if let queue {
                    states["\(shard)"] = queue[shard].map { SlurmQueue.isRunning($0) ? "running" : "pending" }
                        ?? "ended without a result"
                } else {
                    states["\(shard)"] = "submitted"
                }
            }
            return SlurmJob(jobId: job.id, script: job.script, shards: states)
        }
    }

    /// Reads the run's files (the caller recovered the run first). `runName` is how the report
    /// names the run (the path the user gave).
    public static func load(layout: RunLayout, runName: String) throws -> RunStatusReport {
        let plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        let settingsExist = FileManager.default.fileExists(atPath: layout.settingsURL.path)
        let settings = settingsExist ? try TrainingSettings.load(from: layout.settingsURL) : nil
        // A damaged served.json is reported by `forgetting.servedUnreadable`; shards show as not served.
        var served: ServedComposition?
        if case .loaded(let composition) = try ServedComposition.read(from: layout.servedURL) { served = composition }
        var shardStatus: [ShardStatus] = []
        var stagesUnavailable: String?
        if let settings {
            let layerCount: Int?
            do { layerCount = try settings.baseLayerCount(run: layout.directory) } catch {
                layerCount = nil
                stagesUnavailable = "the stages of each shard are named by the base model's layers, and "
                    + "\(settings.baseModelDirectory(run: layout.directory).path) cannot be read (\(error)); put the model "
                    + "the run was trained on back there (`make setup` fetches the default one)"
            }
            let shardIndices = settings.strategy == .full ? [0] : Array(0..<plan.shardCount)
            for shard in shardIndices {
                guard let layerCount else { break }
                shardStatus.append(try Self.shardStatus(shard, plan: plan, settings: settings, served: served,
                                                        layout: layout, layerCount: layerCount))
            }
        }
        return RunStatusReport(run: runName, examples: plan.exampleCount, shards: plan.shardCount,
                               slices: plan.sliceCount, budget: plan.budget, tombstones: plan.tombstones.count,
                               settings: settings, shardStatus: shardStatus, stagesUnavailable: stagesUnavailable,
                               stageByteCount: layout.stageByteCount(),
                               forgetting: try ForgettingStatus.load(run: layout.directory),
                               slurm: SlurmJob.load(run: layout.directory))
    }

    private static func shardStatus(_ shard: Int, plan: Plan, settings: TrainingSettings, served: ServedComposition?,
                                    layout: RunLayout, layerCount: Int) throws -> ShardStatus {
        let stages: [StageLineage]
        if settings.strategy == .full {
            // No shard directory yet: the model is not trained (a finetune killed early).
            let names = (try? FileManager.default.contentsOfDirectory(atPath: layout.shardDirectory(0).path)) ?? []
            stages = names.filter { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }.map { _ in
                    StageLineage(shard: 0, sequences: [0], stage: 1, prefixSlices: [0],
                                 prefixSliceHashes: [""], blockLayers: []) }
        } else {
            do {
                stages = try StageSchedule(shard: shard, sequences: plan.sequences(of: shard),
                                           sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                                           layerCount: layerCount, layersPerBlock: settings.layersPerBlock,
                                           strategy: settings.strategy).stages
            } catch TrainingError.invalidValue(let field, let value, let reason) {
                // The settings come from train.json here, not from the command line.
                throw TrainingError.fileInvalid(file: layout.settingsURL.path, reason: "its \(field) \(value) does not fit "
                    + "this run: \(reason); put back the run's own train.json")
            }
        }
        let complete = settings.strategy == .full ? stages.count : stages.filter(layout.isComplete).count
        let entry = served?.entry(shard: shard)
        return ShardStatus(shard: shard, stages: settings.strategy == .full ? 1 : stages.count,
                           completeStages: complete, servedSequence: entry?.sequence,
                           servedPrefixLength: entry?.prefixLength, byteCount: layout.stageByteCount(shard: shard))
    }

    /// The report as `lethe status --json` prints it: snake_case keys, sorted.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .snakeCased
        return try encoder.encode(self)
    }
}
