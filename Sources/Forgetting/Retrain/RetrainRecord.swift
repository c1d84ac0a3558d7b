import Foundation

/// What one `lethe retrain` did to one shard: stored in the ledger as a
/// `retrain` entry (keys: `entry=retrain`, `shard`, and every example id it removed from a
/// slice) and printed by `lethe retrain --json`.
public struct RetrainRecord: Codable, Sendable, Equatable {
    public static let formatName = "lethe-retrain"

    /// A slice rebuilt without deleted examples.
    public struct RebuiltSlice: Codable, Sendable, Equatable {
        public var slice: Int
        /// The content hash before the rebuild: the key of every stage that saw the removed ids.
        public var previousHash: String
        public var newHash: String
        /// The ids removed from the slice's members by this rebuild, sorted.
        public var removedIDs: [String]
        public var memberCount: Int
        enum CodingKeys: String, CodingKey {
            case slice, previousHash = "previous_hash", newHash = "new_hash", removedIDs = "removed_ids"
            case memberCount = "member_count"
        }
    }

    public var format: String = formatName
    public var shard: Int
    /// 1 for the first pass; more when forgets arrived during retraining and the shard was
    /// rebuilt again.
    public var round: Int
    public var rebuiltSlices: [RebuiltSlice]
    /// Keys of the stages trained by this pass (stages whose prefix was unaffected were reused).
    public var trainedStages: [String]
    public var reusedStageCount: Int
    /// What the shard serves after the pass; shorter than L only when a forget arrived during it.
    public var served: ForgetReceipt.ServedShard
    /// Per sequence of the shard, the surviving prefix length after the pass.
    public var prefixLengths: [Int]
    /// True when every sequence is back to full length (no forget arrived during the pass).
    public var fullLength: Bool
    /// Stage files removed from the shard: ones that saw a deleted example or that no sequence
    /// of the new plan uses. Paths relative to the run directory.
    public var erasedFiles: [String]

    enum CodingKeys: String, CodingKey {
        case format, shard, round, rebuiltSlices = "rebuilt_slices", trainedStages = "trained_stages"
        case reusedStageCount = "reused_stage_count", served, prefixLengths = "prefix_lengths"
        case fullLength = "full_length"
        case erasedFiles = "erased_files"
    }

    /// Key-sorted JSON on one line.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// One line for people.
    public var summary: String {
        let rebuilt = rebuiltSlices.map { "slice \($0.slice) (−\($0.removedIDs.count))" }.joined(separator: ", ")
        let servedText = served.sequence.map { "sequence \($0), prefix \(served.prefixLength)" } ?? "nothing (dead)"
        return "shard \(shard) round \(round): rebuilt \(rebuilt.isEmpty ? "no slice" : rebuilt); "
            + "\(trainedStages.count) stage(s) trained, \(reusedStageCount) reused; serves \(servedText); "
            + "\(erasedFiles.count) file(s) erased"
    }
}
