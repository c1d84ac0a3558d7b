import Foundation
import Planning
import Store
import Training

/// The way every command reaches a run so that accepted deletions bind it
/// (docs/FORGETTING.md, "The live system").
///
/// Each operation takes the run lock and first *recovers*: a forget that was accepted (durable
/// in the ledger) but not carried out — a crash between the ledger commit and the publish —
/// is completed, exactly as `lethe forget --resume` would, and a composition older than the
/// last accepted request is republished. It also checks the ledger against the head the
/// served composition quotes, refusing to go on when the ledger is missing or shorter, or its
/// entry at that position has another hash (the history was cut or replaced).
///
/// Then it trains, publishes or reads with the guarantee that no deletion accepted before the
/// lock was taken is missing from what it sees.
public struct RunGuard {
    public let layout: RunLayout
    /// Milliseconds since 1970 for ledger timestamps (the CLI owns the clock).
    public let nowMilliseconds: () -> Int64

    public init(run: URL, nowMilliseconds: @escaping () -> Int64) {
        layout = RunLayout(directory: run); self.nowMilliseconds = nowMilliseconds
    }

    /// What recovery did.
    public struct Recovery: Sendable, Equatable {
        /// Requests of an interrupted forget that were completed now (or, with
        /// `tombstonesReapplied`, every request, applied again).
        public var completedRequestCount = 0
        /// Why the composition was republished; nil when it was not.
        public var republishedBecause: StaleComposition?
        /// True when the composition was republished.
        public var republished: Bool { republishedBecause != nil }
        /// True when the plan's tombstones were not those the last receipt recorded (an older
        /// plan restored, a changed tombstone log), so every request was applied again.
        public var tombstonesReapplied = false
        public var didSomething: Bool { completedRequestCount > 0 || republished }

        public init(completedRequestCount: Int = 0, republishedBecause: StaleComposition? = nil,
                    tombstonesReapplied: Bool = false) {
            self.completedRequestCount = completedRequestCount; self.republishedBecause = republishedBecause
            self.tombstonesReapplied = tombstonesReapplied
        }
    }

    /// Why served.json had to be published again.
    public enum StaleComposition: Sendable, Equatable {
        /// It quotes a ledger head older than accepted request `request`.
        case predatesRequest(Int64)
        /// It serves other stages than the plan's tombstones and slices derive: served.json or
        /// plan.h5 put back from an older copy, or a retrain stopped between its plan and its
        /// composition.
        case differsFromPlan

        /// One clause saying why, for messages.
        public var explanation: String {
            switch self {
            case .predatesRequest(let request): "served.json predates accepted request #\(request)"
            case .differsFromPlan:
                "served.json is not what the plan's tombstones derive (a file put back from an older copy, "
                    + "or a retrain stopped between its plan and its composition)"
            }
        }
    }

    /// Takes the run lock, recovers, and runs `body` with the lock held.
    public func withRecoveredRun<T>(_ body: (Recovery) throws -> T) throws -> T {
        try Self.requireRun(layout)
        return try FileLock.withExclusiveLock(layout.lockURL) { try body(try recoverLocked()) }
    }

    /// Recovers under the run lock and returns what it did.
    @discardableResult
    public func recover() throws -> Recovery { try withRecoveredRun { $0 } }

    /// How a command that only reads (status, audit, verify, plan show) found the run.
    public struct Inspection: Sendable, Equatable {
        /// What recovery completed (nothing when the run was read as it is).
        public var recovery = Recovery()
        /// True when this process may not write the run: it was read under the shared lock, as
        /// it is on disk, and nothing was recovered.
        public var readOnly = false
        /// What recovery would have completed, left undone because this process may not write.
        public var unfinished: [String] = []
        /// Why recovery stopped, when a stage file it must erase cannot be removed: the run is
        /// then read as it is (the composition without that stage is already published).
        public var recoveryStopped: String?

        public init(recovery: Recovery = Recovery(), readOnly: Bool = false, unfinished: [String] = [],
                    recoveryStopped: String? = nil) {
            self.recovery = recovery; self.readOnly = readOnly; self.unfinished = unfinished
            self.recoveryStopped = recoveryStopped
        }
    }

    /// True when this process may write the run directory and its lock file, as recovery needs.
    public var mayWrite: Bool {
        let lock = layout.lockURL.path
        return access(layout.directory.path, W_OK) == 0 && (access(lock, F_OK) != 0 || access(lock, W_OK) == 0)
    }

    /// For commands that only read: runs `body` holding the run lock *shared*, so readers do not
    /// wait for each other but a writer (forget, stage commit, publish) waits for them, and
    /// `body` sees no change half done. It should read everything it reports before returning.
    ///
    /// When this process may write the run, recovery runs first (it needs the lock exclusive);
    /// a forget that dies between the two is recovered in another round. Otherwise (an auditor
    /// with read access only) nothing is recovered: `Inspection.unfinished` names what recovery
    /// would have completed, so a reader never needs write access and never hides an
    /// interrupted forget.
    public func withInspectedRun<T>(_ body: (Inspection) throws -> T) throws -> T {
        try Self.requireRun(layout)
        guard mayWrite else {
            return try FileLock.withSharedLockForReading(layout.lockURL) {
                try body(Inspection(readOnly: true, unfinished: try unfinishedWork()))
            }
        }
        var recovery = Recovery()
        for round in 1...3 {
            let step: Recovery
            do {
                step = try withRecoveredRun { $0 }
            } catch let error as ForgettingError {
                // A stage file that cannot be erased stops recovery until the path is made
                // removable; a reader still gets the run as it is, with the reason beside it.
                guard case .unerasableStage = error else { throw error }
                return try FileLock.withSharedLockForReading(layout.lockURL) {
                    try body(Inspection(recovery: recovery, unfinished: try unfinishedWork(),
                                        recoveryStopped: error.description))
                }
            }
            recovery.completedRequestCount += step.completedRequestCount
            recovery.republishedBecause = recovery.republishedBecause ?? step.republishedBecause
            recovery.tombstonesReapplied = recovery.tombstonesReapplied || step.tombstonesReapplied
            let result: T? = try FileLock.withSharedLockForReading(layout.lockURL) {
                let unfinished = try unfinishedWork()
                // After three rounds of forgets dying in between, the run is read as it is.
                guard unfinished.isEmpty || round == 3 else { return nil }
                return try body(Inspection(recovery: recovery, unfinished: unfinished))
            }
            if let result { return result }
        }
        preconditionFailure("the third round always reads")
    }

    /// Under the run lock, after recovery: the served composition (nil when the run has none
    /// yet) handed to `body`, which should load everything it answers from before returning.
    public func withServedComposition<T>(_ body: (ServedComposition?) throws -> T) throws -> T {
        try withRecoveredRun { _ in try body(try loadComposition()) }
    }

    /// Publishes the composition of `shards` (and refreshes every shard already served) under
    /// the run lock, after recovery, from the plan's tombstones. When it changes what a shard
    /// serves, a `publish` ledger entry (`PublishRecord`; the ledger is created by the run's
    /// first publish) is appended first and the composition reflects it: the generation, the
    /// served models' version, moves with every change of the models. When nothing changes, the
    /// file is left as it is and the current composition returned.
    @discardableResult
    public func publish(strategy: TrainingStrategy, shards: [Int],
                        fixed: [ServedComposition.Entry] = []) throws -> ServedComposition {
        try withRecoveredRun { _ in
            let derived = try RunPublisher.derive(layout: layout, strategy: strategy, shards: shards, fixed: fixed)
            if let current = derived.current, derived.changed.isEmpty { return current }
            let ledger = try Ledger.open(at: layout.ledgerURL)
            defer { try? ledger.close() }
            return try RunPublisher.write(derived, layout: layout, ledger: ledger, recordedNow: false, cause: .train,
                                          nowMilliseconds: nowMilliseconds())
        }
    }

    /// A stage gate for training this run: its commits recover and re-read the tombstones
    /// under the run lock.
    public func stageGate(tombstones: some Sequence<String>) -> StageGate {
        StageGate.reading(layout, tombstones: tombstones, recover: { _ = try recoverLocked() })
    }

    /// The stage gate for training the stages of `plan`: its commits also refuse once plan.h5
    /// holds another plan (`lethe plan --force` while the training ran).
    public func stageGate(for plan: Plan) -> StageGate {
        StageGate.reading(layout, tombstones: plan.tombstones, identity: plan.identity, recover: { _ = try recoverLocked() })
    }

    // MARK: - Under the lock

    /// Recovery proper; the caller holds the run lock.
    func recoverLocked() throws -> Recovery {
        var recovery = Recovery()
        _ = layout.removeLockedWritersTemporaryFiles()
        _ = layout.removeDeadTrainersTemporaryFiles()
        let shardCount = PlanShardCount(layout)
        guard let ledger = try anchoredLedger(readOnly: false, shardCount: shardCount) else { return recovery }
        defer { try? ledger.close() }
        let lastRequest = try ledger.lastSequenceNumber(ofKind: .request) ?? 0
        let forgetter = Forgetter(run: layout.directory)
        defer { try? forgetter.close() }
        let unreceipted = lastRequest > (try forgetter.lastReceiptCoverage(ledger))
        let lostTombstones = try forgetter.planLostTombstones(ledger)
        if unreceipted || lostTombstones {
            let receipt = try forgetter.forgetHoldingLock([], groups: nil, nowMilliseconds: nowMilliseconds())
            recovery.completedRequestCount = receipt.recoveredRequestCount
            recovery.tombstonesReapplied = lostTombstones
        } else {
            // Every request has its receipt, so its tombstones: a flag still raised was left by a
            // forget that died before it recorded anything.
            try UnfinishedForget.lower(layout)
        }
        if let served = try readableComposition(shardCount: shardCount), let stale = try staleness(of: served, lastRequest: lastRequest) {
            _ = try RunPublisher.publishLocked(layout: layout, strategy: served.strategy, shards: [], ledger: ledger,
                                               nowMilliseconds: nowMilliseconds())
            recovery.republishedBecause = stale
        }
        return recovery
    }

    /// What `recoverLocked` would do, found without writing; the caller holds the run lock shared.
    func unfinishedWork() throws -> [String] {
        let flag = UnfinishedForget.isRaised(layout)
        let shardCount = PlanShardCount(layout)
        guard let ledger = try anchoredLedger(readOnly: true, shardCount: shardCount) else {
            return flag ? ["a forget was interrupted (\(UnfinishedForget.url(layout).lastPathComponent) is raised)"] : []
        }
        defer { try? ledger.close() }
        var unfinished: [String] = []
        let lastRequest = try ledger.lastSequenceNumber(ofKind: .request) ?? 0
        let forgetter = Forgetter(run: layout.directory)
        let covered = try forgetter.lastReceiptCoverage(ledger)
        if try forgetter.planLostTombstones(ledger) {
            unfinished.append("the plan's tombstones are not those the last receipt recorded (fewer, or other ids: "
                              + "plan.h5 or plan.tombstones was restored from an older copy or changed outside Lethe), "
                              + "so every accepted deletion must be applied again")
        }
        if lastRequest > covered {
            let count = try ledger.entries(from: covered + 1).filter { $0.kind == .request }.count
            unfinished.append("\(count) accepted deletion request(s) not yet carried out (an interrupted forget)")
        } else if flag {
            unfinished.append("a forget died before it recorded anything (\(UnfinishedForget.url(layout).lastPathComponent) "
                              + "is raised)")
        }
        if let served = try readableComposition(shardCount: shardCount), let stale = try staleness(of: served, lastRequest: lastRequest) {
            unfinished.append(stale.explanation)
        }
        return unfinished
    }

    /// Why `served` must be published again, nil when it need not: it predates an accepted
    /// request, or a shard it serves is not served as the plan's current tombstones and slices
    /// derive (served.json or plan.h5 put back from an older copy, a retrain killed between its
    /// plan and composition).
    private func staleness(of served: ServedComposition, lastRequest: Int64) throws -> StaleComposition? {
        if served.ledgerHead.sequenceNumber < lastRequest { return .predatesRequest(lastRequest) }
        let derived = try RunPublisher.derive(layout: layout, strategy: served.strategy, shards: [])
        return derived.composition(at: served.ledgerHead).shards != served.shards ? .differsFromPlan : nil
    }

    /// The run's ledger, checked against the head served.json quotes; nil when the run has none
    /// (and served.json quotes none). Throws `ledgerTampered` when the ledger lost that head.
    private func anchoredLedger(readOnly: Bool, shardCount: PlanShardCount) throws -> Ledger? {
        let composition = try readableComposition(shardCount: shardCount)
        guard FileManager.default.fileExists(atPath: layout.ledgerURL.path) else {
            try Self.requireLedger(at: layout.ledgerURL, quotedBy: composition?.ledgerHead) {
                try Plan.load(from: layout.planURL).tombstones.count
            }
            return nil
        }
        let ledger = readOnly ? try Ledger.openForReading(at: layout.ledgerURL) : try Ledger.open(at: layout.ledgerURL)
        if let composition {
            do { try Self.checkAnchor(composition.ledgerHead, in: ledger, file: layout.ledgerURL.path) } catch {
                try? ledger.close()
                throw error
            }
        }
        return ledger
    }

    private func loadComposition() throws -> ServedComposition? {
        FileManager.default.fileExists(atPath: layout.servedURL.path) ? try ServedComposition.load(from: layout.servedURL) : nil
    }

    /// The served composition for recovery: nil when there is none or it is damaged. Recovery
    /// does not stop at a damaged served.json (a forget it completes publishes a new one, and
    /// nothing else of it needs the file), but it does not replace one either: verify reports it.
    private func readableComposition(shardCount: PlanShardCount) throws -> ServedComposition? {
        guard case .loaded(let composition) = try ServedComposition.read(from: layout.servedURL) else { return nil }
        // One that serves a shard the plan lacks is another run's: as damaged as an unreadable one.
        return composition.foreignShard(planShardCount: try shardCount.value()) == nil ? composition : nil
    }

    /// Throws unless `layout` is a planned run directory (before any lock file is created there).
    public static func requireRun(_ layout: RunLayout) throws {
        guard FileManager.default.fileExists(atPath: layout.planURL.path) else {
            let remaining = Plan.filesMadeFromAPlan(in: layout.directory)
            if !remaining.isEmpty { throw PlanningError.planMissing(directory: layout.directory.path, remaining: remaining) }
            throw ForgettingError.runFile(file: layout.planURL.path, reason: "no plan here, so this is not a run directory")
        }
    }

    /// Throws when the ledger file is missing although the run shows it existed: `anchor`
    /// (served.json's head) quotes one of its entries, or the plan holds tombstones, which only
    /// its requests make. Opening it would create an empty ledger in its place.
    static func requireLedger(at url: URL, quotedBy anchor: LedgerAnchor?, tombstones: () throws -> Int) throws {
        guard !FileManager.default.fileExists(atPath: url.path) else { return }
        if let anchor, anchor.sequenceNumber > 0 {
            throw ForgettingError.ledgerTampered(file: url.path, reason: "the ledger is missing, but served.json reflects "
                                                 + "its entry #\(anchor.sequenceNumber)")
        }
        let count = try tombstones()
        if count > 0 {
            throw ForgettingError.ledgerTampered(file: url.path, reason: "the ledger is missing, but the plan holds \(count) "
                                                 + "tombstone(s), which only its deletion requests make")
        }
    }

    /// Throws when `anchor` is not in `ledger`: the ledger is shorter or differs at that entry.
    static func checkAnchor(_ anchor: LedgerAnchor, in ledger: Ledger, file: String) throws {
        guard anchor.sequenceNumber > 0 else { return }
        guard let entry = try ledger.entry(at: anchor.sequenceNumber) else {
            throw ForgettingError.ledgerTampered(file: file, reason: "served.json reflects ledger entry "
                                                 + "#\(anchor.sequenceNumber), which the ledger does not have (it was "
                                                 + "truncated or replaced)")
        }
        guard entry.hash == anchor.hash else {
            throw ForgettingError.ledgerTampered(file: file, reason: "ledger entry #\(anchor.sequenceNumber) hashes to "
                                                 + "\(entry.hash), but served.json quotes \(anchor.hash)")
        }
    }
}

extension RunGuard {
    /// Trains the stages of `schedule` that `gate` permits (`S3TRunner.trainStages`) and
    /// publishes the shard: for S3T and SISA the longest clean prefix the plan's current
    /// tombstones allow; for `full`, its one stage unless it was withheld.
    /// - Returns: what training did, and the composition published (nil for a withheld `full` model).
    @discardableResult
    public func trainAndPublish(_ schedule: StageSchedule, runner: S3TRunner, members: (Int) -> [String],
                                gate: StageGate, events: (S3TRunner.Event) -> Void)
        throws -> (outcome: S3TRunner.Outcome, composition: ServedComposition?) {
        let outcome = try runner.trainStages(schedule, members: members, gate: gate, events: events)
        let composition: ServedComposition?
        if schedule.strategy == .full {
            guard outcome.withheld.isEmpty else { return (outcome, nil) }
            let entry = ServedComposition.Entry(shard: schedule.shard, sequence: 0, prefixLength: schedule.sequenceKeys[0].count,
                                                stageKeys: schedule.sequenceKeys[0])
            composition = try publish(strategy: .full, shards: [], fixed: [entry])
        } else {
            composition = try publish(strategy: schedule.strategy, shards: [schedule.shard])
        }
        if let entry = composition?.entry(shard: schedule.shard) { events(.shardPublished(entry)) }
        return (outcome, composition)
    }
}

/// The plan's shard count, read from plan.h5 the first time it is asked for: a recovery checks
/// served.json against it more than once, and a plan never changes its shard count.
private final class PlanShardCount {
    private let layout: RunLayout
    private var known: Int?

    init(_ layout: RunLayout) { self.layout = layout }

    func value() throws -> Int {
        if let known { return known }
        let count = try Plan.load(from: layout.planURL).shardCount
        known = count
        return count
    }
}
