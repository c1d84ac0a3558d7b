import Foundation
import Store
import Training

/// The run's served composition, `DIR/served.json` (format `lethe-served` v1, written by
/// `lethe train`; DESIGN.md §1 "Serving"): per shard the served sequence, its prefix length
/// and the keys of stages 1…p. A shard with prefix length 0 is dead.
///
/// The deletion engine reads and rewrites the file in the same format as the trainer
/// (unknown keys are ignored by both), adding `ledger_head`: the ledger entry whose effects the
/// composition includes. Publishing takes the trainer's lock `DIR/.served.lock` and renames a
/// complete, fsynced file into place, so readers see the old or the new composition.
public struct ServedCompositionFile: Codable, Sendable, Equatable {
    public static let fileName = "served.json"
    public static let formatName = "lethe-served"
    public static let formatVersion = 1

    public struct Entry: Codable, Sendable, Equatable {
        public var shard: Int
        /// 0-based sequence index; nil when the shard is dead.
        public var sequence: Int?
        public var prefixLength: Int
        public var stageKeys: [String]

        public init(shard: Int, sequence: Int?, prefixLength: Int, stageKeys: [String]) {
            self.shard = shard; self.sequence = sequence
            self.prefixLength = prefixLength; self.stageKeys = stageKeys
        }
        public var isDead: Bool { prefixLength == 0 }
        enum CodingKeys: String, CodingKey {
            case shard, sequence, prefixLength = "prefix_length", stageKeys = "stage_keys"
        }
    }

    public var format: String
    public var formatVersion: Int
    /// "s3t", "sisa" or "full", as the trainer wrote it.
    public var strategy: String
    public var shards: [Entry]
    /// Sequence number of the last ledger entry reflected here (nil when written by training).
    public var ledgerHead: Int64?

    enum CodingKeys: String, CodingKey {
        case format, formatVersion = "format_version", strategy, shards, ledgerHead = "ledger_head"
    }

    public init(strategy: String, shards: [Entry], ledgerHead: Int64?) {
        format = Self.formatName; formatVersion = Self.formatVersion
        self.strategy = strategy; self.shards = shards.sorted { $0.shard < $1.shard }
        self.ledgerHead = ledgerHead
    }

    public static func url(inRun run: URL) -> URL { run.appendingPathComponent(fileName) }

    /// The entries of shards that serve a model.
    public var liveEntries: [Entry] { shards.filter { !$0.isDead } }

    /// The entry of `shard`, if it has one.
    public func entry(shard: Int) -> Entry? { shards.first { $0.shard == shard } }

    /// Reads and checks the composition of a run.
    public static func load(from url: URL) throws -> ServedCompositionFile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ForgettingError.runFile(file: url.path, reason: "cannot read it (\(error.localizedDescription))")
        }
        let value: ServedCompositionFile
        do { value = try JSONDecoder().decode(ServedCompositionFile.self, from: data) } catch {
            throw ForgettingError.runFile(file: url.path, reason: "not a served composition (\(error))")
        }
        guard value.format == formatName, value.formatVersion == formatVersion else {
            throw ForgettingError.runFile(file: url.path, reason: "format \(value.format) v\(value.formatVersion), "
                                          + "expected \(formatName) v\(formatVersion)")
        }
        for entry in value.shards where entry.stageKeys.count != entry.prefixLength {
            throw ForgettingError.runFile(file: url.path, reason: "shard \(entry.shard) lists "
                                          + "\(entry.stageKeys.count) stage keys for prefix length \(entry.prefixLength)")
        }
        return value
    }

    /// Pretty, key-sorted JSON.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Replaces the run's composition atomically under the trainer's lock.
    public func publish(inRun run: URL) throws {
        try FileLock.withExclusiveLock(Self.lockURL(inRun: run)) {
            try AtomicFile.write(try encoded(), to: Self.url(inRun: run))
        }
    }

    /// Replaces the entries of the given shards in the run's current composition (read and
    /// rewritten under the trainer's lock, so concurrent publishers of other shards are kept).
    public static func publish(replacing entries: [Entry], ledgerHead: Int64?, inRun run: URL) throws {
        try FileLock.withExclusiveLock(lockURL(inRun: run)) {
            let current = try load(from: url(inRun: run))
            let replaced = Set(entries.map(\.shard))
            let next = ServedCompositionFile(strategy: current.strategy,
                                             shards: current.shards.filter { !replaced.contains($0.shard) } + entries,
                                             ledgerHead: ledgerHead ?? current.ledgerHead)
            try AtomicFile.write(try next.encoded(), to: url(inRun: run))
        }
    }

    static func lockURL(inRun run: URL) -> URL { run.appendingPathComponent(".served.lock") }
}

/// Stage identity and file names, as `lethe train` writes them (docs/FORMAT.md): thin
/// wrappers over the trainer's `StageKey` and `RunLayout` in the string form the engine and
/// receipts use. Stage i of shard K with key k lives at `DIR/stages/shard-K/stage-i-k.h5`.
public enum StageFiles {
    /// The key of a prefix whose slices have these content hashes, in order (`StageKey`).
    public static func key(prefixSliceHashes hashes: [String]) -> String {
        StageKey(prefixSliceHashes: hashes).hex
    }

    public static func shardDirectory(run: URL, shard: Int) -> URL {
        RunLayout(directory: run).shardDirectory(shard)
    }

    public static func url(run: URL, shard: Int, stage: Int, key: String) -> URL {
        RunLayout(directory: run).stageURL(shard: shard, stage: stage, key: StageKey(hex: key))
    }

    /// Flushes a directory's entries (renames, deletions) to disk.
    static func syncDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            throw ForgettingError.runFile(file: url.path, reason: "cannot open the directory to sync it (errno \(errno))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw ForgettingError.runFile(file: url.path, reason: "fsync of the directory failed (errno \(errno))")
        }
    }
}
