import Audit
import Foundation
import Kernels
import Planning
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// `lethe verify --replay` on tiny runs trained by `ToyStageTrainer`.
@Suite struct StageReplayTests {
    @Test func replayingServedStagesOfACleanRunFindsThemIdentical() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let served = try StageReplay.servedStages(run: run.directory)
        #expect(served.count == 2 * 3)
        let (outcomes, problems) = try StageReplay.replay(run: run.directory, count: 100, seed: 1,
                                                          runner: ToyStageTrainer.runner(run.directory))
        #expect(problems.isEmpty, "\(problems)")
        #expect(outcomes.count == served.count && outcomes.allSatisfy(\.identical))
        // A sample is drawn by the seed, reproducibly.
        let first = try StageReplay.replay(run: run.directory, count: 2, seed: 9, runner: ToyStageTrainer.runner(run.directory)).0
        let again = try StageReplay.replay(run: run.directory, count: 2, seed: 9, runner: ToyStageTrainer.runner(run.directory)).0
        #expect(first.count == 2 && first == again)
    }

    @Test func replayAfterForgetAndRetrainIsClean() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let id = Array(run.plan.members(shard: 1, slice: 1))[0]
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(id))], nowMilliseconds: 1)
        _ = try run.retrainer().retrain(nowMilliseconds: { 2 })
        let (outcomes, problems) = try StageReplay.replay(run: run.directory, count: 6, seed: 3,
                                                          runner: ToyStageTrainer.runner(run.directory))
        #expect(problems.isEmpty, "\(problems)")
        #expect(outcomes.count == 6 && outcomes.allSatisfy(\.identical))
    }

    /// A stage forged with a consistent hash; with `otherKernels`, its file also claims it was
    /// trained on other kernels than this process runs, and the mismatch names both.
    @Test(arguments: [false, true])
    func aTamperedStageWithAReforgedHashPassesTheHashCheckButNotTheReplay(otherKernels: Bool) throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let entry = try #require(try run.served().entry(shard: 0))
        let url = RunLayout(directory: run.directory).stageURL(shard: 0, stage: 2, key: entry.stageKeys[1])
        var checkpoint = try StageCheckpoint.load(from: url)
        #expect(checkpoint.record.kernels == BLASRuntime.kernelDescription && checkpoint.record.kernels.hasPrefix("OpenBLAS "))
        let elsewhere = "OpenBLAS Prescott, AVX2 (panel kernels)"
        if otherKernels { checkpoint.record.kernels = elsewhere }
        let index = try #require(checkpoint.head.firstIndex { $0.name == "weight" })
        let tensor = checkpoint.head[index]
        var values = tensor.values
        values[3] = values[3].nextUp  // one ulp
        checkpoint.head[index] = NamedTensor(name: tensor.name, shape: tensor.shape, values: values)
        try checkpoint.save(to: url)  // writes the new tensors' hash: the forgery is consistent

        #expect(try RunVerifier.verify(run: run.directory).isClean)
        let (outcomes, problems) = try StageReplay.replay(run: run.directory, count: 100, seed: 0,
                                                          runner: ToyStageTrainer.runner(run.directory))
        // The forged stage differs, and so does its child, replayed from the forged parent.
        let differing = outcomes.filter { !$0.identical }
        #expect(differing.first?.file == "stages/shard-0/\(url.lastPathComponent)")
        #expect(differing.map(\.shard) == [0, 0] && differing.map(\.stage) == [2, 3])
        let problem = try #require(problems.first)
        #expect(problems.count == 2 && problem.kind == .replayMismatch && problem.location == url.path)
        #expect(problem.detail.hasPrefix("head/weight[3] is"), "\(problem.detail)")
        #expect(problem.detail.contains("trained on \(elsewhere), replayed on \(BLASRuntime.kernelDescription)")
                == otherKernels, "\(problem.detail)")
    }

    @Test func aStageServedUnderAnotherKeyIsALineageProblem() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let entry = try #require(try run.served().entry(shard: 1))
        // Copy stage 1's file over stage 2's name: right hash, wrong lineage.
        let stage1 = RunLayout(directory: run.directory).stageURL(shard: 1, stage: 1, key: entry.stageKeys[0])
        let stage2 = RunLayout(directory: run.directory).stageURL(shard: 1, stage: 2, key: entry.stageKeys[1])
        try FileManager.default.removeItem(at: stage2)
        try FileManager.default.copyItem(at: stage1, to: stage2)
        let (_, problems) = try StageReplay.replay(run: run.directory, count: 100, seed: 0,
                                                   runner: ToyStageTrainer.runner(run.directory))
        #expect(problems.first?.kind == .replayLineage && problems.first?.location == stage2.path, "\(problems)")
        // Stage 3 cannot be replayed from a parent file that holds another stage.
        #expect(problems.dropFirst().allSatisfy { $0.kind == .replayLineage && $0.detail.contains("its parent") },
                "\(problems)")
    }
}
