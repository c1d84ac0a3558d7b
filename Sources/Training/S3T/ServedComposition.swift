import Crypto
import Foundation
import Support
import Store

/// The ledger position a served composition reflects: its generation. Every deletion request
/// recorded at or before `sequenceNumber` is honoured by the composition. Sequence 0 (empty
/// hash) means the run's ledger had no entry when the composition was published.
public struct LedgerAnchor: Codable, Sendable, Equatable, Comparable, CustomStringConvertible {
    public var sequenceNumber: Int64
    /// The hash of ledger entry `sequenceNumber` (64 hex digits; empty for sequence 0).
    public var hash: String

    public init(sequenceNumber: Int64, hash: String) {
        self.sequenceNumber = sequenceNumber; self.hash = hash
    }

    public static let empty = LedgerAnchor(sequenceNumber: 0, hash: "")

    public static func < (a: LedgerAnchor, b: LedgerAnchor) -> Bool { a.sequenceNumber < b.sequenceNumber }

    public var description: String { sequenceNumber == 0 ? "#0 (empty ledger)" : "#\(sequenceNumber) \(hash)" }

    enum CodingKeys: String, CodingKey { case sequenceNumber = "sequence", hash }
}

/// Which model each shard serves: a sequence and a prefix length, with the stage keys it uses
/// (docs/FORGETTING.md, "Serving"), and the ledger head it reflects. Stored as `DIR/served.json`,
/// replaced atomically; there is one such type and every reader and writer of the file uses it.
///
/// A shard model is the base encoder plus, for S3T, the adapter blocks of stages 1..p of the
/// served sequence and the head of stage p; for SISA, stage p's file alone (it holds every
/// adapter). A shard with `prefixLength` 0 is dead and leaves the ensemble.
///
/// The file carries `content_sha256`, a SHA-256 over its compact canonical JSON without that
/// field; `load` checks it before trusting anything in the file. Compositions are written only
/// by the publish steps of the Forgetting module, under the run lock (`RunLayout.lockURL`).
public struct ServedComposition: Codable, Sendable, Equatable {
    public static let formatName = "lethe-served"
    public static let formatVersion = 2

    public struct Entry: Codable, Sendable, Equatable {
        public var shard: Int
        /// 0-based sequence index within the shard; nil when the shard is dead.
        public var sequence: Int?
        public var prefixLength: Int
        /// Keys of stages 1..prefixLength of the served sequence.
        public var stageKeys: [StageKey]

        public init(shard: Int, sequence: Int?, prefixLength: Int, stageKeys: [StageKey]) {
            self.shard = shard; self.sequence = sequence
            self.prefixLength = prefixLength; self.stageKeys = stageKeys
        }

        /// The entry of a shard with no surviving sequence.
        public static func dead(shard: Int) -> Entry { Entry(shard: shard, sequence: nil, prefixLength: 0, stageKeys: []) }

        public var isDead: Bool { prefixLength == 0 }

        enum CodingKeys: String, CodingKey {
            case shard, sequence, prefixLength = "prefix_length", stageKeys = "stage_keys"
        }
    }

    public var format: String
    public var formatVersion: Int
    public var strategy: TrainingStrategy
    /// Entries sorted by shard.
    public var shards: [Entry]
    /// The ledger head this composition reflects (its generation).
    public var ledgerHead: LedgerAnchor
    /// SHA-256 of the canonical encoding without this field; set by `encoded()`.
    var contentSHA256: String?

    enum CodingKeys: String, CodingKey {
        case format, formatVersion = "format_version", strategy, shards, ledgerHead = "ledger_head"
        case contentSHA256 = "content_sha256"
    }

    public init(strategy: TrainingStrategy, shards: [Entry], ledgerHead: LedgerAnchor) {
        format = Self.formatName; formatVersion = Self.formatVersion
        self.strategy = strategy; self.shards = shards.sorted { $0.shard < $1.shard }
        self.ledgerHead = ledgerHead
    }

    public static func == (a: ServedComposition, b: ServedComposition) -> Bool {
        a.format == b.format && a.formatVersion == b.formatVersion && a.strategy == b.strategy
            && a.shards == b.shards && a.ledgerHead == b.ledgerHead
    }

    /// The entry of `shard`, if it has one.
    public func entry(shard: Int) -> Entry? { shards.first { $0.shard == shard } }

    /// The shards that serve a model.
    public var liveShards: [Entry] { shards.filter { !$0.isDead } }

    /// This composition with `entries` replacing those of the same shards.
    public func replacing(_ entries: [Entry], ledgerHead: LedgerAnchor) -> ServedComposition {
        let replaced = Set(entries.map(\.shard))
        return ServedComposition(strategy: strategy, shards: shards.filter { !replaced.contains($0.shard) } + entries,
                                 ledgerHead: ledgerHead)
    }

    /// Reads `url`, checks its content hash, format and shape; nil-free: a missing file is an error.
    public static func load(from url: URL) throws -> ServedComposition {
        switch try read(from: url) {
        case .loaded(let composition): return composition
        case .absent:
            throw TrainingError.fileInvalid(file: url.path, reason: "it is missing; a run serves nothing until "
                                            + "`lethe train` publishes a composition")
        case .damaged(let reason):
            throw damaged(url, reason)
        }
    }

    /// The error a damaged served.json at `url` is refused with: why, and what to do.
    public static func damaged(_ url: URL, _ reason: String) -> TrainingError {
        .fileInvalid(file: url.path, reason: "\(reason). \(republishAdvice(url))")
    }

    /// What a run's served.json holds, for the writers that must go on when it is damaged.
    public enum Reading: Sendable {
        /// No file (the run was never published).
        case absent
        case loaded(ServedComposition)
        /// The file exists and cannot be trusted: `reason` says why (not a regular file, not
        /// readable, not JSON, a content hash that does not match, an impossible shape).
        case damaged(reason: String)
    }

    /// Reads `url` as `load` does, returning damage instead of throwing it. A composition of
    /// another format version is still thrown (`unsupportedFormat`): it is not damage.
    /// Why this composition cannot be the run's whose plan has `shardCount` shards (it serves
    /// a shard the plan does not plan: the files of two runs mixed), or nil.
    public func foreignShard(planShardCount shardCount: Int) -> String? {
        guard let stranger = shards.first(where: { !(0..<shardCount).contains($0.shard) }) else { return nil }
        return "it serves shard \(stranger.shard), but plan.h5 plans shards 0…\(shardCount - 1): the two files are not "
            + "of the same run (one was replaced, or put back from another run)"
    }

    /// Throws unless train.json's strategy is this composition's: the shard models are read as
    /// the strategy says (a sisa stage holds every block, an s3t stage one), so a mismatch would
    /// answer with models put together another way than they were trained.
    public func requireStrategy(of settings: TrainingSettings, layout: RunLayout) throws {
        guard strategy != settings.strategy else { return }
        throw TrainingError.fileInvalid(file: layout.servedURL.path, reason: "serves a \(strategy.rawValue) composition, "
            + "but train.json trains \(settings.strategy.rawValue): one of the two was edited. `lethe verify` says which "
            + "to put back; the next lethe forget replaces a served.json its own stages contradict")
    }

    public static func read(from url: URL) throws -> Reading {
        guard FileManager.default.fileExists(atPath: url.path) else { return .absent }
        do { try RegularFile.check(url.path) } catch StoreError.notRegularFile(_, let kind) {
            return .damaged(reason: "it is \(kind), not a file Lethe wrote")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            return .damaged(reason: "cannot read it (\(error.localizedDescription))")
        }
        var composition: ServedComposition
        do { composition = try JSONDecoder().decode(ServedComposition.self, from: data) } catch {
            if let format = try? JSONDecoder().decode(FormatProbe.self, from: data), format.formatVersion != formatVersion {
                throw TrainingError.unsupportedFormat(file: url.path, expected: "\(formatName) v\(formatVersion)",
                                                      found: "\(format.format) v\(format.formatVersion)")
            }
            return .damaged(reason: "not a served composition (\(DecodingError.fieldDescription(error, data: data))); it was damaged "
                            + "or edited")
        }
        guard composition.format == formatName, composition.formatVersion == formatVersion else {
            throw TrainingError.unsupportedFormat(file: url.path, expected: "\(formatName) v\(formatVersion)",
                                                  found: "\(composition.format) v\(composition.formatVersion)")
        }
        let recorded = composition.contentSHA256
        composition.contentSHA256 = nil
        guard let recorded, recorded == (try composition.contentHash()) else {
            return .damaged(reason: "its content hash does not match: it was damaged or edited")
        }
        for entry in composition.shards where entry.stageKeys.count != entry.prefixLength || entry.prefixLength < 0 {
            return .damaged(reason: "shard \(entry.shard) lists \(entry.stageKeys.count) stage keys for prefix length "
                            + "\(entry.prefixLength)")
        }
        return .loaded(composition)
    }

    /// What to do about a damaged served.json: it is derived from the plan, the stages and the
    /// ledger, so it is set aside and published anew (verify first names anything else changed).
    static func republishAdvice(_ url: URL) -> String {
        "Run `lethe verify --run \(url.deletingLastPathComponent().path)` to see what else changed, then "
            + setAsideAdvice(url)
    }

    /// How a damaged served.json is replaced (verify, which has looked already, says only this).
    public static func setAsideAdvice(_ url: URL) -> String {
        "move the file aside (`mv \(url.path) \(url.path).damaged`) and run `lethe train --run "
            + "\(url.deletingLastPathComponent().path)`, which publishes a new one from the plan, its tombstones and the "
            + "trained stages (a `lethe forget` publishes one itself)"
    }

    /// The composition as pretty, key-sorted JSON with its content hash.
    public func encoded() throws -> Data {
        var sealed = self
        sealed.contentSHA256 = try contentHashWithoutSeal()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(sealed)
    }

    /// Writes the composition atomically (`AtomicFile`: readers see the old or the new file).
    /// The caller holds the run lock and has derived the entries from the plan's current
    /// tombstones and `ledgerHead` from the ledger under that lock.
    public func save(to layout: RunLayout) throws {
        try AtomicFile.write(try encoded(), to: layout.servedURL)
    }

    private func contentHashWithoutSeal() throws -> String {
        var unsealed = self
        unsealed.contentSHA256 = nil
        return try unsealed.contentHash()
    }

    /// SHA-256 of the compact, key-sorted encoding (of a value whose seal is nil).
    private func contentHash() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Hex.encode(contiguous: SHA256.hash(data: try encoder.encode(self)))
    }

    private struct FormatProbe: Decodable {
        var format: String
        var formatVersion: Int
        enum CodingKeys: String, CodingKey { case format, formatVersion = "format_version" }
    }
}
