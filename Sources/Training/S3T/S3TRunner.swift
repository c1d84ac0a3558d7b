import Foundation
import Kernels
import Store

/// Trains the stages of a run's shards, skipping complete ones and withholding those whose
/// examples include a deleted one (docs/FORGETTING.md, "Deletions bind training").
///
/// For each shard: remove temporary files a killed writer left, then for each distinct stage
/// in schedule order, either accept its complete file or train it from its parent's state and
/// commit it through the `StageGate` (under the run lock, after re-reading the tombstones). A
/// stage whose examples hold a deleted id is neither trained nor committed, and neither are
/// the stages after it in its sequences (their prefixes contain it). Because every stage's
/// inputs (examples, seed, inherited tensors) are functions of its prefix alone, a run resumed
/// after a kill produces the same files as an uninterrupted one, bit for bit.
///
/// The runner publishes nothing: which stages are served is decided under the run lock from
/// the plan and the ledger by the Forgetting module's publisher.
public final class S3TRunner {
    /// What happened to a stage, for progress output.
    public enum Event: Sendable {
        case shardStarted(shard: Int, stageCount: Int, completeCount: Int)
        case stageSkipped(StageLineage, url: URL)
        case stageStarted(StageLineage, exampleCount: Int)
        case stageProgress(StageLineage, StageProgress)
        case stageFinished(StageLineage, url: URL, checkpoint: StageCheckpoint)
        /// Not trained, or trained and dropped at commit: its examples include a deleted one.
        case stageWithheld(StageLineage)
        case shardPublished(ServedComposition.Entry)
    }

    /// What `trainStages` did.
    public struct Outcome: Sendable, Equatable {
        /// Keys of the stages trained and committed by this call, in order.
        public var trained: [StageKey] = []
        /// Keys of the stages withheld because their examples include a deleted one.
        public var withheld: [StageKey] = []
    }

    public let layout: RunLayout
    public let settings: TrainingSettings
    public let trainer: StageTrainer
    /// Class names recorded in every stage file (`StageRecord.labels`).
    public let labels: [String]
    /// Injected so callers (the CLI) own the clock; returns seconds.
    public let clock: () -> Double

    public init(layout: RunLayout, settings: TrainingSettings, trainer: StageTrainer,
                labels: [String] = [], clock: @escaping () -> Double) {
        self.layout = layout; self.settings = settings; self.trainer = trainer
        self.labels = labels; self.clock = clock
    }

    /// Trains every stage of `schedule` that has no complete file and that `gate` permits.
    /// A stage file is only a candidate until a composition names it.
    ///
    /// Holds the shard's training lock throughout, waiting for it: a second process on the same
    /// shard (two `train` commands, a train and a retrain) would train the same stages again and
    /// remove the first one's temporary files under it. Once granted, it finds the stages the
    /// first one committed complete and skips them.
    /// - Parameter members: the example ids a slice of this shard trains on, sorted.
    @discardableResult
    public func trainStages(_ schedule: StageSchedule, members: (Int) -> [String], gate: StageGate,
                            events: (Event) -> Void) throws -> Outcome {
        try FileLock.withExclusiveLock(layout.trainingLockURL(shard: schedule.shard)) {
            try trainStagesHoldingShard(schedule, members: members, gate: gate, events: events)
        }
    }

    private func trainStagesHoldingShard(_ schedule: StageSchedule, members: (Int) -> [String], gate: StageGate,
                                         events: (Event) -> Void) throws -> Outcome {
        let shard = schedule.shard
        layout.removeTemporaryFiles(shard: shard)
        let completeCount = schedule.stages.filter(layout.isComplete).count
        events(.shardStarted(shard: shard, stageCount: schedule.stages.count, completeCount: completeCount))
        var outcome = Outcome()
        var withheld = Set<StageKey>()
        var loaded: [StageKey: StageCheckpoint] = [:]
        for lineage in schedule.stages {
            let url = layout.stageURL(lineage)
            let examples = lineage.prefixSlices.flatMap(members)
            // A prefix that extends a withheld stage holds its deleted example too.
            let parentWithheld = lineage.stage > 1
                && withheld.contains(StageKey(prefixSliceHashes: Array(lineage.prefixSliceHashes.prefix(lineage.stage - 1))))
            guard !parentWithheld, gate.permits(examples) else {
                withheld.insert(lineage.key); outcome.withheld.append(lineage.key)
                events(.stageWithheld(lineage))
                continue
            }
            if layout.isComplete(lineage) {
                // Accepted only as this stage of this run: behind a valid seal (a cut or altered
                // file would otherwise be published as trained), recording this key, shard and
                // stage (not another stage's file copied here), and trained with these settings
                // and this precision. Otherwise this would report it complete and publish it, and
                // only the next load would refuse it.
                guard try checkComplete(lineage, at: url) else {
                    // Erased since it was found: a forget of an example it saw took it.
                    withheld.insert(lineage.key); outcome.withheld.append(lineage.key)
                    events(.stageWithheld(lineage))
                    continue
                }
                events(.stageSkipped(lineage, url: url))
                continue
            }
            let checkpoint = try trainStage(lineage, strategy: schedule.strategy, examples: examples,
                                            cache: &loaded, events: events)
            guard try gate.commit(exampleIDs: examples, { try checkpoint.save(to: url) }) else {
                withheld.insert(lineage.key); outcome.withheld.append(lineage.key)
                events(.stageWithheld(lineage))
                continue
            }
            loaded[lineage.key] = checkpoint
            layout.recordTiming(shard: lineage.shard, stage: lineage.stage, key: lineage.key,
                                seconds: checkpoint.record.wallTimeSeconds)
            outcome.trained.append(lineage.key)
            events(.stageFinished(lineage, url: url, checkpoint: checkpoint))
        }
        return outcome
    }

    /// Trains one stage again from its recorded lineage, without saving it: the parents come
    /// from their files, the seed from (run seed, shard, key). With the same settings and
    /// thread count the result is bit-identical to the stored stage (`lethe verify --replay`).
    public func replay(_ lineage: StageLineage, strategy: TrainingStrategy,
                       members: (Int) -> [String]) throws -> StageCheckpoint {
        var cache: [StageKey: StageCheckpoint] = [:]
        return try trainStage(lineage, strategy: strategy, examples: lineage.prefixSlices.flatMap(members),
                              cache: &cache, events: { _ in })
    }

    /// Trains `lineage` from its parents' state on the examples of its prefix.
    private func trainStage(_ lineage: StageLineage, strategy: TrainingStrategy, examples: [String],
                            cache: inout [StageKey: StageCheckpoint],
                            events: (Event) -> Void) throws -> StageCheckpoint {
        let shard = lineage.shard
        let ancestors = try ancestorCheckpoints(of: lineage, cache: &cache)
        let inherited: [NamedTensor]
        switch strategy {
        case .s3t, .full: inherited = ancestors.flatMap(\.adapters)
        case .sisa: inherited = ancestors.last?.adapters ?? []
        }
        let job = StageJob(lineage: lineage, seed: lineage.key.seed(runSeed: settings.seed, shard: shard),
                           exampleIDs: examples, inheritedAdapters: inherited,
                           inheritedHead: ancestors.last?.head,
                           description: "shard \(shard) stage \(lineage.stage)")
        events(.stageStarted(lineage, exampleCount: examples.count))
        let start = clock()
        let result = try trainer.train(job) { events(.stageProgress(lineage, $0)) }
        let record = StageRecord(strategy: strategy, baseModelSHA256: settings.baseModelSHA256,
                                 hyperparametersJSON: try settings.canonicalJSON(), seed: job.seed,
                                 threadCount: settings.threadCount, softwareVersion: letheVersion,
                                 trainingLoss: result.trainingLoss, examplesSeen: result.examplesSeen,
                                 wallTimeSeconds: clock() - start, labels: labels, precision: settings.precision,
                                 modelKind: settings.modelKind, kernels: BLASRuntime.kernelDescription)
        return StageCheckpoint(lineage: lineage, record: record, adapters: result.adapters, head: result.head)
    }

    /// The checkpoints of stages 1..i−1 of `lineage`'s prefix, stage 1 first.
    /// Throws unless the file at `url` is `lineage`'s stage, trained with this run's settings;
    /// false when the file is gone (a forget erased it after this call found it).
    private func checkComplete(_ lineage: StageLineage, at url: URL) throws -> Bool {
        let stored: StageCheckpoint
        do { stored = try StageCheckpoint.load(from: url) } catch StoreError.fileNotFound {
            return false
        }
        if let (field, recorded, expected) = settings.firstDifference(from: stored.record) {
            throw TrainingError.stageMismatch(file: url.path, field: field, expected: expected, found: recorded)
        }
        return true
    }

    private func ancestorCheckpoints(of lineage: StageLineage,
                                     cache: inout [StageKey: StageCheckpoint]) throws -> [StageCheckpoint] {
        var result: [StageCheckpoint] = []
        for i in stride(from: 1, to: lineage.stage, by: 1) {
            let hashes = Array(lineage.prefixSliceHashes.prefix(i))
            let key = StageKey(prefixSliceHashes: hashes)
            if let cached = cache[key] { result.append(cached); continue }
            let url = layout.stageURL(shard: lineage.shard, stage: i, key: key)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TrainingError.parentMissing(shard: lineage.shard, stage: lineage.stage, parentKey: key.hex)
            }
            let checkpoint = try StageCheckpoint.load(from: url)
            cache[key] = checkpoint
            result.append(checkpoint)
        }
        return result
    }
}
