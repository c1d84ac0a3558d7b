import Foundation
import Testing
import Store
import Planning
@testable import Training

/// A deterministic stand-in for the encoder trainer: its tensors are a function of the job's
/// seed, examples and inherited tensors, so the runner's bookkeeping (what is trained, what is
/// inherited, what is skipped, what is stored) can be checked exactly and fast.
final class RecordingTrainer: StageTrainer {
    var jobs: [StageJob] = []

    func train(_ job: StageJob, progress: (StageProgress) -> Void) throws -> StageResult {
        jobs.append(job)
        var mix = Double(job.seed % 1000) + Double(job.exampleIDs.count)
        for tensor in job.inheritedAdapters + (job.inheritedHead ?? []) { mix += Double(tensor.values.reduce(0, +)) }
        let adapters = job.lineage.blockLayers.flatMap { layer -> [NamedTensor] in
            let base = "encoder.layer.\(layer).attention.self.query"
            return [NamedTensor(name: base + "/lora_A", shape: [2, 3], values: (0..<6).map { Float(mix) + Float($0) }),
                    NamedTensor(name: base + "/lora_B", shape: [3, 2], values: (0..<6).map { Float(layer) - Float($0) })]
        }
        let head = [NamedTensor(name: "weight", shape: [2, 3], values: (0..<6).map { Float(mix) * 0.5 + Float($0) }),
                    NamedTensor(name: "bias", shape: [2], values: [Float(job.lineage.stage), -1])]
        progress(StageProgress(epoch: 1, epochCount: 1, step: 1, stepCount: 1, loss: 0.5,
                               examplesDone: job.exampleIDs.count))
        return StageResult(adapters: adapters, head: head, trainingLoss: 0.5, examplesSeen: job.exampleIDs.count)
    }
}

struct StageRunnerTests {
    static func temporaryRun() throws -> RunLayout {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-runner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return RunLayout(directory: url)
    }

    let members: [[String]] = [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]]
    var hashes: [String] { members.map { SliceHash.of(ids: $0) } }
    let settings = TrainingSettings(epochs: 1, seed: 11, baseModel: "base", baseModelSHA256: String(repeating: "0", count: 64))

    func schedule(_ sequences: [[Int]], shard: Int = 1) throws -> StageSchedule {
        try StageSchedule(shard: shard, sequences: sequences, sliceHashes: hashes, layerCount: 6,
                          layersPerBlock: 2, strategy: .s3t)
    }

    @Test func sharedPrefixesAreTrainedOnceAndStagesInheritTheirPrefix() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let trainer = RecordingTrainer()
        let runner = S3TRunner(layout: layout, settings: settings, trainer: trainer, clock: { 0 })
        let s = try schedule([[0, 1, 2], [0, 2, 1]])
        try runner.train(s, members: { members[$0] }) { _ in }
        #expect(trainer.jobs.count == 5)
        // Stage 3 of sequence 0 trains on all three slices, in prefix order, with blocks 1 and 2 frozen.
        let last = try #require(trainer.jobs.first { $0.lineage.prefixSlices == [0, 1, 2] })
        #expect(last.exampleIDs == ["a1", "a2", "b1", "c1", "c2", "c3"])
        #expect(Set(last.inheritedAdapters.compactMap { StageCheckpoint.layerIndex(ofAdapter: $0.name) }) == [2, 3, 4, 5])
        #expect(last.inheritedHead != nil)
        #expect(last.seed == last.lineage.key.seed(runSeed: 11, shard: 1))
        #expect(trainer.jobs[0].inheritedHead == nil && trainer.jobs[0].inheritedAdapters.isEmpty)

        // Each file holds its own block only, with its lineage.
        for stage in s.stages {
            let checkpoint = try StageCheckpoint.load(from: layout.stageURL(stage))
            #expect(checkpoint.adapterLayers == stage.blockLayers)
            #expect(checkpoint.lineage == stage)
            #expect(checkpoint.record.seed == stage.key.seed(runSeed: 11, shard: 1))
            #expect(checkpoint.record.hyperparametersJSON == (try settings.canonicalJSON()))
        }
        let served = try ServedComposition.load(from: layout.servedURL)
        #expect(served.shards == [.init(shard: 1, sequence: 0, prefixLength: 3, stageKeys: s.sequenceKeys[0])])
    }

    @Test func aSecondRunSkipsCompleteStagesAndRetrainsOnlyMissingOnesIdentically() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let s = try schedule([[0, 1, 2], [1, 2, 0]])
        let first = RecordingTrainer()
        try S3TRunner(layout: layout, settings: settings, trainer: first, clock: { 0 })
            .train(s, members: { members[$0] }) { _ in }
        #expect(first.jobs.count == 6)
        let hashesBefore = try s.stages.map { try StageCheckpoint.load(from: layout.stageURL($0)).tensorsSHA256 }

        // A killed writer's leftover temporary file, and a lost stage 2 of sequence 1.
        let shardDirectory = layout.shardDirectory(1)
        try Data([1, 2, 3]).write(to: shardDirectory.appendingPathComponent(".stage-2-x.h5.tmp-deadbeef"))
        let lost = s.stage(s.sequenceKeys[1][1])!
        try FileManager.default.removeItem(at: layout.stageURL(lost))

        let second = RecordingTrainer()
        var skipped = 0
        try S3TRunner(layout: layout, settings: settings, trainer: second, clock: { 0 })
            .train(s, members: { members[$0] }) { if case .stageSkipped = $0 { skipped += 1 } }
        #expect(second.jobs.map(\.lineage.key) == [lost.key])
        #expect(skipped == 5)
        let hashesAfter = try s.stages.map { try StageCheckpoint.load(from: layout.stageURL($0)).tensorsSHA256 }
        #expect(hashesAfter == hashesBefore)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: shardDirectory.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test func tamperedOrForeignCheckpointsAreRefusedOnLoad() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let s = try schedule([[2, 0, 1]])
        try S3TRunner(layout: layout, settings: settings, trainer: RecordingTrainer(), clock: { 0 })
            .train(s, members: { members[$0] }) { _ in }
        let url = layout.stageURL(s.stages[0])
        let file = try HDF5File.open(url, mode: .readWrite)
        try file.setAttribute(.string(String(repeating: "f", count: 64)), named: "tensors_sha256")
        try file.close()
        #expect(throws: TrainingError.self) { try StageCheckpoint.load(from: url) }

        let other = layout.stageURL(s.stages[1])
        let file2 = try HDF5File.open(other, mode: .readWrite)
        try file2.setAttribute(2, named: "format_version")
        try file2.close()
        #expect {
            try StageCheckpoint.load(from: other)
        } throws: { error in
            guard case TrainingError.unsupportedFormat = error else { return false }
            return true
        }
    }

    @Test func publishingOneShardKeepsTheOtherShardsEntries() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let keyA = StageKey(prefixSliceHashes: [hashes[0]]), keyB = StageKey(prefixSliceHashes: [hashes[1]])
        try ServedComposition.publish([.init(shard: 3, sequence: 0, prefixLength: 1, stageKeys: [keyA])],
                                      strategy: .s3t, layout: layout)
        try ServedComposition.publish([.init(shard: 0, sequence: 1, prefixLength: 1, stageKeys: [keyB])],
                                      strategy: .s3t, layout: layout)
        try ServedComposition.publish([.init(shard: 3, sequence: nil, prefixLength: 0, stageKeys: [])],
                                      strategy: .s3t, layout: layout)
        let served = try ServedComposition.load(from: layout.servedURL)
        #expect(served.shards.map(\.shard) == [0, 3])
        #expect(served.liveShards.map(\.shard) == [0])
        #expect(served.entry(shard: 0)?.stageKeys == [keyB])
    }
}
