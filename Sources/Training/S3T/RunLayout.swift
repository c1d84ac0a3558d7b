import Foundation
import Planning
import Support
import Store

/// Where a run keeps its files (docs/FORMAT.md), and the lock that orders their changes.
///
///     DIR/plan.h5, DIR/plan.tombstones              the plan and its tombstone log (Planning)
///     DIR/train.json                                the training settings of the run
///     DIR/stages/shard-K/stage-I-<key>.h5           one file per distinct stage
///     DIR/served.json                               the served composition
///     DIR/ledger.sqlite                             the deletion ledger (Forgetting)
///     DIR/.run.lock                                 the run lock
///     DIR/.retrain-shard-K.lock                     one retrain per shard
///     DIR/.train-shard-K.lock                       one trainer per shard
///
/// The run lock (`flock`) is held by every step that changes what a deletion binds: a forget
/// (ledger, tombstones, composition, erasure), the commit of a stage file, and every publish of
/// the served composition. Holding it, a process sees every accepted deletion.
public struct RunLayout: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public var planURL: URL { Plan.url(inRun: directory) }
    public var settingsURL: URL { directory.appendingPathComponent("train.json") }
    public var servedURL: URL { directory.appendingPathComponent("served.json") }
    public var ledgerURL: URL { directory.appendingPathComponent("ledger.sqlite") }
    public var lockURL: URL { directory.appendingPathComponent(".run.lock") }
    public var stagesDirectory: URL { directory.appendingPathComponent("stages") }
    /// One JSON line per trained stage: its shard, stage, key and training time in seconds.
    /// Kept out of the stage files so that two trainings alike write them byte for byte equal.
    public var timingsURL: URL { stagesDirectory.appendingPathComponent("timings.jsonl") }

    /// Appends a trained stage's time to `timingsURL` (one write: lines of concurrent
    /// trainers do not interleave). Best effort: a time is a measurement, not run state.
    public func recordTiming(shard: Int, stage: Int, key: StageKey, seconds: Double) {
        let line = "{\"key\":\"\(key.hex)\",\"seconds\":\(seconds.isFinite ? seconds : 0),\"shard\":\(shard),\"stage\":\(stage)}\n"
        let descriptor = open(timingsURL.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o644)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, FileKind.irregular(status.st_mode) == nil else { return }
        _ = line.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
    }
    /// Held (without waiting) by the one retrain working on a shard.
    public func retrainLockURL(shard: Int) -> URL { directory.appendingPathComponent(".retrain-shard-\(shard).lock") }
    /// Held, waiting for it, by the one process training a shard's stages (`S3TRunner.trainStages`).
    public func trainingLockURL(shard: Int) -> URL { directory.appendingPathComponent(".train-shard-\(shard).lock") }
    /// The shard whose training lock `url` is, or nil for another file.
    public static func trainingLockShard(_ url: URL) -> Int? {
        let name = url.lastPathComponent
        guard name.hasPrefix(".train-shard-"), name.hasSuffix(".lock") else { return nil }
        return Int(name.dropFirst(".train-shard-".count).dropLast(".lock".count))
    }

    public func shardDirectory(_ shard: Int) -> URL {
        stagesDirectory.appendingPathComponent("shard-\(shard)")
    }

    /// The file of a stage: named by stage index and full key, so equal prefixes share it.
    public func stageURL(shard: Int, stage: Int, key: StageKey) -> URL {
        shardDirectory(shard).appendingPathComponent(stageFileName(stage: stage, key: key))
    }

    public func stageURL(_ lineage: StageLineage) -> URL {
        stageURL(shard: lineage.shard, stage: lineage.stage, key: lineage.key)
    }

    /// A stage file's path relative to the run directory, as receipts and reports name it.
    public func relativeStagePath(shard: Int, stage: Int, key: StageKey) -> String {
        relativePath(of: stageURL(shard: shard, stage: stage, key: key))
    }

    /// The path of a file of the run relative to the run directory.
    public func relativePath(of url: URL) -> String {
        let root = directory.standardizedFileURL.path + "/"
        let path = url.standardizedFileURL.path
        return path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
    }

    private func stageFileName(stage: Int, key: StageKey) -> String { "stage-\(stage)-\(key.hex).h5" }

    /// The names of the complete stage files of a shard (`stage-*.h5`), sorted.
    public func stageFileNames(shard: Int) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: shardDirectory(shard).path)) ?? [])
            .filter { $0.hasPrefix("stage-") && $0.hasSuffix(".h5") }.sorted()
    }

    /// True when the stage's file exists under its final name. Files appear there only by an
    /// atomic rename after a complete, fsynced write, so existence means complete.
    public func isComplete(_ lineage: StageLineage) -> Bool {
        FileManager.default.fileExists(atPath: stageURL(lineage).path)
    }

    /// Some complete stage file of any shard, or nil when none was trained.
    public func anyStageFile() -> URL? {
        let stages = directory.appendingPathComponent("stages")
        let shards = (try? FileManager.default.contentsOfDirectory(atPath: stages.path)) ?? []
        for shard in shards.sorted() where shard.hasPrefix("shard-") {
            let folder = stages.appendingPathComponent(shard)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            if let name = names.sorted().first(where: { $0.hasPrefix("stage-") && $0.hasSuffix(".h5") }) {
                return folder.appendingPathComponent(name)
            }
        }
        return nil
    }

    /// Deletes temporary files a killed writer left in a shard's directory
    /// (".<name>.tmp-XXXXXXXX"); returns how many. Call only for shards this process trains.
    @discardableResult
    public func removeTemporaryFiles(shard: Int) -> Int {
        let directory = shardDirectory(shard)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var removed = 0
        for name in names where name.hasPrefix(".") && name.contains(".tmp-") {
            if (try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))) != nil {
                removed += 1
            }
        }
        return removed
    }

    /// Removes the temporary files that writers holding the run lock leave in the run
    /// directory when they are killed (`.plan.h5.tmp-…`, `.plan.tombstones.tmp-…`,
    /// `.served.json.tmp-…`); returns how many. Call with the run lock held, so none of them
    /// belongs to a writer still at work. (train.json's temporary file is written without the
    /// lock and is left alone.)
    public func removeLockedWritersTemporaryFiles() -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let prefixes = [".plan.h5.tmp-", ".plan.tombstones.tmp-", ".served.json.tmp-"]
        var removed = 0
        for name in names where prefixes.contains(where: name.hasPrefix) {
            if (try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))) != nil { removed += 1 }
        }
        return removed
    }

    /// Removes the temporary stage files of trainers that died between writing a stage and
    /// renaming it into place (`.stage-…h5.tmp-…` in a shard's directory), in every shard whose
    /// training lock no process holds (this one included: a trainer never loses its own file).
    /// Such a file can hold a complete stage, on data a forget may since have deleted, that no
    /// plan, composition or receipt names. Returns how many were removed.
    public func removeDeadTrainersTemporaryFiles() -> Int {
        var removed = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: stagesDirectory.path)) ?? [] {
            guard name.hasPrefix("shard-"), let shard = Int(name.dropFirst(6)) else { continue }
            let directory = shardDirectory(shard)
            let temporary = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
                .filter { $0.hasPrefix(".stage-") && $0.contains(".h5.tmp-") }
            guard !temporary.isEmpty else { continue }
            _ = try? FileLock.withLockIfFree(trainingLockURL(shard: shard)) {
                for file in temporary where (try? FileManager.default.removeItem(at: directory.appendingPathComponent(file))) != nil {
                    removed += 1
                }
            }
        }
        return removed
    }

    /// Flushes a directory's entries (renames, deletions) to disk; a missing directory is fine.
    public static func syncDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            throw TrainingError.fileInvalid(file: url.path, reason: "cannot open the directory to sync it (\(String(cString: strerror(errno))), errno \(errno))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw TrainingError.fileInvalid(file: url.path, reason: "fsync of the directory failed (\(String(cString: strerror(errno))), errno \(errno))")
        }
    }

    /// Bytes used by the stage files of a shard (all shards when nil).
    public func stageByteCount(shard: Int? = nil) -> Int {
        let root = shard.map(shardDirectory) ?? stagesDirectory
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.fileSizeKey])
        else { return 0 }
        var total = 0
        for case let url as URL in walker {
            total += (try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) ?? 0
        }
        return total
    }
}
