import CommandSupport
import Forgetting
import Foundation
import Models
import Planning
import Training

/// served.json's identity on disk. Every publish renames a new file into place, so another
/// inode, size or modification time means another composition may be served.
public struct FileIdentity: Equatable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let seconds: Int
    let nanoseconds: Int

    public static func of(_ url: URL) -> FileIdentity? { of(path: url.path) }

    public static func of(path: String) -> FileIdentity? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return FileIdentity(device: UInt64(s.st_dev), inode: UInt64(s.st_ino), size: Int64(s.st_size),
                            seconds: s.st_mtim.tv_sec, nanoseconds: s.st_mtim.tv_nsec)
    }
}

/// One composition as the server answers from it, never changed after loading: the live
/// shards' models, the composition they come from, and its generation — the ledger head the
/// composition was published at, so every deletion accepted up to that entry is in it.
public final class ServedSnapshot: @unchecked Sendable {
    public let ensemble: RunEnsemble
    public let identity: FileIdentity?
    /// Counts the snapshots this server has swapped in (1 = the first).
    public let number: Int
    public let loadSeconds: Double

    init(ensemble: RunEnsemble, identity: FileIdentity?, number: Int, loadSeconds: Double) {
        self.ensemble = ensemble; self.identity = identity; self.number = number; self.loadSeconds = loadSeconds
    }

    public var composition: ServedComposition { ensemble.composition }
    public var generation: LedgerAnchor { ensemble.composition.ledgerHead }
    public var labels: [String] { ensemble.labels.names }

    /// Whether `other` serves the same models: the same live shards with the same stage keys.
    /// Answers computed on one are then the answers of the other, bit for bit.
    func servesTheSameModels(as other: ServedSnapshot) -> Bool {
        self === other || composition.strategy == other.composition.strategy
            && composition.liveShards.elementsEqual(other.composition.liveShards) {
                $0.shard == $1.shard && $0.stageKeys == $1.stageKeys
            }
    }

    /// The generation as JSON: the ledger head's sequence number and hash.
    public var generationJSON: [String: Any] {
        ["sequence": generation.sequenceNumber, "hash": generation.hash, "snapshot": number]
    }
}

/// Loads the run's served composition the way `lethe predict` does: under the run lock, after
/// recovery, so the stage files it reads are the ones the composition names.
///
/// Stage files already read are kept (by path, checked against the file's identity on disk), so
/// a composition that reuses stages — every composition after a deletion does — loads without
/// reading them again; stages no composition names any more are dropped after each load.
struct SnapshotLoader: Sendable {
    let layout: RunLayout
    let labels: LabelVocabulary
    let encoder: MiniLMEncoder
    let stages = StageCache()

    func load(number: Int) throws -> ServedSnapshot {
        let start = Date()
        return try RunAccess.guarded(layout.directory).withRecoveredRun { _ in
            guard FileManager.default.fileExists(atPath: layout.servedURL.path) else {
                throw RunStateError.nothingServed(run: layout.directory.path)
            }
            let identity = FileIdentity.of(layout.servedURL)
            let composition = try ServedComposition.load(from: layout.servedURL)
            // A composition whose every shard is dead is loaded too: the server then refuses
            // inference (readiness says why) but still answers status, audit and forget.
            let ensemble = try RunEnsemble(layout: layout, composition: composition, labels: labels, encoder: encoder,
                                           loadStage: stages.load)
            stages.keep(only: Set(composition.liveShards.flatMap { entry in
                entry.stageKeys.enumerated().map { layout.stageURL(shard: entry.shard, stage: $0.offset + 1, key: $0.element).path }
            }))
            return ServedSnapshot(ensemble: ensemble, identity: identity, number: number,
                                  loadSeconds: Date().timeIntervalSince(start))
        }
    }
}

/// Stage checkpoints read from disk, by path, valid while the file keeps its identity (a stage
/// file is never rewritten in place: a retrain renames a new file in).
final class StageCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: (identity: FileIdentity?, checkpoint: StageCheckpoint)] = [:]

    func load(_ url: URL) throws -> StageCheckpoint {
        let identity = FileIdentity.of(url)
        if let hit = lock.withLock({ entries[url.path] }), hit.identity == identity, identity != nil {
            return hit.checkpoint
        }
        let checkpoint = try StageCheckpoint.load(from: url)
        lock.withLock { entries[url.path] = (identity, checkpoint) }
        return checkpoint
    }

    func keep(only paths: Set<String>) {
        lock.withLock { entries = entries.filter { paths.contains($0.key) } }
    }
}
