import Foundation
import Planning
import RunFixtures
import Testing
@testable import Audit
@testable import Forgetting
@testable import Training

/// Forgetting on real data and real training. Needs `make setup` (model and data on disk).
@Suite(.serialized) struct RealRunTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The defining property: after forgetting x, every served shard model is bit-identical
    /// to training its sequence from scratch on the surviving prefix only, and nothing served
    /// has x in its lineage. Run A is trained, then forgets; run B is trained from scratch on
    /// the same plan and settings (a stage's inputs are functions of its prefix alone, so B's
    /// stages 1…p of a sequence are that prefix trained from scratch). 40 BBC headlines, real
    /// MiniLM, 2 shards × 2 slices × 2 sequences, 1 epoch, rank 4, 1 thread.
    @Test func servedModelsAfterForgettingEqualRetrainingTheSurvivingPrefix() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-forget-real-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 8, to: data)
        let train = ["--epochs", "1", "--layers-per-block", "1", "--rank", "4", "--threads", "1", "--seed", "5",
                     "--model", Self.root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path]
        let runA = scratch.appendingPathComponent("a"), runB = scratch.appendingPathComponent("b")
        try lethe(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "2", "--seed", "3",
                   "--run", runA.path])
        try FileManager.default.createDirectory(at: runB, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Plan.url(inRun: runA), to: Plan.url(inRun: runB))
        try lethe(["train", "--run", runA.path] + train)
        try lethe(["train", "--run", runB.path] + train)

        let plan = try Plan.load(from: Plan.url(inRun: runA))
        // One example from each shard's slice 0 and one more: shards lose different stages.
        let forgotten = [plan.members(shard: 0, slice: 0).first, plan.members(shard: 1, slice: 1).first]
            .compactMap { $0 }
        #expect(forgotten.count == 2)
        try lethe(["forget", "--run", runA.path] + forgotten.flatMap { ["--id", $0] })

        let hits = Set(forgotten.compactMap(plan.location(of:)))
        let layout = RunLayout(directory: runA)
        let served = try ServedComposition.load(from: layout.servedURL)
        #expect(served.liveShards.count == 2)
        for entry in served.liveShards {
            let sequence = plan.sequences(of: entry.shard)[try #require(entry.sequence)]
            #expect(entry.prefixLength == 1, "each shard lost one slice: the longest survivor has 1 stage")
            for (index, key) in entry.stageKeys.enumerated() {
                let stageA = try StageCheckpoint.load(from: layout.stageURL(shard: entry.shard, stage: index + 1, key: key))
                let stageB = try StageCheckpoint.load(from: RunLayout(directory: runB)
                    .stageURL(shard: entry.shard, stage: index + 1, key: key))
                #expect(stageA.adapters == stageB.adapters && stageA.head == stageB.head, "bit-identical")
                #expect(stageA.lineage.prefixSlices == Array(sequence.prefix(index + 1)))
                for slice in stageA.lineage.prefixSlices {
                    #expect(!hits.contains(SliceLocation(shard: entry.shard, slice: slice)))
                    #expect(!plan.members(shard: entry.shard, slice: slice).contains(where: forgotten.contains))
                }
            }
        }
        #expect(try RunVerifier.verify(run: runA).problems == [])
        for id in forgotten { #expect(try !ExampleAudit.audit(run: runA, id: id).servedNow) }
    }

    /// A bfloat16 run: train.json and every stage file record the precision, `verify --replay`
    /// replays in it bit for bit, and the run refuses to continue in another precision.
    @Test func bfloat16RunRecordsAndReplaysItsPrecision() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bf16-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl"), run = scratch.appendingPathComponent("run")
        try BBCSubset.write(perLabel: 6, to: data)
        try lethe(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "1", "--seed", "3",
                   "--run", run.path])
        let model = Self.root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path
        try lethe(["train", "--run", run.path, "--epochs", "1", "--layers-per-block", "1", "--rank", "4",
                   "--threads", "2", "--precision", "bf16", "--model", model])
        let layout = RunLayout(directory: run)
        #expect(try TrainingSettings.load(from: layout.settingsURL).precision == .bf16)
        let served = try ServedComposition.load(from: layout.servedURL)
        var stages = 0
        for entry in served.liveShards {
            for (index, key) in entry.stageKeys.enumerated() {
                let stage = try StageCheckpoint.load(from: layout.stageURL(shard: entry.shard, stage: index + 1, key: key))
                #expect(stage.record.precision == .bf16)
                stages += 1
            }
        }
        #expect(stages == 4)
        let replay = try lethe(["verify", "--run", run.path, "--replay", "4", "--json"])
        #expect(replay.contains("\"replayed_stages\":4") && replay.contains("\"problems\":[]"), "\(replay)")
        let (status, output) = try LetheProcess.run(["train", "--run", run.path, "--precision", "fp32"])
        #expect(status != 0 && output.contains("precision"), "\(output)")
    }

    /// Group forget on Rotten Tomatoes movies: every review of each movie is tombstoned, no
    /// served stage saw one, and the run verifies. Plan of the real training set (4 × 3 × 3)
    /// with stand-in stage checkpoints.
    @Test func forgettingMoviesOfRottenTomatoes() throws {
        let dataset = try Dataset.read(from: Self.root.appendingPathComponent("Datasets/rotten-tomatoes/train.jsonl"))
        let run = try TinyRun(shards: 4, slices: 3, budget: 3, dataset: dataset)
        defer { run.remove() }
        var counts: [String: Int] = [:]
        for example in dataset.examples { if let group = example.group { counts[group, default: 0] += 1 } }
        let movies = counts.filter { $0.value >= 5 }.keys.sorted().prefix(3)
        #expect(movies.count == 3)
        let receipt = try Forgetter(run: run.directory).forget(movies.map { ForgetRequest(target: .group($0)) },
                                                               groups: run.groups, nowMilliseconds: 1)
        let members = dataset.examples.filter { movies.contains($0.group ?? "") }.map(\.id)
        #expect(receipt.forgottenExamples == members.sorted(by: UTF8Order.precedes))
        #expect(receipt.requests.allSatisfy { $0.status == .forgotten })
        let plan = try Plan.load(from: Plan.url(inRun: run.directory))
        #expect(members.allSatisfy { plan.isTombstoned($0) })
        #expect(try RunVerifier.verify(run: run.directory).problems == [])
        for id in members.prefix(10) { #expect(try !ExampleAudit.audit(run: run.directory, id: id).servedNow) }
    }

    @discardableResult
    func lethe(_ arguments: [String]) throws -> String { try LetheProcess.succeed(arguments) }
}
