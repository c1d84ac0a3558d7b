import Crypto
import Foundation
import Planning
import Store
import Training

/// Carries out forget requests on a run directory in this order (docs/FORGETTING.md):
///
/// 1. record the requests in the ledger (one transaction, fsynced: accepted = durable);
/// 2. tombstone their examples in the plan (appended to its tombstone log and fsynced; the
///    first forget of a plan without a log rewrites `plan.h5` once, naming it), so no later
///    training sees them;
/// 3. publish the new served composition (atomic rename): every sequence of a hit shard
///    truncated at its earliest hit, each shard serving its longest surviving prefix;
/// 4. erase the stage files that saw a deleted example (none of them is served any more), then
///    fsync their directories;
/// 5. append the receipt to the ledger.
///
/// Every step is idempotent and derived from durable state, so re-running after a crash at any
/// point completes the work: requests recorded after the last receipt are *pending* and each
/// forget (or `finishPending`) applies them together with its own. Surviving prefix lengths are
/// a function of the plan's sequences and its tombstones (a sequence survives up to its first
/// slice holding a tombstoned example), which makes steps 2–4 repeatable without a separate
/// journal.
///
/// A `Forgetter` is meant to live as long as the process serving the run: it keeps the ledger
/// open and the plan in memory between forgets, so a forget costs only its writes. Both are
/// revalidated under the run lock at every forget (the plan file's identity and the length of
/// its tombstone log, the ledger file's identity), so a forget or retrain by another process
/// is seen. Use one `Forgetter` from one thread at a time.
public final class Forgetter {
    public let run: URL
    let layout: RunLayout
    /// Resolves a group name to the planned example ids of that data subject.
    public typealias GroupResolver = (String) -> [String]

    /// State kept between forgets; read and changed only while holding the run lock.
    private var ledger: (ledger: Ledger, identity: FileIdentity)?
    private var plan: (plan: Plan, identity: FileIdentity)?
    private var composition: (value: ServedComposition, identity: FileIdentity)?
    /// Stage keys and file paths by (shard, prefix); valid while the cached plan's slice hashes are.
    private var stageFileCache: [StagePrefix: StageFile] = [:]
    /// The last receipt this engine read or wrote: its ledger position and the coverage it records.
    private var lastReceipt: (sequenceNumber: Int64, coverage: ReceiptCoverage)?

    public init(run: URL) { self.run = run; layout = RunLayout(directory: run) }

    deinit { try? ledger?.ledger.close() }

    /// Closes the ledger and forgets the cached plan; the next forget opens and loads them again.
    public func close() throws {
        let open = ledger?.ledger
        ledger = nil
        dropCachedState()
        try open?.close()
    }

    /// Forgets the cached plan, composition, stage paths and receipt; the ledger stays open.
    private func dropCachedState() {
        plan = nil; composition = nil; stageFileCache = [:]; lastReceipt = nil
    }

    /// Wall time of each phase of the last `forget`, for `lethe bench forget --breakdown`.
    public private(set) var lastPhaseSeconds: [ForgetPhase: Double] = [:]

    /// Runs `body`, adding its wall time to `phase` in `lastPhaseSeconds`.
    private func timed<T>(_ phase: ForgetPhase, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - start
            lastPhaseSeconds[phase, default: 0] += Double(elapsed.components.seconds)
                + Double(elapsed.components.attoseconds) * 1e-18
        }
        return try body()
    }

    public var ledgerURL: URL { layout.ledgerURL }

    /// The ledger key that marks receipts, so the last one is found without a scan.
    public static let receiptKey = LedgerKey(field: .init(rawValue: "entry"), value: "receipt")

    /// Forgets `requests` (and finishes any pending ones). `accepted` is called once the
    /// requests are durable in the ledger, before anything else changes.
    ///
    /// The whole operation holds the run lock (`RunLayout.lockURL`), which stage commits,
    /// publishes and retrains also take, so nothing the forget reads is replaced under it and
    /// nothing trained or published after it misses its tombstones.
    ///
    /// `lockWait` bounds the wait for the lock (a server answers instead of hanging behind a
    /// stopped process): `ForgettingError.runBusy` after that long, with nothing recorded.
    public func forget(_ requests: [ForgetRequest], groups: GroupResolver? = nil,
                       nowMilliseconds: Int64, lockWait: TimeInterval? = nil,
                       accepted: (LedgerHead) -> Void = { _ in }) throws -> ForgetReceipt {
        lastPhaseSeconds = [:]
        try RunGuard.requireRun(layout)
        let body = { try self.forgetHoldingLock(requests, groups: groups, nowMilliseconds: nowMilliseconds, accepted: accepted) }
        guard let lockWait else { return try FileLock.withExclusiveLock(layout.lockURL, body) }
        guard let receipt = try FileLock.withExclusiveLock(layout.lockURL, waitingAtMost: lockWait, body) else {
            throw ForgettingError.runBusy(run: run.path, seconds: lockWait)
        }
        return receipt
    }

    /// `forget` for a caller that already holds the run lock (recovery).
    func forgetHoldingLock(_ requests: [ForgetRequest], groups: GroupResolver?, nowMilliseconds: Int64,
                           accepted: (LedgerHead) -> Void = { _ in }) throws -> ForgetReceipt {
        do {
            return try forgetLocked(requests, groups: groups, nowMilliseconds: nowMilliseconds, accepted: accepted)
        } catch {
            dropCachedState()  // reload from disk next time
            throw error
        }
    }

    /// The steps of a forget, in order; the caller holds the run lock.
    private func forgetLocked(_ requests: [ForgetRequest], groups: GroupResolver?, nowMilliseconds: Int64,
                              accepted: (LedgerHead) -> Void) throws -> ForgetReceipt {
        var plan = try timed(.planLoad) { try currentPlan() }
        let strategy = try currentStrategy(plan: plan)
        // Refuse before recording anything: a `full` run is one model on all data, so the
        // truncation rule does not apply (every deletion needs a full retrain).
        if strategy == .full {
            throw ForgettingError.fullRunCannotForget(run: run.path)
        }
        // Never add to a ledger that lost history the served composition quotes, nor make an
        // empty one in place of a missing one.
        try RunGuard.requireLedger(at: ledgerURL, quotedBy: composition?.value.ledgerHead) { plan.tombstones.count }
        let ledger = try timed(.ledgerOpen) { try currentLedger() }
        if let anchor = composition?.value.ledgerHead { try RunGuard.checkAnchor(anchor, in: ledger, file: ledgerURL.path) }

        // 1. Resolve, then record durably (a request already recorded under its request_id is not).
        let resolved = try resolve(requests, plan: plan, groups: groups, nowMilliseconds: nowMilliseconds)
        let (records, repeats) = try withoutRecordedRepeats(resolved, named: requests.map { $0.requestID != nil },
                                                            in: ledger)
        // A plan that lost tombstones gets every request applied again, from the first.
        let lastCovered = try planLostTombstones(ledger) ? 0 : try cachedReceipt(ledger)?.ledgerSequence ?? 0
        let (appended, head) = try record(records, in: ledger, nowMilliseconds: nowMilliseconds)
        if !appended.isEmpty { accepted(head) }
        let repeatOutcomes = repeats.map { repeated in
            let first = switch repeated.original {
            case .recorded(let sequence): sequence
            case .inBatch(let index): appended[index].sequenceNumber
            }
            return ForgetReceipt.RequestOutcome(requestID: repeated.record.requestID, ledgerSequence: first,
                                                id: repeated.record.id, group: repeated.record.group, status: .alreadyRecorded)
        }
        let (pending, recoveredCount) = try pendingRequests(ledger, coveredUpTo: lastCovered, head: head,
                                                            appended: appended, records: records)
        if pending.isEmpty {
            try UnfinishedForget.lower(layout)
            var receipt = try ForgetReceipt.nothingPending(plan: plan, run: run, head: head)
            receipt.requests = repeatOutcomes
            return receipt
        }

        // 2. Tombstones.
        let (forgottenNow, hitsBefore) = try tombstone(pending, recoveredCount: recoveredCount, in: &plan)
        try UnfinishedForget.lower(layout)

        // 3. Composition.
        let sequences = (0..<plan.shardCount).map(plan.sequences(of:))
        let full = sequences.map { $0.map(\.count) }
        let hitsNow = Set(forgottenNow.filter { !plan.isExcluded($0) }.compactMap(plan.location(of:)))
        let lengthsBefore = DeletionLogic.apply(sequences: sequences, currentLengths: full, hits: hitsBefore)
            .map(\.prefixLengths)
        let outcomes = DeletionLogic.apply(sequences: sequences, currentLengths: lengthsBefore, hits: hitsNow)
        let replaced = try publish(outcomes, plan: plan, sequences: sequences,
                                   anchor: { shards, current in
                                       // Requests recorded now: the composition reflects the last. Otherwise
                                       // (recovery, repeats) a publish entry of its own when it changes.
                                       appended.isEmpty
                                           ? try RunPublisher.anchor(writing: shards, over: current, ledger: ledger,
                                                                     cause: .recovery, nowMilliseconds: nowMilliseconds)
                                           : LedgerAnchor(head)
                                   })

        // 4. Erase every stage that saw a tombstoned example (all tombstones: finishes erasures
        // an interrupted run left undone), and the unfinished stage files of dead trainers.
        _ = layout.removeDeadTrainersTemporaryFiles()
        let erased = try erase(plan: plan, sequences: sequences, hits: hitsBefore.union(hitsNow), hitsNow: hitsNow)

        // 5. Receipt.
        let receipt = ForgetReceipt(
            requests: Self.requestOutcomes(pending, forgottenNow: forgottenNow) + repeatOutcomes,
            forgottenExamples: forgottenNow.sorted(by: UTF8Order.precedes),
            unknownIDs: pending.compactMap { $0.1.examples.isEmpty ? $0.1.id : nil },
            unknownGroups: pending.compactMap { $0.1.examples.isEmpty ? $0.1.group : nil },
            recoveredRequestCount: recoveredCount,
            affectedSlices: hitsNow.sorted { ($0.shard, $0.slice) < ($1.shard, $1.slice) }.map { [$0.shard, $0.slice] },
            truncatedSequences: outcomes.flatMap(\.truncations),
            erasedStages: erased,
            served: outcomes.map { .init(shard: $0.shard, sequence: $0.served?.sequence, prefixLength: $0.served?.prefixLength ?? 0) },
            deadShards: outcomes.filter(\.isDead).map(\.shard),
            deletionRateRemaining: DeletionLogic.remainingDeletionRate(
                sequences: sequences, prefixLengths: outcomes.map(\.prefixLengths), sliceCount: plan.sliceCount),
            compositionPublished: strategy != nil,
            ledgerSequence: head.sequenceNumber, ledgerHash: head.hash, tombstoneCount: plan.tombstones.count,
            tombstoneDigest: Self.tombstoneDigest(plan.tombstones), replacedComposition: replaced)
        _ = try timed(.receipt) {
            let stored = try ledger.append(LedgerDraft(kind: .receipt, timestampMilliseconds: nowMilliseconds,
                                                       payload: try receipt.json(), keys: [Self.receiptKey]))
            lastReceipt = (stored.sequenceNumber, ReceiptCoverage(ledgerSequence: receipt.ledgerSequence,
                                                                  ledgerHash: receipt.ledgerHash,
                                                                  tombstoneCount: receipt.tombstoneCount,
                                                                  tombstoneDigest: receipt.tombstoneDigest))
        }
        return receipt
    }

    /// Each request as the record the ledger keeps: the planned examples it names.
    private func resolve(_ requests: [ForgetRequest], plan: Plan, groups: GroupResolver?,
                         nowMilliseconds: Int64) throws -> [RequestRecord] {
        var records: [RequestRecord] = []
        records.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            let requestID = request.requestID ?? "req-\(nowMilliseconds)-\(index)"
            switch request.target {
            case .example(let id):
                // The request keeps the id as given; what it deletes is the plan's example, in
                // the plan's bytes (the given form may be another Unicode normal form of it).
                records.append(RequestRecord(requestID: requestID, id: id, group: nil, timestamp: request.timestamp,
                                             examples: plan.storedID(of: id).map { [$0] } ?? []))
            case .group(let group):
                guard let groups else {
                    throw ForgettingError.invalidRequest(reason: "request \(requestID) names group \"\(group)\" "
                                                         + "but no dataset was given to resolve groups")
                }
                let members = groups(group).filter { plan.location(of: $0) != nil }.sorted()
                records.append(RequestRecord(requestID: requestID, id: nil, group: group, timestamp: request.timestamp,
                                             examples: members))
            }
        }
        return records
    }

    /// The request a repeat repeats: one in the ledger (its position), or an earlier request of
    /// the same batch (its index among the records kept).
    private enum Original { case recorded(Int64), inBatch(Int) }

    /// A request that names a request_id already in the ledger with the same target (the id or
    /// group as given) is a repeat of it: a log run again after a crash, a client retrying a
    /// request it got no answer to. Repeats are left out of what is recorded, each with its
    /// original. Generated request ids (`named` false) never repeat.
    private func withoutRecordedRepeats(_ resolved: [RequestRecord], named: [Bool], in ledger: Ledger) throws
        -> (kept: [RequestRecord], repeats: [(record: RequestRecord, original: Original)]) {
        func sameTarget(_ a: RequestRecord, _ b: RequestRecord) -> Bool {
            a.id.map { Array($0.utf8) } == b.id.map { Array($0.utf8) } && a.group.map { Array($0.utf8) } == b.group.map { Array($0.utf8) }
        }
        let ids = zip(resolved, named).filter(\.1).map(\.0.requestID)
        let recorded = ids.isEmpty ? [:] : try ledger.requestEntries(forRequestIDs: ids)
        var kept: [RequestRecord] = []
        var repeats: [(record: RequestRecord, original: Original)] = []
        var keptByID: [String: [Int]] = [:]
        for (record, isNamed) in zip(resolved, named) {
            guard isNamed else { kept.append(record); continue }
            let earlier = try (recorded[record.requestID] ?? []).first { entry in
                sameTarget(try entry.decodePayload(as: RequestRecord.self), record)
            }
            if let earlier {
                repeats.append((record, .recorded(earlier.sequenceNumber)))
            } else if let index = keptByID[record.requestID]?.first(where: { sameTarget(kept[$0], record) }) {
                repeats.append((record, .inBatch(index)))
            } else {
                keptByID[record.requestID, default: []].append(kept.count)
                kept.append(record)
            }
        }
        return (kept, repeats)
    }

    /// Appends the requests in one transaction (durable on return) and returns them with the head.
    private func record(_ records: [RequestRecord], in ledger: Ledger,
                        nowMilliseconds: Int64) throws -> (appended: [LedgerEntry], head: LedgerHead) {
        let drafts = records.map { record in
            var keys: [LedgerKey] = [.requestID(record.requestID)]
            if let id = record.id { keys.append(.exampleID(id)) }
            if let group = record.group { keys.append(.group(group)) }
            // The examples under their stored bytes too, when they differ from the id as given.
            keys += record.examples.filter { stored in !(record.id.map { Array($0.utf8) == Array(stored.utf8) } ?? false) }
                .map(LedgerKey.exampleID)
            return LedgerDraft(kind: .request, timestampMilliseconds: nowMilliseconds, payload: record.json, keys: keys)
        }
        // Raised before the requests become durable, lowered once their tombstones are: a task
        // that cannot read the ledger never trains while the plan misses an accepted deletion.
        if !drafts.isEmpty { try timed(.flag) { try UnfinishedForget.raise(layout) } }
        let appended = drafts.isEmpty ? [] : try timed(.ledgerAppend) { try ledger.append(drafts) }
        let head = try appended.last.map { LedgerHead(sequenceNumber: $0.sequenceNumber, hash: $0.hash) }
            ?? ledger.head() ?? LedgerHead(sequenceNumber: 0, hash: "")
        return (appended, head)
    }

    /// The requests this forget carries out: those an interrupted forget recorded but never
    /// finished (after the last receipt's coverage), then the new ones; and how many are old.
    private func pendingRequests(_ ledger: Ledger, coveredUpTo lastCovered: Int64, head: LedgerHead,
                                 appended: [LedgerEntry], records: [RequestRecord])
        throws -> (pending: [(Int64, RequestRecord)], recoveredCount: Int) {
        // Sequence numbers near Int64.max come only from an edited ledger.
        guard head.sequenceNumber < Int64.max / 2, lastCovered < Int64.max / 2 else {
            throw ForgettingError.ledgerTampered(file: ledger.url.path, reason: "it reaches entry #\(head.sequenceNumber), "
                                                 + "a sequence number Lethe never writes")
        }
        let firstNew = appended.first?.sequenceNumber ?? head.sequenceNumber + 1
        var pending: [(Int64, RequestRecord)] = []
        if lastCovered + 1 < firstNew {
            for entry in try ledger.entries(from: lastCovered + 1, limit: Int(firstNew - lastCovered - 1))
            where entry.kind == .request {
                pending.append((entry.sequenceNumber, try entry.decodePayload(as: RequestRecord.self)))
            }
        }
        let recoveredCount = pending.count
        pending += zip(appended.map(\.sequenceNumber), records).map { ($0, $1) }
        return (pending, recoveredCount)
    }

    /// Tombstones the pending requests' examples durably; returns the examples this operation
    /// forgets and the slices that were hit before it. Examples of recovered requests count as
    /// new even if an interrupted run already tombstoned them: their truncations and erasures
    /// may not have happened. (Work stays proportional to the requests, not to all tombstones.)
    private func tombstone(_ pending: [(Int64, RequestRecord)], recoveredCount: Int,
                           in plan: inout Plan) throws -> (forgottenNow: Set<String>, hitsBefore: Set<SliceLocation>) {
        let recovered = Set(pending.prefix(recoveredCount).flatMap(\.1.examples))
        let named = Set(pending.flatMap(\.1.examples))
        let forgottenNow = named.filter { !plan.isTombstoned($0) || recovered.contains($0) }
        // Slices hit before this operation. Examples a retrain already removed from their
        // slices hit nothing any more.
        let hitsBefore = recovered.isEmpty ? plan.hitSlices
            : Set(plan.tombstones.filter { !recovered.contains($0) && !plan.isExcluded($0) }.compactMap(plan.location(of:)))
        if !forgottenNow.allSatisfy(plan.isTombstoned) {
            let planURL = layout.planURL
            try timed(.tombstones) {
                if try plan.recordTombstones(forgottenNow, savedAt: planURL) {
                    self.plan = (plan, try FileIdentity(of: planURL))  // plan.h5 rewritten (now with a log)
                    stageFileCache = [:]
                } else {
                    self.plan?.plan = plan  // the log grew; plan.h5 is the same file
                }
            }
        }
        return (forgottenNow, hitsBefore)
    }

    /// Rewrites the entries of the published shards from `outcomes`, anchored where `anchor`
    /// says for the new shards over the current composition (nil when served.json is damaged).
    /// Shards not published yet (planned, not trained) stay out of the composition.
    private func publish(_ outcomes: [ShardOutcome], plan: Plan, sequences: [[[Int]]],
                         anchor: ([ServedComposition.Entry], ServedComposition?) throws -> LedgerAnchor)
        throws -> ForgetReceipt.ReplacedComposition? {
        if let damaged = damagedComposition {
            return try republish(outcomes, plan: plan, sequences: sequences, anchor: anchor, damaged: damaged)
        }
        guard let served = composition?.value else { return nil }
        let entries = outcomes.filter { served.entry(shard: $0.shard) != nil }.map { entry(of: $0, plan: plan, sequences: sequences) }
        try timed(.publish) {
            var next = served.replacing(entries, ledgerHead: served.ledgerHead)
            next.ledgerHead = try anchor(next.shards, served)
            try save(next)
        }
        return nil
    }

    /// What `outcome`'s shard serves: its kept prefix with the prefix's stage keys, or dead.
    private func entry(of outcome: ShardOutcome, plan: Plan, sequences: [[[Int]]]) -> ServedComposition.Entry {
        guard let kept = outcome.served else { return .dead(shard: outcome.shard) }
        return .init(shard: outcome.shard, sequence: kept.sequence, prefixLength: kept.prefixLength,
                     stageKeys: stageKeys(plan, outcome.shard, sequences[outcome.shard][kept.sequence], kept.prefixLength))
    }

    /// Writes `next` as served.json and keeps it as the cached composition.
    private func save(_ next: ServedComposition) throws {
        try next.save(to: layout)
        composition = (next, try FileIdentity(of: layout.servedURL))
    }

    /// Publishes a composition derived from the plan alone, in place of a damaged served.json,
    /// which is kept beside it (hard-linked, so a crash in between leaves the damaged file in
    /// place and the next forget does this again). Every shard whose served prefix has all its
    /// stage files is served, and a dead shard is listed dead; a shard with a stage missing was
    /// not trained yet (or lost a file): `lethe train` publishes it later.
    private func republish(_ outcomes: [ShardOutcome], plan: Plan, sequences: [[[Int]]],
                           anchor: ([ServedComposition.Entry], ServedComposition?) throws -> LedgerAnchor,
                           damaged: (reason: String, strategy: TrainingStrategy)) throws -> ForgetReceipt.ReplacedComposition {
        let entries = outcomes.map { entry(of: $0, plan: plan, sequences: sequences) }.filter { entry in
            entry.stageKeys.enumerated().allSatisfy {
                FileManager.default.fileExists(atPath: layout.stageURL(shard: entry.shard, stage: $0 + 1, key: $1).path)
            }
        }
        return try timed(.publish) {
            let keptAs = try setAsideDamagedComposition()
            var next = ServedComposition(strategy: damaged.strategy, shards: entries, ledgerHead: .empty)
            next.ledgerHead = try anchor(next.shards, nil)
            try save(next)
            damagedComposition = nil
            return .init(reason: damaged.reason, keptAs: keptAs)
        }
    }

    /// Keeps the damaged served.json as `served.json.damaged` (or `.damaged-2`, …: an earlier
    /// one is never overwritten) and returns that name. A hard link leaves served.json in place
    /// for the atomic replace; a directory, which cannot be linked or replaced, is moved.
    private func setAsideDamagedComposition() throws -> String {
        let served = layout.servedURL
        for attempt in 1...1_000 {
            let name = served.lastPathComponent + ".damaged" + (attempt == 1 ? "" : "-\(attempt)")
            let target = layout.directory.appendingPathComponent(name).path
            if link(served.path, target) == 0 || (errno == EPERM && rename(served.path, target) == 0) {
                try RunLayout.syncDirectory(layout.directory)
                return name
            }
            guard errno == EEXIST else {
                throw ForgettingError.runFile(file: served.path, reason: "served.json is damaged and cannot be set aside as "
                                              + "\(name) (\(String(cString: strerror(errno)))); move it aside by hand")
            }
        }
        throw ForgettingError.runFile(file: served.path, reason: "served.json is damaged and 1,000 damaged copies are "
                                      + "already kept beside it; remove some")
    }

    /// Erases every stage file whose prefix holds a hit slice, fsyncs the touched directories,
    /// and lists the stages erased now or hit by this operation.
    private func erase(plan: Plan, sequences: [[[Int]]], hits: Set<SliceLocation>,
                       hitsNow: Set<SliceLocation>) throws -> [ForgetReceipt.ErasedStage] {
        var erased: [ForgetReceipt.ErasedStage] = []
        var touchedShards = Set<Int>()
        // A file that cannot be erased does not stop the others: every one that can goes, then
        // the first failure is reported (the next command tries it again).
        var failure: ForgettingError?
        try timed(.erase) {
            let full = sequences.map { $0.map(\.count) }
            for outcome in DeletionLogic.apply(sequences: sequences, currentLengths: full, hits: hits) {
                for prefix in outcome.erasedPrefixes {
                    let stage = stageFile(plan, shard: outcome.shard, prefix: prefix)
                    let deleted = unlink(stage.path) == 0
                    if !deleted && errno != ENOENT {
                        failure = failure ?? .unerasableStage(stage.path)
                        continue
                    }
                    if deleted { touchedShards.insert(outcome.shard) }
                    let hitNow = prefix.contains { hitsNow.contains(SliceLocation(shard: outcome.shard, slice: $0)) }
                    guard deleted || hitNow else { continue }
                    erased.append(.init(shard: outcome.shard, stage: prefix.count, slices: prefix, key: stage.key.hex,
                                        file: stage.relativePath, deletedNow: deleted))
                }
            }
            let candidates = eraseRetrainCandidates(plan: plan, sequences: sequences, hitsNow: hitsNow)
            for candidate in candidates.erased {
                erased.append(candidate)
                touchedShards.insert(candidate.shard)
            }
            failure = failure ?? candidates.failure
            for shard in touchedShards.sorted() { try RunLayout.syncDirectory(layout.shardDirectory(shard)) }
        }
        if let failure { throw failure }
        return erased
    }

    /// Erases the stage files of a retrain not yet published (a Slurm array's tasks, or a local
    /// retrain between training and publishing) that saw an example deleted now. Their keys
    /// come from rebuilt slices the plan does not hold yet, so the plan's prefixes do not name
    /// them: they are the shard's stage checkpoints outside every prefix of its sequences. A
    /// rebuild removes the examples deleted when it ran, so a candidate's version of a slice hit
    /// now is clean only if it lacks every tombstoned example of that slice (the hash of the
    /// slice's members without them); any other version held one deleted now. Entries that are
    /// no stage checkpoint (a directory, a link, a file Lethe cannot read as one) are left alone:
    /// nothing was trained into them and nothing loads them.
    private func eraseRetrainCandidates(plan: Plan, sequences: [[[Int]]], hitsNow: Set<SliceLocation>)
        -> (erased: [ForgetReceipt.ErasedStage], failure: ForgettingError?) {
        var erased: [ForgetReceipt.ErasedStage] = []
        var failure: ForgettingError?
        for shard in Set(hitsNow.map(\.shard)).sorted() {
            var planned = Set<String>()
            for sequence in sequences[shard] where !sequence.isEmpty {
                for length in 1...sequence.count {
                    planned.insert(URL(fileURLWithPath: stageFile(plan, shard: shard, prefix: Array(sequence.prefix(length))).path)
                        .lastPathComponent)
                }
            }
            var cleanHash: [Int: String] = [:]
            for location in hitsNow where location.shard == shard {
                let members = plan.currentMembers(shard: shard, slice: location.slice)
                cleanHash[location.slice] = SliceHash.of(ids: members.filter { !plan.isTombstoned($0) })
            }
            for name in layout.stageFileNames(shard: shard) where !planned.contains(name) {
                let url = layout.shardDirectory(shard).appendingPathComponent(name)
                var status = stat()
                guard lstat(url.path, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
                      let lineage = try? StageCheckpoint.load(from: url).lineage, lineage.shard == shard else { continue }
                let sawDeleted = zip(lineage.prefixSlices, lineage.prefixSliceHashes).contains { slice, hash in
                    cleanHash[slice].map { $0 != hash } ?? false
                }
                guard sawDeleted else { continue }
                guard unlink(url.path) == 0 || errno == ENOENT else {
                    failure = failure ?? .unerasableStage(url.path)
                    continue
                }
                erased.append(.init(shard: shard, stage: lineage.stage, slices: lineage.prefixSlices, key: lineage.key.hex,
                                    file: layout.relativePath(of: url), deletedNow: true))
            }
        }
        return (erased, failure)
    }

    /// A request is `forgotten` when it is the first in this operation to name a newly deleted
    /// example; later repeats of the same example (even in the same log) are not.
    private static func requestOutcomes(_ pending: [(Int64, RequestRecord)],
                                        forgottenNow: Set<String>) -> [ForgetReceipt.RequestOutcome] {
        var claimed = Set<String>()
        return pending.map { sequence, record in
            let fresh = record.examples.filter { forgottenNow.contains($0) && !claimed.contains($0) }
            claimed.formUnion(fresh)
            let status: ForgetReceipt.RequestOutcome.Status =
                record.examples.isEmpty ? .unknown : fresh.isEmpty ? .alreadyForgotten : .forgotten
            return ForgetReceipt.RequestOutcome(requestID: record.requestID, ledgerSequence: sequence,
                                                id: record.id, group: record.group, status: status)
        }
    }

    /// The stage keys of stages 1…length of `sequence` in `shard`.
    func stageKeys(_ plan: Plan, _ shard: Int, _ sequence: [Int], _ length: Int) -> [StageKey] {
        (0..<length).map { stageFile(plan, shard: shard, prefix: Array(sequence.prefix($0 + 1))).key }
    }

    /// The ledger position up to which requests have a receipt (0 when none has).
    func lastReceiptCoverage(_ ledger: Ledger) throws -> Int64 {
        try lastReceipt(ledger)?.ledgerSequence ?? 0
    }

    /// What the last receipt covers, or nil when there is none.
    func lastReceipt(_ ledger: Ledger) throws -> ReceiptCoverage? {
        try ledger.lastEntry(matching: Self.receiptKey)?.decodePayload(as: ReceiptCoverage.self)
    }

    /// True when the plan's tombstones are not those the last receipt recorded after its forget:
    /// fewer (tombstones are never removed, so plan.h5 or its tombstone log was replaced by an
    /// older copy: a backup, another run's plan), or as many but other ids (the log, which carries
    /// no checksum of its own, was changed: one flipped character turns a deleted id into
    /// another). Deletions the ledger accepted and carried out may be missing, and recovery must
    /// apply every request again.
    func planLostTombstones(_ ledger: Ledger) throws -> Bool {
        guard let receipt = try cachedReceipt(ledger), let recorded = receipt.tombstoneCount else { return false }
        let tombstones = try currentPlan().tombstones
        if tombstones.count < recorded { return true }
        guard let digest = receipt.tombstoneDigest else { return false }
        if tombstones.count == recorded { return Self.tombstoneDigest(tombstones) != digest }
        // More than it counted: a forget since, whose receipt is not written yet (recovery
        // completes it). Every tombstone comes from a request, so the receipt's set is the plan's
        // tombstones less those that only requests after the receipt name: an id a later request
        // names was there already if an earlier request named it too (a repeated deletion).
        var later = Set<String>()
        for entry in try ledger.entries(from: receipt.ledgerSequence + 1) where entry.kind == .request {
            later.formUnion(try entry.decodePayload(as: RequestRecord.self).examples)
        }
        let atReceipt = try tombstones.filter { id in
            try !later.contains(id) || ledger.entries(forExampleID: id).contains {
                $0.kind == .request && $0.sequenceNumber <= receipt.ledgerSequence
            }
        }
        return Self.tombstoneDigest(atReceipt) != digest
    }

    /// SHA-256 (hex) of a set of tombstones: the ids sorted by UTF-8 bytes, each followed by a
    /// line feed, so the order they were recorded in does not matter.
    static func tombstoneDigest(_ tombstones: some Collection<String>) -> String {
        var hash = SHA256()
        for id in tombstones.sorted(by: UTF8Order.precedes) {
            hash.update(data: Data(id.utf8))
            hash.update(data: Data([0x0A]))
        }
        return LedgerHashing.hex(hash.finalize())
    }

    /// `lastReceipt`, without decoding the receipt again when it is the one this engine last
    /// read or wrote.
    private func cachedReceipt(_ ledger: Ledger) throws -> ReceiptCoverage? {
        guard let last = try ledger.lastSequenceNumber(matching: Self.receiptKey) else { return nil }
        if let cached = lastReceipt, cached.sequenceNumber == last { return cached.coverage }
        let coverage = try lastReceipt(ledger)
        lastReceipt = coverage.map { (last, $0) }
        return coverage
    }

    private struct StagePrefix: Hashable {
        let shard: Int
        let slices: [Int]
    }

    private struct StageFile {
        let key: StageKey
        let path: String
        /// Relative to the run directory, as receipts name it.
        let relativePath: String
    }

    /// The key and file of the stage of `shard` trained on `prefix` (the trainer's naming:
    /// `StageFiles`), computed once per plan.
    private func stageFile(_ plan: Plan, shard: Int, prefix: [Int]) -> StageFile {
        let reference = StagePrefix(shard: shard, slices: prefix)
        if let known = stageFileCache[reference] { return known }
        let key = StageKey(prefixSliceHashes: prefix.map { plan.sliceHash(shard: shard, slice: $0) })
        let file = StageFile(key: key, path: layout.stageURL(shard: shard, stage: prefix.count, key: key).path,
                             relativePath: layout.relativeStagePath(shard: shard, stage: prefix.count, key: key))
        stageFileCache[reference] = file
        return file
    }

    // MARK: - State kept between forgets (called under the run lock)

    /// The plan as on disk: the cached one if `plan.h5` is the same file, with any tombstones
    /// another process appended to the log since; otherwise loaded anew.
    private func currentPlan() throws -> Plan {
        let url = Plan.url(inRun: run)
        let identity = try? FileIdentity(of: url)
        if let identity, var cached = plan, cached.identity == identity {
            try cached.plan.readNewTombstones(savedAt: url)
            plan = cached
            return cached.plan
        }
        plan = nil
        stageFileCache = [:]
        let loaded = try Plan.load(from: url)
        if let identity { plan = (loaded, identity) }
        return loaded
    }

    /// The served composition's strategy, or nil when the run has none yet (planned, not trained).
    ///
    /// A damaged served.json does not stop a deletion: the composition is derived from the plan,
    /// its tombstones and the stage files, so this forget publishes a new one (`damagedComposition`
    /// records why) with the strategy train.json names. Without readable training settings the
    /// strategy is unknown and the forget is refused before it records anything.
    private func currentStrategy(plan: Plan) throws -> TrainingStrategy? {
        damagedComposition = nil
        let url = layout.servedURL
        if let identity = try? FileIdentity(of: url), let cached = composition, cached.identity == identity {
            return cached.value.strategy
        }
        composition = nil
        switch try ServedComposition.read(from: url) {
        case .absent:
            return nil
        case .loaded(let value):
            // A composition serving a shard the plan lacks is another run's: replaced like a damaged one.
            if let foreign = value.foreignShard(planShardCount: plan.shardCount) { return try damaged(foreign) }
            if let settings = try? TrainingSettings.load(from: layout.settingsURL), settings.strategy != value.strategy,
               Self.servedStagesRecord(settings.strategy, in: value, layout: layout) {
                return try damaged("it serves a \(value.strategy.rawValue) composition, but train.json and the stages it "
                                   + "serves record \(settings.strategy.rawValue)")
            }
            composition = (value, try FileIdentity(of: url))
            return value.strategy
        case .damaged(let reason):
            return try damaged(reason)
        }
        func damaged(_ reason: String) throws -> TrainingStrategy {
            guard let settings = try? TrainingSettings.load(from: layout.settingsURL) else {
                throw ServedComposition.damaged(url, reason)
            }
            damagedComposition = (reason, settings.strategy)
            return settings.strategy
        }
    }

    /// True when the first stage `composition` serves records `strategy` (which of served.json
    /// and train.json was edited, when the two disagree: the stages were written by training).
    private static func servedStagesRecord(_ strategy: TrainingStrategy, in composition: ServedComposition,
                                           layout: RunLayout) -> Bool {
        guard strategy != .full, composition.strategy != .full,
              let entry = composition.shards.first(where: { !$0.stageKeys.isEmpty }),
              let stage = try? StageCheckpoint.load(from: layout.stageURL(shard: entry.shard, stage: 1, key: entry.stageKeys[0]))
        else { return false }
        return stage.record.strategy == strategy
    }

    /// Why served.json could not be read when this forget began, and the run's strategy.
    private var damagedComposition: (reason: String, strategy: TrainingStrategy)?

    /// The run's ledger, opened once and kept open while `ledger.sqlite` is the same file.
    private func currentLedger() throws -> Ledger {
        if let open = ledger, (try? FileIdentity(of: ledgerURL, ignoringContent: true)) == open.identity {
            return open.ledger
        }
        try? ledger?.ledger.close()
        ledger = nil
        let opened = try Ledger.open(at: ledgerURL)
        ledger = (opened, try FileIdentity(of: ledgerURL, ignoringContent: true))
        return opened
    }
}

/// The part of a receipt that says which requests it covers: every request entry up to
/// `ledgerSequence`.
public struct ReceiptCoverage: Decodable, Sendable {
    public var ledgerSequence: Int64
    public var ledgerHash: String
    /// The plan's tombstones after the receipt's forget (nil in receipts written before it was recorded).
    public var tombstoneCount: Int?
    /// Their digest (`Forgetter.tombstoneDigest`; nil in receipts written before it was recorded).
    public var tombstoneDigest: String?
    enum CodingKeys: String, CodingKey {
        case ledgerSequence = "ledger_sequence", ledgerHash = "ledger_hash", tombstoneCount = "tombstone_count"
        case tombstoneDigest = "tombstone_sha256"
    }
}

/// Which file a path names and which version of it: device, inode, size and modification and
/// change times (nanoseconds). Files the engine caches are replaced by rename, so a new
/// identity means another writer; the tombstone log, which grows in place, is checked by length.
struct FileIdentity: Equatable {
    let fields: [Int]

    /// - Parameter ignoringContent: only device and inode (for a database that changes in place).
    init(of url: URL, ignoringContent: Bool = false) throws {
        var status = stat()
        guard stat(url.path, &status) == 0 else {
            throw ForgettingError.runFile(file: url.path, reason: "cannot stat it (\(String(cString: strerror(errno))), errno \(errno))")
        }
        let place = [Int(status.st_dev), Int(status.st_ino)]
        fields = ignoringContent ? place : place + [Int(status.st_size), status.st_mtim.tv_sec, status.st_mtim.tv_nsec,
                                                    status.st_ctim.tv_sec, status.st_ctim.tv_nsec]
    }
}

/// The phases of one forget, as `lethe bench forget --breakdown` reports them.
public enum ForgetPhase: String, CaseIterable, Sendable {
    case planLoad = "plan load"
    case ledgerOpen = "ledger open"
    case flag = "unfinished-forget flag + fdatasync"
    case ledgerAppend = "ledger append + fsync"
    case tombstones = "tombstone write"
    case publish = "publish served.json"
    case erase = "erase + directory fsync"
    case receipt = "receipt append + fsync"

    /// The phase's name in JSON reports (snake_case, as every report key).
    public var key: String {
        switch self {
        case .planLoad: "plan_load"
        case .ledgerOpen: "ledger_open"
        case .flag: "unfinished_flag"
        case .ledgerAppend: "ledger_append"
        case .tombstones: "tombstone_write"
        case .publish: "publish"
        case .erase: "erase"
        case .receipt: "receipt_append"
        }
    }
}
