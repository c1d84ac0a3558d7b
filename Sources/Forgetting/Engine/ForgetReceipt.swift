import Foundation
import Planning
import Training

/// What one forget operation did: stored in the ledger as a `receipt` entry
/// and printed by `lethe forget --json`.
public struct ForgetReceipt: Codable, Sendable, Equatable {
    public static let formatName = "lethe-receipt"

    /// One request and what became of it.
    public struct RequestOutcome: Codable, Sendable, Equatable {
        public enum Status: String, Codable, Sendable {
            /// At least one of its examples was deleted by this operation.
            case forgotten
            /// Every example it names was already forgotten: nothing changed.
            case alreadyForgotten = "already_forgotten"
            /// The plan has no such example, or no example has this group.
            case unknown
            /// Its request_id and target are already in the ledger (a log run again, a client's
            /// retry): not recorded again; `ledgerSequence` is the first one's.
            case alreadyRecorded = "already_recorded"
        }
        public var requestID: String
        /// Ledger position of the request entry.
        public var ledgerSequence: Int64
        public var id: String?
        public var group: String?
        public var status: Status
        enum CodingKeys: String, CodingKey {
            case requestID = "request_id", ledgerSequence = "ledger_sequence", id, group, status
        }
    }

    /// A stage checkpoint that saw deleted data and is served by no sequence any more.
    public struct ErasedStage: Codable, Sendable, Equatable {
        public var shard: Int
        public var stage: Int
        /// 0-based slices of the stage's prefix.
        public var slices: [Int]
        public var key: String
        /// Path relative to the run directory.
        public var file: String
        /// False when the file was already gone (erased by an earlier, interrupted run).
        public var deletedNow: Bool
        enum CodingKeys: String, CodingKey { case shard, stage, slices, key, file, deletedNow = "deleted_now" }
    }

    public struct ServedShard: Codable, Sendable, Equatable {
        public var shard: Int
        /// nil when the shard is dead.
        public var sequence: Int?
        public var prefixLength: Int
        enum CodingKeys: String, CodingKey { case shard, sequence, prefixLength = "prefix_length" }
    }

    public var format: String = formatName
    public var requests: [RequestOutcome]
    /// Examples tombstoned by this operation, sorted.
    public var forgottenExamples: [String]
    /// Ids named by requests that the plan does not know.
    public var unknownIDs: [String]
    public var unknownGroups: [String]
    /// Requests recorded by an earlier, interrupted `lethe forget` and finished by this one.
    public var recoveredRequestCount: Int
    /// (shard, slice) pairs holding an example deleted by this operation.
    public var affectedSlices: [[Int]]
    public var truncatedSequences: [SequenceTruncation]
    public var erasedStages: [ErasedStage]
    public var served: [ServedShard]
    public var deadShards: [Int]
    /// Expected further uniform deletions before every shard is dead (DeletionLogic).
    public var deletionRateRemaining: Double
    /// False when the run has no served composition yet (planned, not trained).
    public var compositionPublished: Bool
    /// The ledger head after the requests were recorded: the last entry this receipt covers.
    public var ledgerSequence: Int64
    public var ledgerHash: String
    /// How many tombstones the plan holds after this operation. They are never removed, so a
    /// plan with fewer was replaced by an older copy; recovery then applies every request again.
    /// Absent from receipts written before it was recorded.
    public var tombstoneCount: Int? = nil
    /// SHA-256 (hex) of those tombstones: their ids sorted by UTF-8 bytes, each followed by a
    /// line feed (`Forgetter.tombstoneDigest`). A plan with as many but other ids was changed
    /// outside Lethe (a damaged tombstone log); recovery then applies every request again.
    /// Absent from receipts written before it was recorded.
    public var tombstoneDigest: String? = nil
    /// Set when served.json was damaged: this forget published a composition derived from the
    /// plan and the stage files instead, and kept the damaged file beside it.
    public var replacedComposition: ReplacedComposition? = nil

    public struct ReplacedComposition: Codable, Sendable, Equatable {
        /// Why served.json could not be read.
        public var reason: String
        /// The name the damaged file is kept under, in the run directory.
        public var keptAs: String
        enum CodingKeys: String, CodingKey { case reason, keptAs = "kept_as" }
    }

    enum CodingKeys: String, CodingKey {
        case format, requests, forgottenExamples = "forgotten_examples", unknownIDs = "unknown_ids"
        case unknownGroups = "unknown_groups", recoveredRequestCount = "recovered_request_count"
        case affectedSlices = "affected_slices", truncatedSequences = "truncated_sequences"
        case erasedStages = "erased_stages", served, deadShards = "dead_shards"
        case deletionRateRemaining = "deletion_rate_remaining", compositionPublished = "composition_published"
        case ledgerSequence = "ledger_sequence", ledgerHash = "ledger_hash", tombstoneCount = "tombstone_count"
        case tombstoneDigest = "tombstone_sha256"
        case replacedComposition = "replaced_composition"
    }

    /// Key-sorted JSON. The compact form is the ledger payload: byte for byte what
    /// `JSONEncoder` (sorted keys, unescaped slashes) writes, with the request list — 100,000
    /// entries for a large log — written directly when none of its strings needs escaping.
    public func json(pretty: Bool = false) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        guard !pretty, requests.count > 1, let list = Self.plainJSON(requests) else {
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        }
        var rest = self
        rest.requests = []
        let text = try encoder.encode(rest)
        // Keys are sorted and strings escape every quote, so this is the key and only it.
        guard let range = text.range(of: Data("\"requests\":[]".utf8)) else {
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        }
        var bytes = [UInt8](text[..<range.lowerBound])
        bytes.reserveCapacity(text.count + list.count)
        bytes += "\"requests\":".utf8
        bytes += list
        bytes += text[range.upperBound...]
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The request list as `JSONEncoder` writes it (sorted keys), or nil when a string in it
    /// would need an escape.
    static func plainJSON(_ requests: [RequestOutcome]) -> [UInt8]? {
        func plain(_ text: String) -> Bool {
            text.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }
        }
        var out = JSONBytes(capacity: requests.count * 96)
        out.raw("[")
        for (index, request) in requests.enumerated() {
            guard plain(request.requestID), request.id.map(plain) ?? true, request.group.map(plain) ?? true else {
                return nil
            }
            if index > 0 { out.raw(",") }
            out.raw("{")
            if let group = request.group { out.raw("\"group\":"); out.string(group); out.raw(",") }
            if let id = request.id { out.raw("\"id\":"); out.string(id); out.raw(",") }
            out.raw("\"ledger_sequence\":"); out.raw(String(request.ledgerSequence))
            out.raw(",\"request_id\":"); out.string(request.requestID)
            out.raw(",\"status\":"); out.string(request.status.rawValue); out.raw("}")
        }
        out.raw("]")
        return out.bytes
    }

    /// A few lines for people.
    public var summary: String {
        let counts = Dictionary(grouping: requests, by: \.status).mapValues(\.count)
        var lines = ["\(requests.count) request(s): \(counts[.forgotten] ?? 0) forgotten, "
                     + "\(counts[.alreadyForgotten] ?? 0) already forgotten, \(counts[.unknown] ?? 0) unknown"
                     + ((counts[.alreadyRecorded] ?? 0) > 0 ? ", \(counts[.alreadyRecorded] ?? 0) already recorded" : "")
                     + (recoveredRequestCount > 0 ? " (\(recoveredRequestCount) recovered from an interrupted run)" : "")]
        lines.append("\(forgottenExamples.count) example(s) deleted; \(affectedSlices.count) slice(s) hit; "
                     + "\(truncatedSequences.count) sequence(s) truncated; \(erasedStages.filter(\.deletedNow).count) stage file(s) erased")
        let live = served.filter { $0.sequence != nil }
            .map { "shard \($0.shard): sequence \($0.sequence ?? 0), prefix \($0.prefixLength)" }
        if compositionPublished {
            lines.append("Served: " + (live.isEmpty ? "nothing" : live.joined(separator: ", "))
                         + (deadShards.isEmpty ? "" : "; dead shards: \(deadShards.map(String.init).joined(separator: ", "))"))
        } else {
            lines.append("Served: nothing published (no served.json: the run is not trained yet, or the file was "
                         + "removed; `lethe train` publishes it); it will serve "
                         + (live.isEmpty ? "nothing" : live.joined(separator: ", ")))
        }
        if let replaced = replacedComposition {
            lines.append("served.json was damaged (\(replaced.reason)): kept as \(replaced.keptAs), and a new one was "
                         + "published from the plan, its tombstones and the stage files")
        }
        lines.append(String(format: "δ remaining: %.1f further random deletions before a full retrain", deletionRateRemaining))
        lines.append("Ledger head #\(ledgerSequence) \(ledgerHash)")
        return lines.joined(separator: "\n")
    }

    /// The receipt of a `--resume` with nothing pending: no change, nothing recorded; it
    /// reports the current serving state.
    static func nothingPending(plan: Plan, run: URL, head: LedgerHead) throws -> ForgetReceipt {
        let compositionURL = RunLayout(directory: run).servedURL
        let published = FileManager.default.fileExists(atPath: compositionURL.path)
        let served = published ? try ServedComposition.load(from: compositionURL).shards.map {
            ServedShard(shard: $0.shard, sequence: $0.sequence, prefixLength: $0.prefixLength)
        } : []
        let sequences = (0..<plan.shardCount).map(plan.sequences(of:))
        let hits = plan.hitSlices
        let lengths = DeletionLogic.apply(sequences: sequences, currentLengths: sequences.map { $0.map(\.count) },
                                          hits: hits).map(\.prefixLengths)
        return ForgetReceipt(requests: [], forgottenExamples: [], unknownIDs: [], unknownGroups: [],
                             recoveredRequestCount: 0, affectedSlices: [], truncatedSequences: [], erasedStages: [],
                             served: served, deadShards: served.filter { $0.sequence == nil }.map(\.shard),
                             deletionRateRemaining: DeletionLogic.remainingDeletionRate(
                                sequences: sequences, prefixLengths: lengths, sliceCount: plan.sliceCount),
                             compositionPublished: published, ledgerSequence: head.sequenceNumber,
                             ledgerHash: head.hash, tombstoneCount: plan.tombstones.count,
                             tombstoneDigest: Forgetter.tombstoneDigest(plan.tombstones))
    }
}
