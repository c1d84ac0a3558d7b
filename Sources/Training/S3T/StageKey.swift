import Crypto
import Foundation
import Support

/// The identity of an S3T stage: a SHA-256 over the ordered content hashes of its prefix.
///
/// A stage is (shard, prefix π1..πi of a sequence). Its parameters depend only on the slices
/// of the prefix, in order, so two sequences that begin with the same slices share the stage:
/// it is trained once and both use the file. Encoding (docs/FORMAT.md, "Stage checkpoints"):
/// the prefix's slice content hashes (64 lowercase hex digits each), in prefix order, joined
/// by one newline byte 0x0A, hashed with SHA-256, written as 64 lowercase hex digits. The
/// length of the prefix is implied (each hash has 64 digits), so the key also fixes the stage
/// index and therefore which block is trained.
public struct StageKey: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let hex: String

    public init(hex: String) { self.hex = hex }

    /// The key of the prefix whose slices have these content hashes, in prefix order.
    public init(prefixSliceHashes hashes: [String]) {
        precondition(!hashes.isEmpty, "a stage has at least one slice")
        hex = Hex.encode(contiguous: SHA256.hash(data: Data(hashes.joined(separator: "\n").utf8)))
    }

    /// The first 16 hex digits: enough to tell stages apart in file names and logs.
    public var short: String { String(hex.prefix(16)) }

    public var description: String { hex }

    public static func < (a: StageKey, b: StageKey) -> Bool { a.hex < b.hex }

    public init(from decoder: Decoder) throws {
        hex = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }

    /// The training seed of this stage in shard `shard` of a run seeded with `runSeed`.
    ///
    /// Derived from (run seed, shard, key) only — never from the sequence or the order in which
    /// stages are trained — so re-training the same prefix anywhere (another sequence, a retrain
    /// after deletions, a replay by an auditor) draws the same adapter initialisation, the same
    /// shuffles and the same dropout masks. Encoding: SHA-256 over the ASCII tag
    /// "lethe-stage-seed", the run seed and the shard as UInt64 little-endian, and the key's hex
    /// digits; the seed is the first 8 digest bytes read little-endian.
    public func seed(runSeed: UInt64, shard: Int) -> UInt64 {
        var bytes = Array("lethe-stage-seed".utf8)
        withUnsafeBytes(of: runSeed.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(shard).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(hex.utf8))
        let digest = Array(SHA256.hash(data: bytes))
        var seed: UInt64 = 0
        for i in (0..<8).reversed() { seed = seed << 8 | UInt64(digest[i]) }
        return seed
    }
}
