import Foundation
import Planning
import Training

/// The deletion state of a run, for `lethe status`: pending requests, dead
/// shards, sequences to retrain, and δ remaining.
public struct ForgettingStatus: Codable, Sendable, Equatable {
    /// Requests recorded in the ledger after the last receipt (an interrupted forget).
    public var pendingRequestCount: Int
    public var deletedExampleCount: Int
    public var deadShards: [Int]
    /// Sequences cut short by deletions that `lethe retrain` can restore: `[shard, sequence,
    /// surviving prefix length]` (a shard with an emptied slice is in `emptiedSlices` instead).
    public var sequencesToRetrain: [[Int]]
    /// Slices whose every example is deleted, `[shard, slice]`: their shard cannot be
    /// retrained (the slice cannot be rebuilt); its data must be planned into a new run.
    public var emptiedSlices: [[Int]] = []
    /// Expected further uniform deletions before every shard is dead (`DeletionLogic`).
    public var deletionRateRemaining: Double
    /// The ledger's last entry (sequence 0 when there is none): keep it outside the run to
    /// detect a rewritten history later (docs/FORGETTING.md, "The anchored ledger").
    public var ledgerHead: LedgerAnchor
    /// The ledger head the served composition reflects (its generation), if it is published.
    public var servedGeneration: LedgerAnchor?
    /// Why served.json cannot be read, when it is damaged (the next forget publishes a new one).
    public var servedUnreadable: String? = nil

    enum CodingKeys: String, CodingKey {
        case pendingRequestCount = "pending_requests", deletedExampleCount = "deleted_examples"
        case deadShards = "dead_shards", sequencesToRetrain = "sequences_to_retrain", emptiedSlices = "emptied_slices"
        case deletionRateRemaining = "deletion_rate_remaining"
        case ledgerHead = "ledger_head", servedGeneration = "served_generation"
        case servedUnreadable = "served_unreadable"
    }

    /// Reads the plan and, if present, the ledger of `run`.
    public static func load(run: URL) throws -> ForgettingStatus {
        let plan = try Plan.load(from: Plan.url(inRun: run))
        var pending = 0
        var head = LedgerAnchor.empty
        let layout = RunLayout(directory: run)
        if FileManager.default.fileExists(atPath: layout.ledgerURL.path) {
            let ledger = try Ledger.openForReading(at: layout.ledgerURL)
            defer { try? ledger.close() }
            let covered = try Forgetter(run: run).lastReceiptCoverage(ledger)
            pending = try ledger.entries(from: covered + 1).filter { $0.kind == .request }.count
            head = try RunPublisher.anchor(of: ledger)
        }
        var composition: ServedComposition?, unreadable: String?
        switch try ServedComposition.read(from: layout.servedURL) {
        case .absent: break
        case .loaded(let loaded): composition = loaded
        case .damaged(let reason): unreadable = reason
        }
        let generation = composition?.ledgerHead
        let sequences = (0..<plan.shardCount).map(plan.sequences(of:))
        let hits = plan.hitSlices
        let outcomes = DeletionLogic.apply(sequences: sequences, currentLengths: sequences.map { $0.map(\.count) },
                                           hits: hits)
        var toRetrain: [[Int]] = []
        // A shard with an emptied slice cannot be retrained: it is listed under emptied_slices.
        let unrebuildable = Set(plan.emptiedSlices.map(\.shard))
        for outcome in outcomes where !unrebuildable.contains(outcome.shard) {
            for (index, length) in outcome.prefixLengths.enumerated() where length < plan.sliceCount {
                toRetrain.append([outcome.shard, index, length])
            }
        }
        return ForgettingStatus(pendingRequestCount: pending, deletedExampleCount: plan.tombstones.count,
                                deadShards: outcomes.filter(\.isDead).map(\.shard), sequencesToRetrain: toRetrain,
                                emptiedSlices: plan.emptiedSlices.map { [$0.shard, $0.slice] },
                                // A full run refuses every deletion: each needs a full retrain.
                                deletionRateRemaining: composition?.strategy == .full ? 0
                                    : DeletionLogic.remainingDeletionRate(
                                        sequences: sequences, prefixLengths: outcomes.map(\.prefixLengths),
                                        sliceCount: plan.sliceCount),
                                ledgerHead: head, servedGeneration: generation, servedUnreadable: unreadable)
    }

    /// Why the served generation may trail the ledger head without anything pending.
    private var generationNote: String {
        guard let served = servedGeneration, served.sequenceNumber < ledgerHead.sequenceNumber,
              pendingRequestCount == 0 else { return "" }
        return " (it holds every deletion request; the entries after it are receipts, or the record of a publish or retrain that stopped before its file)"
    }

    /// The shards `lethe retrain` cannot rebuild, and what to do instead.
    private var emptiedNote: String {
        guard !emptiedSlices.isEmpty else { return "" }
        let shards = Dictionary(grouping: emptiedSlices, by: { $0[0] }).sorted { $0.key < $1.key }
            .map { shard, slices in "shard \(shard) (slice " + slices.map { String($0[1]) }.joined(separator: ", ") + ")" }
        return "\ncannot be retrained, every example of a slice deleted: " + shards.joined(separator: ", ")
            + "; they serve what is left of their sequences, and their remaining data needs a new run (lethe plan --data … --run NEW)"
    }

    /// One line per fact, for people.
    public var summary: String {
        """
        deletions: \(deletedExampleCount) example(s) forgotten, \(pendingRequestCount) request(s) pending\
        \(pendingRequestCount > 0 ? " (run lethe forget --resume)" : "")
        dead shards: \(deadShards.isEmpty ? "none" : deadShards.map(String.init).joined(separator: ", ")); \
        sequences to retrain: \(sequencesToRetrain.count)\
        \(sequencesToRetrain.isEmpty ? "" : " (" + sequencesToRetrain.map { "shard \($0[0]) seq \($0[1]) at \($0[2])" }.joined(separator: ", ") + ")")\
        \(emptiedNote)
        δ remaining: \(String(format: "%.1f", deletionRateRemaining)) further random deletions before a full retrain
        ledger head: \(ledgerHead); served generation: \(servedGeneration.map(\.description) ?? "none published")\
        \(generationNote)
        """ + (servedUnreadable.map { "\nserved.json: unreadable (\($0)); see `lethe verify`, and the next forget publishes a new one" } ?? "")
    }
}
