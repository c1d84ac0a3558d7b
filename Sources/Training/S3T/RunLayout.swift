import Foundation

/// Where a run keeps its files (docs/FORMAT.md).
///
///     DIR/plan.h5                                   the plan (Planning)
///     DIR/train.json                                the training settings of the run
///     DIR/stages/shard-K/stage-I-<key>.h5           one file per distinct stage
///     DIR/served.json                               the served composition
public struct RunLayout: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public var settingsURL: URL { directory.appendingPathComponent("train.json") }
    public var servedURL: URL { directory.appendingPathComponent("served.json") }
    public var stagesDirectory: URL { directory.appendingPathComponent("stages") }

    public func shardDirectory(_ shard: Int) -> URL {
        stagesDirectory.appendingPathComponent("shard-\(shard)")
    }

    /// The file of a stage: named by stage index and full key, so equal prefixes share it.
    public func stageURL(shard: Int, stage: Int, key: StageKey) -> URL {
        shardDirectory(shard).appendingPathComponent("stage-\(stage)-\(key.hex).h5")
    }

    public func stageURL(_ lineage: StageLineage) -> URL {
        stageURL(shard: lineage.shard, stage: lineage.stage, key: lineage.key)
    }

    /// True when the stage's file exists under its final name. Files appear there only by an
    /// atomic rename after a complete, fsynced write, so existence means complete.
    public func isComplete(_ lineage: StageLineage) -> Bool {
        FileManager.default.fileExists(atPath: stageURL(lineage).path)
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
