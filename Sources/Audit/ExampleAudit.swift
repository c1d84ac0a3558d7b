import Forgetting
import Foundation
import Support
import Planning
import Store
import Training

/// Everything Lethe can say about one training example (docs/DESIGN.md §4): where
/// it lives, every stage checkpoint whose prefix contained it (existing or erased) and whether
/// any is served, and, if it was forgotten, when, by which request, with the receipt.
public struct ExampleAudit: Codable, Sendable, Equatable {
    /// A stage checkpoint that trained on the example's slice.
    public struct Stage: Codable, Sendable, Equatable {
        public var shard: Int
        public var stage: Int
        /// 0-based slices of its prefix.
        public var slices: [Int]
        /// Sequences of the shard that begin with this prefix.
        public var sequences: [Int]
        public var key: String
        /// Path relative to the run directory.
        public var file: String
        public var exists: Bool
        /// A forget's receipt records that it deleted this file. A stage neither on disk nor
        /// erased was never written: not trained yet, or withheld because a deletion came first
        /// (or erased by a forget a crash interrupted, whose completion found it gone).
        public var erased: Bool
        public var served: Bool
    }

    /// The ledger's record of the deletion.
    public struct Deletion: Codable, Sendable, Equatable {
        public var requestID: String
        public var requestLedgerSequence: Int64
        public var timestampMilliseconds: Int64
        /// Set when the request named the example through its group.
        public var group: String?
        /// The receipt that covers the request, as stored (JSON); nil while it is pending, and
        /// for a request whose receipt an earlier deletion of this audit already carries.
        public var receiptLedgerSequence: Int64?
        public var receipt: String?
        enum CodingKeys: String, CodingKey {
            case requestID = "request_id", requestLedgerSequence = "request_ledger_sequence"
            case timestampMilliseconds = "timestamp_ms", group
            case receiptLedgerSequence = "receipt_ledger_sequence", receipt
        }

        public init(requestID: String, requestLedgerSequence: Int64, timestampMilliseconds: Int64, group: String?,
                    receiptLedgerSequence: Int64?, receipt: String?) {
            self.requestID = requestID; self.requestLedgerSequence = requestLedgerSequence
            self.timestampMilliseconds = timestampMilliseconds; self.group = group
            self.receiptLedgerSequence = receiptLedgerSequence; self.receipt = receipt
        }

        /// In JSON the receipt is an object (the one the ledger stores), not a string holding it;
        /// a payload that is no receipt stays a string.
        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(requestID, forKey: .requestID)
            try container.encode(requestLedgerSequence, forKey: .requestLedgerSequence)
            try container.encode(timestampMilliseconds, forKey: .timestampMilliseconds)
            try container.encodeIfPresent(group, forKey: .group)
            try container.encodeIfPresent(receiptLedgerSequence, forKey: .receiptLedgerSequence)
            if let receipt {
                if let object = try? JSONDecoder().decode(ForgetReceipt.self, from: Data(receipt.utf8)) {
                    try container.encode(object, forKey: .receipt)
                } else {
                    try container.encode(receipt, forKey: .receipt)
                }
            }
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            requestID = try container.decode(String.self, forKey: .requestID)
            requestLedgerSequence = try container.decode(Int64.self, forKey: .requestLedgerSequence)
            timestampMilliseconds = try container.decode(Int64.self, forKey: .timestampMilliseconds)
            group = try container.decodeIfPresent(String.self, forKey: .group)
            receiptLedgerSequence = try container.decodeIfPresent(Int64.self, forKey: .receiptLedgerSequence)
            if let text = try? container.decodeIfPresent(String.self, forKey: .receipt) {
                receipt = text
            } else {
                receipt = try container.decodeIfPresent(ForgetReceipt.self, forKey: .receipt).map { try $0.json() }
            }
        }
    }

    public var id: String
    public var shard: Int
    public var slice: Int
    public var sliceHash: String
    public var tombstoned: Bool
    public var stages: [Stage]
    /// True when a served stage's prefix contains the example's slice.
    public var servedNow: Bool
    /// Every request that named the example, oldest first (empty when never requested).
    public var deletions: [Deletion]
    /// The served composition `servedNow` speaks of: its generation (the ledger head it
    /// reflects, the served models' version); nil when the run serves nothing yet.
    public var servedGeneration: LedgerAnchor? = nil

    enum CodingKeys: String, CodingKey {
        case id, shard, slice, sliceHash = "slice_hash", tombstoned, stages
        case servedNow = "served_now", deletions, servedGeneration = "served_generation"
    }

    /// Ledger positions of the requests indexed under `key` (an id or a group the plan does not
    /// hold: what the audit answers instead of its stages).
    public static func requests(matching key: LedgerKey, run: URL) throws -> [Int64] {
        let layout = RunLayout(directory: run)
        guard FileManager.default.fileExists(atPath: layout.ledgerURL.path) else { return [] }
        let ledger = try Ledger.openForReading(at: layout.ledgerURL)
        defer { try? ledger.close() }
        return try ledger.entries(matching: key).filter { $0.kind == .request }.map(\.sequenceNumber)
    }

    /// Audits `id` in the run.
    public static func audit(run: URL, id: String) throws -> ExampleAudit {
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let layout = RunLayout(directory: run)
        guard let lineage = plan.lineage(of: id) else {
            throw AuditError.unknownExample(id: id, requests: try requests(matching: .exampleID(id), run: run))
        }
        let shard = lineage.location.shard, slice = lineage.location.slice
        let composition = FileManager.default.fileExists(atPath: layout.servedURL.path)
            ? try ServedComposition.load(from: layout.servedURL) : nil
        let ledger = FileManager.default.fileExists(atPath: layout.ledgerURL.path) ? try Ledger.openForReading(at: layout.ledgerURL) : nil
        defer { try? ledger?.close() }
        let (deletions, erasedFiles, erasedByItsForgets, erasedByAnyForget) = try ledgerRecords(of: id, stored: plan.storedID(of: id) ?? id,
                                                                             in: ledger)
        var stages = composition?.strategy == .full
            ? fullModelStages(composition!, plan: plan, id: id, layout: layout, erasedFiles: erasedFiles)
            : try slicedStages(plan: plan, id: id, lineage: lineage, layout: layout, composition: composition,
                               erasedFiles: erasedFiles, sliceVersions: try sliceVersions(shard: lineage.location.shard,
                                                                                           plan: plan, in: ledger),
                               run: run)
        if composition?.strategy != .full {
            // A slice only loses members, and only deleted ones: every version of the slice of an
            // example never deleted held it, so every stage on any version of it saw the example —
            // those a forget of another example erased and the files of retrain passes that never
            // published (their rebuilt slices are on no record) included.
            if lineage.isTombstoned {
                stages = withStagesOutsideThePlan(stages, erasedByItsForgets, lineage: lineage, plan: plan, layout: layout,
                                                  composition: composition)
            } else {
                stages = withStagesOutsideThePlan(stages, erasedByAnyForget, lineage: lineage, plan: plan, layout: layout,
                                                  composition: composition)
                stages = withUnplannedFiles(stages, lineage: lineage, plan: plan, layout: layout, composition: composition)
            }
        }
        return ExampleAudit(id: id, shard: shard, slice: slice,
                            sliceHash: plan.isExcluded(id) ? try hashBeforeExclusion(of: id, plan: plan, run: run)
                                                           : lineage.sliceHash,
                            tombstoned: lineage.isTombstoned, stages: stages,
                            servedNow: stages.contains(where: \.served), deletions: deletions,
                            servedGeneration: composition?.ledgerHead)
    }

    /// The stages of an S3T or SISA run whose prefix holds the example's slice.
    ///
    /// A stage's key hashes its prefix's slice contents as they were when it was trained. A
    /// retrain gives a rebuilt slice a new hash, so a stage trained before it (and erased by a
    /// forget, or by the retrain) has a key from the older versions of its slices. Each prefix is
    /// therefore looked up under every version its slices had (`sliceVersions`; for the
    /// example's own slice, the versions that held it), and reported under every key found
    /// served, on disk or named erased by a receipt (an old version and the rebuilt one both
    /// trained on an example the rebuild kept), else under the plan's current key ("never
    /// written").
    private static func slicedStages(plan: Plan, id: String, lineage: Lineage, layout: RunLayout,
                                     composition: ServedComposition?, erasedFiles: Set<String>,
                                     sliceVersions: [Int: [String]], run: URL) throws -> [Stage] {
        let shard = lineage.location.shard, slice = lineage.location.slice
        let sequences = plan.sequences(of: shard)
        var servedKeys = Set<String>()
        for entry in composition?.shards ?? [] where entry.shard == shard { servedKeys.formUnion(entry.stageKeys.map(\.hex)) }
        // A slice rebuilt without the example (`lethe retrain`) has a new hash; the stages that
        // saw the example were keyed by the hash recorded as `previous_hash` in the ledger.
        let sliceHashSeen = plan.isExcluded(id) ? try hashBeforeExclusion(of: id, plan: plan, run: run)
                                                : lineage.sliceHash
        func versions(_ s: Int) -> [String] {
            let known = sliceVersions[s] ?? []
            guard s == slice else { return known.isEmpty ? [plan.sliceHash(shard: shard, slice: s)] : known }
            // The example's slice: its versions up to the last that held the example.
            guard let last = known.lastIndex(of: sliceHashSeen) else { return [sliceHashSeen] }
            return Array(known[...last])
        }
        func current(_ s: Int) -> String { s == slice ? sliceHashSeen : plan.sliceHash(shard: shard, slice: s) }
        var stagesByKey: [String: Stage] = [:]
        for (index, sequence) in sequences.enumerated() {
            let position = lineage.stagePositions[index]
            for length in position...sequence.count {
                let prefix = Array(sequence.prefix(length))
                var candidates: [[String]] = [[]]
                for s in prefix {
                    let options = versions(s)
                    candidates = candidates.flatMap { head in options.map { head + [$0] } }
                    if candidates.count > 256 { candidates = [prefix.map(current)]; break }   // a history too long to try
                }
                func stage(_ hashes: [String]) -> Stage {
                    let stageKey = StageKey(prefixSliceHashes: hashes)
                    let file = layout.relativeStagePath(shard: shard, stage: length, key: stageKey)
                    return Stage(shard: shard, stage: length, slices: prefix, sequences: [index], key: stageKey.hex,
                                 file: file,
                                 exists: FileManager.default.fileExists(atPath: layout.stageURL(shard: shard, stage: length,
                                                                                               key: stageKey).path),
                                 erased: erasedFiles.contains(file), served: servedKeys.contains(stageKey.hex))
                }
                // Every version of the prefix that trained on the example and left a trace (served,
                // on disk, or erased by a receipt): a retrain's rebuild erases the old version while
                // the new one trains on the example again, and both saw it.
                let found = candidates.map(stage).filter { $0.served || $0.exists || $0.erased }
                for chosen in found.isEmpty ? [stage(prefix.map(current))] : found {
                    if stagesByKey[chosen.key] != nil { stagesByKey[chosen.key]?.sequences.append(index); continue }
                    stagesByKey[chosen.key] = chosen
                }
            }
        }
        return inReportOrder(Array(stagesByKey.values))
    }

    /// `stages` and the stages that the forgets of the example erased in its shard with its
    /// slice in their prefix which no planned prefix names: the candidates of a retrain not yet
    /// published, whose rebuilt slices the plan and the ledger never recorded. Each was trained
    /// before the example's deletion on a version of its slice that still held it (a slice only
    /// loses members, and only once they are deleted), so each saw the example.
    private static func withStagesOutsideThePlan(_ stages: [Stage], _ erased: [ForgetReceipt.ErasedStage],
                                                 lineage: Lineage, plan: Plan, layout: RunLayout,
                                                 composition: ServedComposition?) -> [Stage] {
        let shard = lineage.location.shard, slice = lineage.location.slice
        var known = Set(stages.map(\.key)), result = stages
        let servedKeys = Set((composition?.shards ?? []).filter { $0.shard == shard }.flatMap { $0.stageKeys.map(\.hex) })
        let sequences = plan.sequences(of: shard)
        for stage in erased where stage.shard == shard && stage.slices.contains(slice) && !known.contains(stage.key) {
            known.insert(stage.key)
            // The key names the file; one that is not a key (a damaged receipt) names none.
            let exists = Hex.isSHA256(stage.key) && FileManager.default.fileExists(
                atPath: layout.stageURL(shard: shard, stage: stage.stage, key: StageKey(hex: stage.key)).path)
            result.append(Stage(shard: shard, stage: stage.stage, slices: stage.slices,
                                sequences: sequences.indices.filter { Array(sequences[$0].prefix(stage.slices.count)) == stage.slices },
                                key: stage.key, file: stage.file, exists: exists, erased: true,
                                served: servedKeys.contains(stage.key)))
        }
        return inReportOrder(result)
    }

    /// `stages` and the stage files on disk in the example's shard whose prefix holds its slice
    /// under a version no record names (a retrain pass killed before it published trains its
    /// rebuilt slices, which the plan and the ledger learn of only when it publishes). For an
    /// example never deleted only: each such file trained on it. A file whose attributes cannot
    /// be read is left to `lethe verify`, which reports it.
    private static func withUnplannedFiles(_ stages: [Stage], lineage: Lineage, plan: Plan, layout: RunLayout,
                                           composition: ServedComposition?) -> [Stage] {
        let shard = lineage.location.shard, slice = lineage.location.slice
        let known = Set(stages.map(\.file))
        let servedKeys = Set((composition?.shards ?? []).filter { $0.shard == shard }.flatMap { $0.stageKeys.map(\.hex) })
        let sequences = plan.sequences(of: shard)
        var result = stages
        for name in layout.stageFileNames(shard: shard) {
            let url = layout.shardDirectory(shard).appendingPathComponent(name)
            let file = layout.relativePath(of: url)
            guard !known.contains(file), let read = try? HDF5File.open(url) else { continue }
            defer { try? read.close() }
            guard let slices = try? read.intsAttribute(named: "prefix_slices").map(Int.init), slices.contains(slice),
                  let stage = try? read.intAttribute(named: "stage"), let key = try? read.stringAttribute(named: "stage_key")
            else { continue }
            result.append(Stage(shard: shard, stage: Int(stage), slices: slices,
                                sequences: sequences.indices.filter { Array(sequences[$0].prefix(slices.count)) == slices },
                                key: key, file: file, exists: true, erased: false, served: servedKeys.contains(key)))
        }
        return inReportOrder(result)
    }

    /// Stages by stage index, then prefix, then key.
    private static func inReportOrder(_ stages: [Stage]) -> [Stage] {
        stages.sorted { a, b in
            a.stage != b.stage ? a.stage < b.stage
                : a.slices != b.slices ? a.slices.lexicographicallyPrecedes(b.slices) : a.key < b.key
        }
    }

    /// Every content hash each slice of `shard` has had, oldest first, from the ledger's retrain
    /// records (a slice never rebuilt is absent: its plan hash is its only one).
    private static func sliceVersions(shard: Int, plan: Plan, in ledger: Ledger?) throws -> [Int: [String]] {
        guard let ledger else { return [:] }
        var versions: [Int: [String]] = [:]
        for entry in try ledger.entries(matching: .shard(shard))
        where entry.kind == .retrain {
            let record = try entry.decodePayload(as: RetrainRecord.self)
            guard record.shard == shard else { continue }
            for rebuilt in record.rebuiltSlices {
                if versions[rebuilt.slice, default: []].isEmpty { versions[rebuilt.slice] = [rebuilt.previousHash] }
                if versions[rebuilt.slice]?.last != rebuilt.newHash { versions[rebuilt.slice]?.append(rebuilt.newHash) }
            }
        }
        return versions
    }

    /// A `full` run serves one model trained on every example not deleted before it was trained
    /// (a full run refuses every later deletion). Its key hashes exactly those ids, so the
    /// example is in it when the key matches the plan's ids without the tombstoned ones and the
    /// example is not tombstoned; if the key matches neither, it may be, and is reported as in it.
    private static func fullModelStages(_ composition: ServedComposition, plan: Plan, id: String, layout: RunLayout,
                                        erasedFiles: Set<String>) -> [Stage] {
        guard let entry = composition.shards.first, let key = entry.stageKeys.first else { return [] }
        let ids = plan.undeletedExampleIDs
        let trainedOnAllLive = key == StageKey(prefixSliceHashes: [SliceHash.of(ids: ids)])
        if trainedOnAllLive && plan.isTombstoned(id) { return [] }
        let file = layout.relativeStagePath(shard: entry.shard, stage: 1, key: key)
        return [Stage(shard: entry.shard, stage: 1, slices: [], sequences: [0], key: key.hex, file: file,
                      exists: FileManager.default.fileExists(atPath: layout.stageURL(shard: entry.shard, stage: 1, key: key).path),
                      erased: erasedFiles.contains(file), served: true)]
    }

    /// Every request that named the example, every stage file a forget's receipt says it
    /// deleted (paths relative to the run), and the stages the receipts of the example's own
    /// forgets list as deleted.
    private static func ledgerRecords(of id: String, stored: String, in ledger: Ledger?) throws
        -> ([Deletion], Set<String>, [ForgetReceipt.ErasedStage], [ForgetReceipt.ErasedStage]) {
        guard let ledger else { return ([], [], [], []) }
        struct ErasedList: Decodable {
            let erasedStages: [ForgetReceipt.ErasedStage]
            enum CodingKeys: String, CodingKey { case erasedStages = "erased_stages" }
        }
        let receiptEntries = try ledger.entries(matching: Forgetter.receiptKey)
        // A payload that cannot be read stops the audit naming its entry: an audit that skipped
        // it would report less than the ledger records.
        let receipts = try receiptEntries.map { entry in (entry, try entry.decodePayload(as: ReceiptCoverage.self)) }
        // Every stage a receipt deleted: their files, and the stages themselves for the audit of
        // an example never deleted (each saw it).
        let erasedByAny = try receiptEntries.flatMap { entry in
            try entry.decodePayload(as: ErasedList.self).erasedStages.filter(\.deletedNow)
        }
        let erased = Set(erasedByAny.map(\.file))
        var deletions: [Deletion] = []
        // The ledger's keys are bytes: look the example up as given and as the plan stores it
        // (another Unicode normal form of the same id).
        var entries = try ledger.entries(forExampleID: id)
        if Array(stored.utf8) != Array(id.utf8) {
            let seen = Set(entries.map(\.sequenceNumber))
            entries += try ledger.entries(forExampleID: stored).filter { !seen.contains($0.sequenceNumber) }
            entries.sort { $0.sequenceNumber < $1.sequenceNumber }
        }
        // A receipt covers every request of its forget (100,000 for a large log): it is embedded
        // with the first of this example's requests it covers, and later ones name it by sequence.
        var embedded: Set<Int64> = []
        for entry in entries where entry.kind == .request {
            let record = try entry.decodePayload(as: RequestRecord.self)
            guard record.examples.contains(id) else { continue }
            let receipt = receipts.first { $0.1.ledgerSequence >= entry.sequenceNumber }?.0
            let firstMention = receipt.map { embedded.insert($0.sequenceNumber).inserted } ?? false
            deletions.append(Deletion(requestID: record.requestID, requestLedgerSequence: entry.sequenceNumber,
                                      timestampMilliseconds: entry.timestampMilliseconds, group: record.group,
                                      receiptLedgerSequence: receipt?.sequenceNumber,
                                      receipt: firstMention ? receipt?.payload : nil))
        }
        // The forgets that deleted the example: a receipt covering a repeat of its request (a log
        // run again, with Y's deletion beside it) erased stages for Y, not for it.
        let covering = Set(deletions.compactMap(\.receiptLedgerSequence))
        let erasedByItsForgets = try receiptEntries.filter { covering.contains($0.sequenceNumber) }.flatMap { entry in
            let receipt = try entry.decodePayload(as: ForgetReceipt.self)
            guard receipt.forgottenExamples.contains(id) || receipt.forgottenExamples.contains(stored) else {
                return [ForgetReceipt.ErasedStage]()
            }
            return receipt.erasedStages.filter(\.deletedNow)
        }
        return (deletions, erased, erasedByItsForgets, erasedByAny)
    }

    /// The content hash the example's slice had while the example was a member: from the
    /// ledger's `retrain` entry that removed it; without one (a retrain killed before its
    /// entry), the hash of the current members plus the example.
    static func hashBeforeExclusion(of id: String, plan: Plan, run: URL) throws -> String {
        guard let location = plan.location(of: id) else { throw AuditError.unknownExample(id: id) }
        let ledgerURL = RunLayout(directory: run).ledgerURL
        if FileManager.default.fileExists(atPath: ledgerURL.path) {
            let ledger = try Ledger.openForReading(at: ledgerURL)
            defer { try? ledger.close() }
            for entry in try ledger.entries(forExampleID: id) where entry.kind == .retrain {
                let record = try entry.decodePayload(as: RetrainRecord.self)
                if let rebuilt = record.rebuiltSlices.first(where: { $0.slice == location.slice && $0.removedIDs.contains(id) }) {
                    return rebuilt.previousHash
                }
            }
        }
        return SliceHash.of(ids: plan.currentMembers(shard: location.shard, slice: location.slice) + [id])
    }

    /// A few lines for people.
    public var summary: String {
        var lines = ["\(id): shard \(shard), slice \(slice) (content hash \(sliceHash.prefix(16))…)"]
        let unwritten = stages.filter { !$0.exists && !$0.erased }.count
        // A file is called erased once a receipt lists it; while a deletion of the example has
        // no receipt yet (its forget stopped), an absent file may be one it erased.
        let pending = deletions.contains { $0.receiptLedgerSequence == nil }
        let absent = pending ? "absent (never written, or erased by the deletion still pending)" : "never written"
        lines.append("\(stages.count) stage checkpoint(s) whose prefix holds its slice: \(stages.filter(\.exists).count) "
                     + "on disk, \(stages.filter { !$0.exists && $0.erased }.count) erased, "
                     + (unwritten > 0 ? "\(unwritten) " + (pending ? absent : "never written (not trained, or withheld)") + ", " : "")
                     + "\(stages.filter(\.served).count) served now"
                     + (servedGeneration.map { " (served generation #\($0.sequenceNumber))" } ?? ""))
        for stage in stages {
            let state = stage.exists ? "on disk" : stage.erased ? "erased" : absent
            lines.append("  " + (stage.slices.isEmpty ? "the full model (every example)" : "stage \(stage.stage) prefix "
                                 + "\(stage.slices) sequences \(stage.sequences) key \(stage.key.prefix(12))")
                         + ": " + state + (stage.served ? ", SERVED" : ""))
        }
        if deletions.isEmpty {
            lines.append(tombstoned ? "Tombstoned, but the ledger has no request for it." : "Never requested to be forgotten.")
        }
        for deletion in deletions {
            let date = Date(timeIntervalSince1970: Double(deletion.timestampMilliseconds) / 1000)
            lines.append("Forgotten by request \(deletion.requestID) (ledger #\(deletion.requestLedgerSequence), "
                         + "\(date.ISO8601Format())\(deletion.group.map { ", group \($0)" } ?? ""))"
                         + (deletion.receiptLedgerSequence.map { "; receipt at ledger #\($0)" } ?? "; PENDING (no receipt yet)"))
        }
        return lines.joined(separator: "\n")
    }
}
