import Foundation
import Store

/// Which model each shard serves: a sequence and a prefix length, with the stage keys it uses
/// (DESIGN.md §1, "Serving"). Stored as `DIR/served.json`, replaced atomically.
///
/// A shard model is the base encoder plus, for S3T, the adapter blocks of stages 1..p of the
/// served sequence and the head of stage p; for SISA, stage p's file alone (it holds every
/// adapter). A shard with `prefixLength` 0 is dead and leaves the ensemble. Deletion (issue 6)
/// rewrites entries; training writes full-length entries (p = L, lowest sequence index).
public struct ServedComposition: Codable, Sendable, Equatable {
    public static let formatName = "lethe-served"
    public static let formatVersion = 1

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

    enum CodingKeys: String, CodingKey {
        case format, formatVersion = "format_version", strategy, shards
    }

    public init(strategy: TrainingStrategy, shards: [Entry]) {
        format = Self.formatName; formatVersion = Self.formatVersion
        self.strategy = strategy; self.shards = shards.sorted { $0.shard < $1.shard }
    }

    /// The entry of `shard`, if it has one.
    public func entry(shard: Int) -> Entry? { shards.first { $0.shard == shard } }

    /// The shards that serve a model.
    public var liveShards: [Entry] { shards.filter { !$0.isDead } }

    /// Reads and checks `url`.
    public static func load(from url: URL) throws -> ServedComposition {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainingError.fileInvalid(file: url.path, reason: "cannot read (\(error.localizedDescription))")
        }
        let composition: ServedComposition
        do { composition = try JSONDecoder().decode(ServedComposition.self, from: data) } catch {
            throw TrainingError.fileInvalid(file: url.path, reason: "not a served composition: \(error)")
        }
        guard composition.format == formatName, composition.formatVersion == formatVersion else {
            throw TrainingError.unsupportedFormat(file: url.path, expected: "\(formatName) v\(formatVersion)",
                                                  found: "\(composition.format) v\(composition.formatVersion)")
        }
        for entry in composition.shards where entry.stageKeys.count != entry.prefixLength {
            throw TrainingError.fileInvalid(file: url.path, reason: "shard \(entry.shard) lists "
                + "\(entry.stageKeys.count) stage keys for prefix length \(entry.prefixLength)")
        }
        return composition
    }

    /// The composition as pretty, key-sorted JSON.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Publishes `entries` into the run's served composition atomically: under an exclusive
    /// lock on `DIR/.served.lock` (processes training different shards of one run update it
    /// concurrently), reads the current file, replaces the given shards' entries, and renames
    /// a complete new file into place. Readers see the old or the new composition, never a mix.
    public static func publish(_ entries: [Entry], strategy: TrainingStrategy, layout: RunLayout) throws {
        try FileLock.withExclusiveLock(layout.directory.appendingPathComponent(".served.lock")) {
            var composition = ServedComposition(strategy: strategy, shards: [])
            if FileManager.default.fileExists(atPath: layout.servedURL.path) {
                composition = try load(from: layout.servedURL)
            }
            let replaced = Set(entries.map(\.shard))
            composition = ServedComposition(strategy: strategy,
                                            shards: composition.shards.filter { !replaced.contains($0.shard) } + entries)
            try AtomicFile.write(try composition.encoded(), to: layout.servedURL)
        }
    }
}
