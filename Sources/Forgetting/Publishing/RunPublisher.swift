import Foundation
import Planning
import Training

/// Publishes a run's served composition: the one place `served.json` is derived and written.
///
/// Under the run lock (the caller holds it), the composition is computed from the plan's
/// *current* tombstones — each shard serves its longest sequence prefix that holds no deleted
/// example (lowest sequence on ties), or is dead — and it records the ledger head read under
/// the same lock. So a publish can never be based on an older ledger head: whatever a forget
/// accepted before the lock was taken is in the tombstones it reads (recovery completes a
/// forget that was accepted and interrupted before its tombstones were written).
enum RunPublisher {
    /// The composition a publish of `shards` would write: `current` (nil when the run has none)
    /// with the entries of `shards` replaced, every shard already served refreshed, and `fixed`
    /// entries as given (the one model of a `full` run, whose stage is keyed by its data rather
    /// than by slices). Every stage named by an entry of `shards` or `fixed` must exist; the
    /// other shards' entries are refreshed whatever their files (a file missing there is that
    /// shard's to train again, and must neither block this shard's publish nor a forget's).
    /// The caller holds the run lock.
    struct Derived {
        var current: ServedComposition?
        var strategy: TrainingStrategy
        /// The entries that replace those of the same shards in `current`.
        var entries: [ServedComposition.Entry]

        /// The entries that serve another model than `current` does (new shards included).
        var changed: [ServedComposition.Entry] {
            entries.filter { current?.entry(shard: $0.shard) != $0 }
        }

        /// The composition with these entries, reflecting `anchor`.
        func composition(at anchor: LedgerAnchor) -> ServedComposition {
            (current ?? ServedComposition(strategy: strategy, shards: [], ledgerHead: anchor))
                .replacing(entries, ledgerHead: anchor)
        }
    }

    static func derive(layout: RunLayout, strategy: TrainingStrategy, shards: [Int],
                       fixed: [ServedComposition.Entry] = []) throws -> Derived {
        let current = FileManager.default.fileExists(atPath: layout.servedURL.path)
            ? try ServedComposition.load(from: layout.servedURL) : nil
        if let current, current.strategy != strategy {
            throw ForgettingError.runFile(file: layout.servedURL.path, reason: "serves a \(current.strategy.rawValue) "
                                          + "composition, not \(strategy.rawValue)")
        }
        var entries = fixed
        if strategy != .full {
            let plan = try Plan.load(from: layout.planURL)
            if let foreign = current?.foreignShard(planShardCount: plan.shardCount) {
                throw ForgettingError.runFile(file: layout.servedURL.path, reason: foreign + ". Restore the run's own "
                    + "plan.h5 from a backup; or, if served.json is the stranger, the next lethe forget publishes one "
                    + "from the plan in its place")
            }
            let refreshed = Set(shards).union(current?.shards.map(\.shard) ?? []).subtracting(fixed.map(\.shard))
            entries += refreshed.sorted().map { ShardState(plan: plan, shard: $0, layout: layout).servedEntry }
        }
        let published = Set(shards).union(fixed.map(\.shard))
        for entry in entries where published.contains(entry.shard) {
            for (index, key) in entry.stageKeys.enumerated() {
                let url = layout.stageURL(shard: entry.shard, stage: index + 1, key: key)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw ForgettingError.runFile(file: url.path, reason: "shard \(entry.shard) would serve stage "
                                                  + "\(index + 1), whose file is missing; run lethe train (or lethe "
                                                  + "retrain) for shard \(entry.shard) again")
                }
            }
        }
        return Derived(current: current, strategy: strategy, entries: entries)
    }

    /// Derives the composition of `shards` (`derive`) and writes it. With `recordedNow`, the
    /// entry the caller appended for this publish (a retrain's record), it reflects that entry;
    /// otherwise `anchor(writing:…)` chooses, appending a `publish` entry when needed. The caller
    /// holds the run lock.
    static func publishLocked(layout: RunLayout, strategy: TrainingStrategy, shards: [Int],
                              fixed: [ServedComposition.Entry] = [], ledger: Ledger?, recordedNow: Bool = false,
                              nowMilliseconds: Int64) throws -> ServedComposition {
        try write(try derive(layout: layout, strategy: strategy, shards: shards, fixed: fixed), layout: layout,
                  ledger: ledger, recordedNow: recordedNow, cause: .recovery, nowMilliseconds: nowMilliseconds)
    }

    /// Writes `derived`'s composition, reflecting the ledger's head when the caller `recordedNow`
    /// the entry of this publish, else where `anchor(writing:…)` says. The caller holds the run lock.
    static func write(_ derived: Derived, layout: RunLayout, ledger: Ledger?, recordedNow: Bool,
                      cause: PublishRecord.Cause, nowMilliseconds: Int64) throws -> ServedComposition {
        var composition = derived.composition(at: try ledger.map(anchor(of:)) ?? .empty)
        if !recordedNow, let ledger {
            composition.ledgerHead = try anchor(writing: composition.shards, over: derived.current, ledger: ledger,
                                                cause: cause, nowMilliseconds: nowMilliseconds)
        }
        try composition.save(to: layout)
        return composition
    }

    /// The ledger position a composition about to be written with `shards` reflects, when no
    /// entry was appended for it: the head, if the file already quotes it with these very shards;
    /// otherwise a `publish` entry appended now. A head that an earlier served.json quoted may have
    /// named other models (a restored plan or served.json, a forget that recorded nothing new and
    /// recomputes the composition), so a composition that changes is never given an existing
    /// generation: one generation, one set of models.
    static func anchor(writing shards: [ServedComposition.Entry], over current: ServedComposition?, ledger: Ledger,
                       cause: PublishRecord.Cause, nowMilliseconds: Int64) throws -> LedgerAnchor {
        let head = try anchor(of: ledger)
        if let current, current.ledgerHead == head, current.shards == shards { return head }
        let changed = shards.filter { current?.entry(shard: $0.shard) != $0 }
        let entry = try ledger.append(try PublishRecord(shards: changed, cause: cause).draft(nowMilliseconds: nowMilliseconds))
        return LedgerAnchor(sequenceNumber: entry.sequenceNumber, hash: entry.hash)
    }

    /// The ledger's head as a composition anchor (sequence 0 for an empty ledger).
    static func anchor(of ledger: Ledger) throws -> LedgerAnchor {
        try ledger.head().map(LedgerAnchor.init) ?? .empty
    }
}

extension LedgerAnchor {
    /// The anchor a composition published at `head` records.
    init(_ head: LedgerHead) { self.init(sequenceNumber: head.sequenceNumber, hash: head.hash) }
}
