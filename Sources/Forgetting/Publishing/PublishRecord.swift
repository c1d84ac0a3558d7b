import Foundation
import Training

/// What a `lethe train` publish changed in `served.json`: stored in the ledger as a `publish`
/// entry (keys: `entry=publish` and `shard` for every entry it changed) before the file is
/// written, so the composition's generation, which is also the served model's version, moves
/// whenever the models behind it change. Forgets and retrains move it with their own entries.
public struct PublishRecord: Codable, Sendable, Equatable {
    public static let formatName = "lethe-publish"

    public var format: String = formatName
    /// The entries that serve a model other than before (a newly trained shard, a longer prefix).
    public var shards: [ServedComposition.Entry]

    public init(shards: [ServedComposition.Entry]) { self.shards = shards }

    /// The ledger draft of this record.
    func draft(nowMilliseconds: Int64) throws -> LedgerDraft {
        let keys = [Self.publishKey] + shards.map { LedgerKey(field: .init(rawValue: "shard"), value: "\($0.shard)") }
        return try LedgerDraft(kind: .publish, timestampMilliseconds: nowMilliseconds, encoding: self, keys: keys)
    }

    /// The ledger key that marks publish entries.
    public static let publishKey = LedgerKey(field: .init(rawValue: "entry"), value: "publish")
}
