import Foundation
import Planning
import Store
import Training

/// Rebuilds the slices that hold deleted examples and retrains the affected stages, restoring
/// B full-length sequences per shard (docs/DESIGN.md §1, "Serving").
///
/// One pass over a shard:
/// 1. snapshot the plan; the shard's slices that still hold a tombstoned example get new
///    members (the tombstoned ids removed) and so new content hashes;
/// 2. train every stage of the new schedule that has no file (`S3TRunner.trainStages`): a
///    stage whose prefix avoids the rebuilt slices keeps its key and its file is reused, so
///    each sequence is retrained from its first affected stage onward, with the same
///    deterministic trainer and seeds derived from the new keys — bit-identical to training the
///    new plan from scratch;
/// 3. publish under the run lock: re-read the plan (a forget may have run meanwhile),
///    record the removals in it (atomic rewrite), derive the composition from its *current*
///    tombstones (a newly deleted example truncates the new sequences at its slice, so nothing
///    trained on it is served), replace the shard's served entry (atomic rename), erase every
///    stage file of the shard that is not in a surviving prefix, and append a `retrain` ledger
///    entry. If a forget did arrive, the next pass rebuilds the shard again (up to `maxPasses`).
///
/// Until step 3 nothing a reader sees changes: the new stage files are candidates nobody
/// serves. A retrain killed at any point leaves a valid run (old plan and composition, or new
/// plan with its composition) and a re-run completes it: stages already trained are kept, and
/// a shard whose plan was published but whose composition or erasure was not is finished.
public final class Retrainer {
    /// What happened, for progress output.
    public enum Event: Sendable {
        case training(S3TRunner.Event)
        case published(RetrainRecord)
    }

    public let run: URL
    let layout: RunLayout
    public let runner: S3TRunner
    /// N, the encoder's layers (the schedule's blocks are counted from the top).
    public let layerCount: Int
    /// Called after a shard's stages are trained and before they are published: a test hook
    /// (a forget injected here must be honoured) and a cancellation point.
    public var beforePublish: (Int) throws -> Void = { _ in }
    /// Called inside the publish step once the `retrain` entry is recorded and the rebuilt plan
    /// saved, before the composition is written: a test hook (a pass killed there).
    public var afterPlanSave: (Int) throws -> Void = { _ in }

    public init(run: URL, runner: S3TRunner, layerCount: Int) {
        self.run = run; self.runner = runner; self.layerCount = layerCount
        layout = RunLayout(directory: run)
    }

    /// The shards that need a retrain: a slice still holds a deleted example, the served entry
    /// differs from what the plan calls for, or a stage file lies outside every surviving prefix.
    public static func shardsNeedingRetrain(run: URL) throws -> [Int] {
        let layout = RunLayout(directory: run)
        let plan = try Plan.load(from: layout.planURL)
        let composition = try ServedComposition.load(from: layout.servedURL)
        return (0..<plan.shardCount).filter { shard in
            let state = ShardState(plan: plan, shard: shard, layout: layout)
            if !state.hitSlices.isEmpty || composition.entry(shard: shard) != state.servedEntry { return true }
            return !state.strayFiles().isEmpty
        }
    }

    /// Retrains `shards` (nil: every shard that needs it) and returns one record per pass.
    /// - Parameters:
    ///   - maxPasses: passes per shard when forgets keep arriving; afterwards the shard serves
    ///     its truncated prefix until the next retrain.
    ///   - nowMilliseconds: the clock for ledger timestamps (the CLI owns the clock).
    public func retrain(shards: [Int]? = nil, maxPasses: Int = 3, nowMilliseconds: @escaping () -> Int64,
                        events: (Event) -> Void = { _ in }) throws -> [RetrainRecord] {
        let strategy = runner.settings.strategy
        guard strategy != .full else {
            throw ForgettingError.retrainRefused(shard: nil, reason: "\(run.path) was trained with --strategy full; "
                                                 + "retrain it from scratch with lethe train on a new plan")
        }
        let plan = try Plan.load(from: Plan.url(inRun: run))
        for shard in shards ?? [] where !(0..<plan.shardCount).contains(shard) {
            throw ForgettingError.retrainRefused(shard: shard, reason: "the plan has shards 0..<\(plan.shardCount)")
        }
        let needed = Set(try Self.shardsNeedingRetrain(run: run))
        let targets = (shards ?? Array(0..<plan.shardCount)).filter(needed.contains)
        var records: [RetrainRecord] = []
        // A shard that cannot be retrained now (a slice with nothing left, another retrain on
        // it) does not hold up the others; the refusals are thrown once they are done.
        var refusals: [Error] = []
        for shard in Set(targets).sorted() {
            let lock = layout.retrainLockURL(shard: shard)
            do {
                let done: Void? = try FileLock.withLockIfFree(lock) {
                    for pass in 1...max(1, maxPasses) {
                        let record = try retrainOnce(shard: shard, pass: pass, strategy: strategy,
                                                     nowMilliseconds: nowMilliseconds, events: events)
                        records.append(record)
                        events(.published(record))
                        if record.fullLength { break }
                    }
                }
                if done == nil {
                    throw ForgettingError.retrainRefused(shard: shard, reason: ForgettingError.retrainBusy)
                }
            } catch PlanningError.sliceEmptied(let shard, let slice) {
                refusals.append(PlanningError.sliceEmptied(shard: shard, slice: slice))
            } catch ForgettingError.retrainRefused(let shard, let reason) where reason == ForgettingError.retrainBusy {
                refusals.append(ForgettingError.retrainRefused(shard: shard, reason: reason))
            }
        }
        if refusals.count == 1, records.isEmpty { throw refusals[0] }
        if !refusals.isEmpty {
            throw ForgettingError.retrainsRefused(reasons: refusals.map { "\($0)" },
                                                  retrained: Array(Set(records.map(\.shard))).sorted())
        }
        return records
    }

    /// One pass: rebuild, train, publish.
    private func retrainOnce(shard: Int, pass: Int, strategy: TrainingStrategy, nowMilliseconds: @escaping () -> Int64,
                             events: (Event) -> Void) throws -> RetrainRecord {
        let guarded = RunGuard(run: run, nowMilliseconds: nowMilliseconds)
        let snapshot = try guarded.withRecoveredRun { _ in try Plan.load(from: layout.planURL) }
        let (removed, rebuilt, schedule) = try rebuild(shard: shard, snapshot: snapshot, strategy: strategy)
        var trained: [String] = []
        try runner.trainStages(schedule, members: { rebuilt.currentMembers(shard: shard, slice: $0) },
                               gate: guarded.stageGate(for: snapshot)) { event in
            if case .stageFinished(let lineage, _, _) = event { trained.append(lineage.key.hex) }
            events(.training(event))
        }
        try beforePublish(shard)
        return try guarded.withRecoveredRun { _ in
            try publish(shard: shard, pass: pass, removed: removed, snapshot: snapshot, trained: trained,
                        nowMilliseconds: nowMilliseconds())
        }
    }

    /// Step 1: the shard's slices without the deleted examples not yet excluded, and the
    /// schedule of the rebuilt plan.
    private func rebuild(shard: Int, snapshot: Plan, strategy: TrainingStrategy) throws
        -> (removed: [String], rebuilt: Plan, schedule: StageSchedule) {
        let removed = ShardState(plan: snapshot, shard: shard, layout: layout).unexcludedTombstones
        var rebuilt = snapshot
        do { try rebuilt.excludeFromSlices(removed) } catch {
            // Its own message says what to do (plan a new run); running retrain again would not help.
            if case PlanningError.sliceEmptied = error { throw error }
            throw ForgettingError.retrainRefused(shard: shard, reason: "\(error)")
        }
        let schedule = try StageSchedule(
            shard: shard, sequences: rebuilt.sequences(of: shard),
            sliceHashes: (0..<rebuilt.sliceCount).map { rebuilt.sliceHash(shard: shard, slice: $0) },
            layerCount: layerCount, layersPerBlock: runner.settings.layersPerBlock, strategy: strategy)
        return (removed, rebuilt, schedule)
    }

    /// Steps 1 and 2 only, for a cluster task: trains the stages of the shard's rebuilt
    /// schedule, committing each through a gate that re-reads the tombstones under the run lock
    /// without recovery (and trains nothing while a forget is unfinished), and publishes nothing — no plan rewrite, no ledger entry. The
    /// coordinator's `retrain` afterwards finds those stage files and only publishes.
    public func trainRebuiltStages(shard: Int, events: (S3TRunner.Event) -> Void = { _ in }) throws -> S3TRunner.Outcome {
        let snapshot = try Plan.load(from: layout.planURL)
        let (_, rebuilt, schedule) = try rebuild(shard: shard, snapshot: snapshot, strategy: runner.settings.strategy)
        let gate = try StageGate.withoutLedger(layout, plan: snapshot)
        return try runner.trainStages(schedule, members: { rebuilt.currentMembers(shard: shard, slice: $0) }, gate: gate,
                                      events: events)
    }

    /// Step 3, under the run lock. The `retrain` ledger entry is appended first, saying what the
    /// step does: a pass killed after it leaves the rebuilt slices' lineage on record (the audit
    /// needs their previous hashes), and the composition published after it reflects it, so the
    /// generation (the served models' version) moves. A re-run completes a killed step and
    /// records it again with the same hashes.
    private func publish(shard: Int, pass: Int, removed: [String], snapshot: Plan, trained: [String],
                         nowMilliseconds: Int64) throws -> RetrainRecord {
        var plan = try Plan.load(from: layout.planURL)
        let slices = 0..<plan.sliceCount
        guard slices.map({ plan.sliceHash(shard: shard, slice: $0) })
                == slices.map({ snapshot.sliceHash(shard: shard, slice: $0) }) else {
            throw ForgettingError.retrainRefused(shard: shard, reason: "its slices were rebuilt by another process "
                                                 + "while this one trained")
        }
        let previousHashes = slices.map { plan.sliceHash(shard: shard, slice: $0) }
        let rebuiltLocations = try plan.excludeFromSlices(removed)
        let state = ShardState(plan: plan, shard: shard, layout: layout)
        let strays = state.strayFiles()
        let removedBySlice = Dictionary(grouping: removed) { plan.location(of: $0)?.slice ?? -1 }
        // Trained by this retrain: what this process trained, and every kept stage on a slice this
        // step rebuilds (no such stage existed before the rebuild: Slurm tasks, or a killed
        // earlier run of this pass, trained it).
        let kept = state.survivingStages()
        let rebuiltSlices = Set(rebuiltLocations.map(\.slice))
        let trainedStages = trained + kept.filter { stage in
            !trained.contains(stage.key.hex) && stage.slices.contains(where: rebuiltSlices.contains)
        }.sorted { ($0.stage, $0.key) < ($1.stage, $1.key) }.map(\.key.hex)
        let record = RetrainRecord(
            shard: shard, round: pass,
            rebuiltSlices: rebuiltLocations.map(\.slice).sorted().map { slice in
                .init(slice: slice, previousHash: previousHashes[slice], newHash: plan.sliceHash(shard: shard, slice: slice),
                      removedIDs: (removedBySlice[slice] ?? []).sorted(by: UTF8Order.precedes),
                      memberCount: plan.currentMembers(shard: shard, slice: slice).count)
            },
            trainedStages: trainedStages,
            reusedStageCount: kept.filter { !trainedStages.contains($0.key.hex) }.count,
            served: .init(shard: shard, sequence: state.servedEntry.sequence, prefixLength: state.servedEntry.prefixLength),
            prefixLengths: state.prefixLengths, fullLength: state.hitSlices.isEmpty,
            erasedFiles: strays.map(layout.relativePath(of:)))
        let keys = [Self.retrainKey, LedgerKey.shard(shard)]
            + removed.map(LedgerKey.exampleID)
        let ledger = try Ledger.open(at: layout.ledgerURL)
        defer { try? ledger.close() }
        _ = try ledger.append(try LedgerDraft(kind: .retrain, timestampMilliseconds: nowMilliseconds,
                                              encoding: record, keys: keys))

        if !rebuiltLocations.isEmpty { try plan.save(to: layout.planURL) }
        try afterPlanSave(shard)
        _ = try RunPublisher.publishLocked(layout: layout, strategy: runner.settings.strategy, shards: [shard], ledger: ledger,
                                           recordedNow: true, nowMilliseconds: nowMilliseconds)
        for url in strays {
            guard unlink(url.path) == 0 || errno == ENOENT else {
                throw ForgettingError.unerasableStage(url.path)
            }
        }
        if !strays.isEmpty { try RunLayout.syncDirectory(layout.shardDirectory(shard)) }
        return record
    }

    /// The ledger key that marks retrain entries.
    public static let retrainKey = LedgerKey(field: .init(rawValue: "entry"), value: "retrain")
}
