import Foundation
import Planning
import RunFixtures
import Store
import Testing
import Training
@testable import Forgetting

/// `lethe train` over a trained run puts back what is missing and refuses what is damaged: a
/// served stage missing in a later shard is trained again (the earlier shards' publishes do not
/// stop on it), and a file under a stage's final name is taken as complete only behind its seal.
@Suite struct ResumeRepairTests {
    @Test func aServedStageMissingInALaterShardIsTrainedAgain() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let entry = try #require(try run.served().entry(shard: 1))
        let url = RunLayout(directory: run.directory).stageURL(shard: 1, stage: 2, key: entry.stageKeys[1])
        let original = try Data(contentsOf: url)
        try FileManager.default.removeItem(at: url)
        // Shard 0 publishes first; shard 1 then trains the stage again, to the same bytes.
        try ToyStageTrainer.trainAll(run.plan, in: run.directory)
        #expect(try Data(contentsOf: url) == original)
        #expect(try run.served().entry(shard: 1) == entry)
    }

    @Test func aCutStageFileIsRefusedNotPublishedAsComplete() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let entry = try #require(try run.served().entry(shard: 0))
        let url = RunLayout(directory: run.directory).stageURL(shard: 0, stage: 3, key: entry.stageKeys[2])
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count / 2).write(to: url)
        let servedBefore = try Data(contentsOf: RunLayout(directory: run.directory).servedURL)
        #expect {
            try ToyStageTrainer.trainAll(run.plan, in: run.directory)
        } throws: { error in
            guard case TrainingError.damagedStage(let file, _) = error else { return false }
            return file == url.path && "\(error)".contains("Delete the file")
        }
        #expect(try Data(contentsOf: RunLayout(directory: run.directory).servedURL) == servedBefore)
    }

    /// With the clock fixed (the measured training time is the one attribute that varies), two
    /// runs trained alike write the same stage files byte for byte.
    @Test func runsTrainedAlikeWriteTheSameFiles() throws {
        let first = try TinyRun.trained(), second = try TinyRun.trained()
        defer { first.remove(); second.remove() }
        var compared = 0
        for shard in 0..<first.plan.shardCount {
            let layout = RunLayout(directory: first.directory)
            for name in layout.stageFileNames(shard: shard) {
                let a = try Data(contentsOf: layout.shardDirectory(shard).appendingPathComponent(name))
                let b = try Data(contentsOf: RunLayout(directory: second.directory).shardDirectory(shard)
                    .appendingPathComponent(name))
                #expect(a == b, "\(name)")
                compared += 1
            }
        }
        #expect(compared == 2 * 9)
    }
}
