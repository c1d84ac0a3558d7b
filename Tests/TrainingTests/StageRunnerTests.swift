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
        try runner.trainStages(s, members: { members[$0] }, gate: StageGate(layout: layout, tombstones: [], current: { [] })) { _ in }
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
        #expect(!FileManager.default.fileExists(atPath: layout.servedURL.path), "training alone publishes nothing")
    }

    @Test func aSecondRunSkipsCompleteStagesAndRetrainsOnlyMissingOnesIdentically() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let s = try schedule([[0, 1, 2], [1, 2, 0]])
        let first = RecordingTrainer()
        try S3TRunner(layout: layout, settings: settings, trainer: first, clock: { 0 })
            .trainStages(s, members: { members[$0] }, gate: StageGate(layout: layout, tombstones: [], current: { [] })) { _ in }
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
            .trainStages(s, members: { members[$0] }, gate: StageGate(layout: layout, tombstones: [], current: { [] })) { if case .stageSkipped = $0 { skipped += 1 } }
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
            .trainStages(s, members: { members[$0] }, gate: StageGate(layout: layout, tombstones: [], current: { [] })) { _ in }
        let url = layout.stageURL(s.stages[0])
        let file = try HDF5File.open(url, mode: .readWrite)
        try file.setAttribute(.string(String(repeating: "f", count: 64)), named: "tensors_sha256")
        try file.close()
        #expect {                                                                   // the seal
            try StageCheckpoint.load(from: url)
        } throws: { error in
            guard case TrainingError.damagedStage(let file, _) = error else { return false }
            return file == url.path && "\(error)".contains("Delete the file, then `lethe train`")
        }
        try HDF5Seal.seal(fileAt: url)                                              // a deliberate edit
        #expect(throws: TrainingError.self) { try StageCheckpoint.load(from: url) } // the tensor hash

        let other = layout.stageURL(s.stages[1])
        let file2 = try HDF5File.open(other, mode: .readWrite)
        try file2.setAttribute(4, named: "format_version")
        try file2.close()
        try HDF5Seal.seal(fileAt: other)
        #expect {
            try StageCheckpoint.load(from: other)
        } throws: { error in
            guard case TrainingError.unsupportedFormat = error else { return false }
            return true
        }
    }

    @Test func replacingOneShardKeepsTheOtherShardsEntriesAndTheFileIsSealed() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let keyA = StageKey(prefixSliceHashes: [hashes[0]]), keyB = StageKey(prefixSliceHashes: [hashes[1]])
        let anchor = LedgerAnchor(sequenceNumber: 4, hash: String(repeating: "a", count: 64))
        let composition = ServedComposition(strategy: .s3t, shards: [.init(shard: 3, sequence: 0, prefixLength: 1, stageKeys: [keyA])],
                                            ledgerHead: .empty)
            .replacing([.init(shard: 0, sequence: 1, prefixLength: 1, stageKeys: [keyB])], ledgerHead: .empty)
            .replacing([.dead(shard: 3)], ledgerHead: anchor)
        try composition.save(to: layout)
        let served = try ServedComposition.load(from: layout.servedURL)
        #expect(served == composition)
        #expect(served.shards.map(\.shard) == [0, 3])
        #expect(served.liveShards.map(\.shard) == [0])
        #expect(served.entry(shard: 0)?.stageKeys == [keyB])
        #expect(served.ledgerHead == anchor)

        // Any edit that keeps the JSON valid is caught by the content hash.
        let text = try String(contentsOf: layout.servedURL, encoding: .utf8)
        for (old, new) in [("\"prefix_length\" : 1", "\"prefix_length\" : 0"), ("\"sequence\" : 4", "\"sequence\" : 3")] {
            #expect(text.contains(old))
            try text.replacingOccurrences(of: old, with: new).write(to: layout.servedURL, atomically: true, encoding: .utf8)
            #expect {
                try ServedComposition.load(from: layout.servedURL)
            } throws: { error in
                guard case TrainingError.fileInvalid(let file, let reason) = error else { return false }
                return file == layout.servedURL.path && reason.contains("content hash")
            }
        }
    }

    @Test func theGateWithholdsStagesHoldingADeletedExampleAndTheirDescendants() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let s = try schedule([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
        let trainer = RecordingTrainer()
        // "b1" (slice 1) is deleted: every prefix containing slice 1 is withheld, the rest trained.
        let outcome = try S3TRunner(layout: layout, settings: settings, trainer: trainer, clock: { 0 })
            .trainStages(s, members: { members[$0] }, gate: StageGate(layout: layout, tombstones: ["b1"], current: { ["b1"] })) { _ in }
        let trainedPrefixes = Set(trainer.jobs.map(\.lineage.prefixSlices))
        #expect(trainedPrefixes == [[0], [2], [2, 0]])
        #expect(trainer.jobs.allSatisfy { !$0.exampleIDs.contains("b1") })
        #expect(outcome.trained.count == 3 && outcome.withheld.count == s.stages.count - 3)
        for stage in s.stages {
            #expect(layout.isComplete(stage) == !stage.prefixSlices.contains(1), "prefix \(stage.prefixSlices)")
        }
    }
}

extension StageRunnerTests {
    /// A deletion that arrives while a stage trains wins: the commit re-reads the tombstones
    /// under the run lock and drops the stage, and nothing after it in its sequences is trained.
    @Test func aDeletionArrivingDuringTrainingDropsTheStageAtCommit() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let s = try schedule([[0, 1, 2], [2, 1, 0]])
        let trainer = RecordingTrainer()
        var commits = 0
        // The forget of "c2" (slice 2) lands while the third stage trains.
        let gate = StageGate(layout: layout, tombstones: []) {
            commits += 1
            return commits > 2 ? ["c2"] : []
        }
        var events: [String] = []
        let outcome = try S3TRunner(layout: layout, settings: settings, trainer: trainer, clock: { 0 })
            .trainStages(s, members: { members[$0] }, gate: gate) { event in
                if case .stageWithheld(let lineage) = event { events.append("withheld \(lineage.prefixSlices)") }
                if case .stageFinished(let lineage, _, _) = event { events.append("trained \(lineage.prefixSlices)") }
            }
        // [0] commits; [0,1] trains without c2 and commits (c2 is not in it); [0,1,2] holds c2:
        // it was trained before the gate knew, and is dropped at commit. Sequence [2,1,0] is
        // withheld from its first stage on, without training.
        #expect(events == ["trained [0]", "trained [0, 1]", "withheld [0, 1, 2]", "withheld [2]", "withheld [2, 1]",
                           "withheld [2, 1, 0]"])
        #expect(trainer.jobs.map(\.lineage.prefixSlices) == [[0], [0, 1], [0, 1, 2]])
        #expect(outcome.trained.count == 2)
        for stage in s.stages { #expect(layout.isComplete(stage) == !stage.prefixSlices.contains(2)) }
    }
}

/// One trainer of a shard on a thread of its own (the tests' stand-in for another process).
private final class ShardContender: @unchecked Sendable {   // read only after `done` signals
    let trainer = RecordingTrainer()
    let done = DispatchSemaphore(value: 0)
    var skipped = 0
    private var work: () -> Void = {}

    func start(_ runner: S3TRunner, _ schedule: StageSchedule, members: [[String]], gate: StageGate,
               holdingFirst lock: URL? = nil, holding: DispatchSemaphore? = nil, release: DispatchSemaphore? = nil) {
        work = { [self] in
            if let lock, let holding, let release {
                _ = try? FileLock.withExclusiveLock(lock) { holding.signal(); release.wait() }
            }
            _ = try? runner.trainStages(schedule, members: { members[$0] }, gate: gate) {
                if case .stageSkipped = $0 { self.skipped += 1 }
            }
            done.signal()
        }
        Thread { self.work() }.start()
    }
}

extension StageRunnerTests {
    /// Two trainers of one shard never run side by side: the second waits for the shard's
    /// training lock, then skips every stage the first committed and trains none again.
    @Test func aSecondTrainerOfAShardWaitsAndSkipsWhatTheFirstCommitted() throws {
        let layout = try Self.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let s = try schedule([[0, 1, 2], [1, 2, 0]])
        let gate = StageGate(layout: layout, tombstones: [], current: { [] })
        // The first holds the shard (its lock, as another process would) until released, then
        // trains the whole schedule.
        let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let first = ShardContender(), second = ShardContender()
        first.start(S3TRunner(layout: layout, settings: settings, trainer: first.trainer, clock: { 0 }), s,
                    members: members, gate: gate, holdingFirst: layout.trainingLockURL(shard: s.shard),
                    holding: holding, release: release)
        holding.wait()
        second.start(S3TRunner(layout: layout, settings: settings, trainer: second.trainer, clock: { 0 }), s,
                     members: members, gate: gate)
        // While the shard is held, the second trainer does nothing.
        #expect(second.done.wait(timeout: .now() + 0.5) == .timedOut)
        #expect(second.trainer.jobs.isEmpty && layout.stageFileNames(shard: s.shard).isEmpty)
        // Released: whichever of the two takes the shard trains it all, the other skips it all.
        release.signal()
        #expect(first.done.wait(timeout: .now() + 30) == .success)
        #expect(second.done.wait(timeout: .now() + 30) == .success)
        #expect(first.trainer.jobs.count + second.trainer.jobs.count == s.stages.count)
        #expect(first.trainer.jobs.isEmpty || second.trainer.jobs.isEmpty)
        #expect(first.skipped + second.skipped == s.stages.count)
        #expect(layout.stageFileNames(shard: s.shard).count == s.stages.count)
    }
}
