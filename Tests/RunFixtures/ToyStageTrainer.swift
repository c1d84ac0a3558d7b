import Crypto
import Foundation
import Planning
import Training
import Forgetting

/// A deterministic stand-in for the encoder trainer whose tensors are a SHA-256 function of
/// everything a stage may depend on — its seed, the ids of its examples in order, and the
/// inherited adapters and head — so "bit-identical to training from scratch" and "trained on
/// a deleted example" are both observable in milliseconds.
public struct ToyStageTrainer: StageTrainer {
    public init() {}
    public func train(_ job: StageJob, progress: (StageProgress) -> Void) throws -> StageResult {
        var hasher = SHA256()
        withUnsafeBytes(of: job.seed.littleEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(data: Data(job.exampleIDs.joined(separator: "\n").utf8))
        // By name, as the encoder trainer assigns them: files list tensors in another order than training.
        for tensor in (job.inheritedAdapters + (job.inheritedHead ?? [])).sorted(by: { $0.name < $1.name }) {
            hasher.update(data: Data(tensor.name.utf8))
            for value in tensor.values { withUnsafeBytes(of: value.bitPattern.littleEndian) { hasher.update(bufferPointer: $0) } }
        }
        let digest = Array(hasher.finalize())
        func values(_ count: Int, salt: Int) -> [Float] {
            (0..<count).map { Float(digest[($0 + salt) % digest.count]) / 64 - 2 }
        }
        let adapters = job.lineage.blockLayers.flatMap { layer -> [NamedTensor] in
            let module = "encoder.layer.\(layer).attention.self.query"
            return [NamedTensor(name: module + "/lora_A", shape: [2, 3], values: values(6, salt: layer)),
                    NamedTensor(name: module + "/lora_B", shape: [4, 2], values: values(8, salt: layer + 7))]
        }
        let head = [NamedTensor(name: "weight", shape: [2, 4], values: values(8, salt: 20)),
                    NamedTensor(name: "bias", shape: [2], values: values(2, salt: 29))]
        progress(StageProgress(epoch: 1, epochCount: 1, step: 1, stepCount: 1, loss: 0.25,
                               examplesDone: job.exampleIDs.count))
        return StageResult(adapters: adapters, head: head, trainingLoss: 0.25, examplesSeen: job.exampleIDs.count)
    }

    /// Settings of a toy run: 2 layers per block, so L slices need 2·L encoder layers.
    public static let settings = TrainingSettings(epochs: 1, seed: 5, baseModel: "toy",
                                           baseModelSHA256: String(repeating: "0", count: 64))

    /// A runner over `run` with this trainer and a fixed clock.
    public static func runner(_ run: URL, strategy: TrainingStrategy = .s3t) -> S3TRunner {
        var settings = Self.settings
        settings.strategy = strategy
        return S3TRunner(layout: RunLayout(directory: run), settings: settings, trainer: ToyStageTrainer(),
                         clock: { 0 })
    }

    /// Trains every shard of `plan` in `run` from scratch (stages of the plan's current slices).
    public static func trainAll(_ plan: Plan, in run: URL, strategy: TrainingStrategy = .s3t) throws {
        let runner = runner(run, strategy: strategy)
        for shard in 0..<plan.shardCount {
            let schedule = try StageSchedule(
                shard: shard, sequences: plan.sequences(of: shard),
                sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                layerCount: 2 * plan.sliceCount, layersPerBlock: 2, strategy: strategy)
            let guarded = RunGuard(run: run, nowMilliseconds: { 0 })
            try guarded.trainAndPublish(schedule, runner: runner, members: { plan.currentMembers(shard: shard, slice: $0) },
                                        gate: guarded.stageGate(for: plan), events: { _ in })
        }
    }
}

extension TinyRun {
    /// A tiny run whose stages are trained by `ToyStageTrainer` through the real runner (real
    /// stage checkpoints with lineage and records), instead of stand-in files.
    public static func trained(_ label: String = #function, budget: Int = 3, strategy: TrainingStrategy = .s3t) throws -> TinyRun {
        let run = try TinyRun(label, budget: budget, stageFiles: false)
        try ToyStageTrainer.trainAll(run.plan, in: run.directory, strategy: strategy)
        return run
    }

    public func retrainer() -> Retrainer {
        Retrainer(run: directory, runner: ToyStageTrainer.runner(directory), layerCount: 2 * plan.sliceCount)
    }

    public func currentPlan() throws -> Plan { try Plan.load(from: Plan.url(inRun: directory)) }
}
