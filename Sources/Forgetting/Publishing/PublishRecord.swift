import Foundation
import Training

/// What a publish changed in `served.json` when no other entry records it: stored in the ledger
/// as a `publish` entry (keys: `entry=publish` and `shard` for every entry it changed) before
/// the file is written, so the composition's generation, which is also the served model's
/// version, moves whenever the models behind it change. Forgets that record requests and
/// retrains move it with their own entries.
public struct PublishRecord: Codable, Sendable, Equatable {
    public static let formatName = "lethe-publish"

    /// Who published.
    public enum Cause: String, Codable, Sendable {
        /// `lethe train` published trained shards.
        case train
        /// A composition written again from the plan's tombstones without a new request: recovery
        /// (after a crash, a restored plan.h5 or served.json) or a forget of requests already recorded.
        case recovery
    }

    public var format: String = formatName
    public var cause: Cause
    /// The entries that serve a model other than before (a newly trained shard, a longer prefix,
    /// a shorter one after recovery); empty when only the generation moves.
    public var shards: [ServedComposition.Entry]

    public init(shards: [ServedComposition.Entry], cause: Cause) { self.shards = shards; self.cause = cause }

    /// The ledger draft of this record.
    func draft(nowMilliseconds: Int64) throws -> LedgerDraft {
        let keys = [Self.publishKey] + shards.map { LedgerKey.shard($0.shard) }
        return try LedgerDraft(kind: .publish, timestampMilliseconds: nowMilliseconds, encoding: self, keys: keys)
    }

    /// The ledger key that marks publish entries.
    public static let publishKey = LedgerKey(field: .init(rawValue: "entry"), value: "publish")
}
