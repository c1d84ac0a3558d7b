import Foundation
import Planning
import RunFixtures
import Training
import Testing

/// A training that started from one plan commits nothing once plan.h5 holds another (replaced
/// by `lethe plan --force` in the moment before the training took its shard's lock).
@Suite struct PlanReplacedTests {
    @Test func aTrainingWhosePlanWasReplacedCommitsNoStage() throws {
        let run = try TinyRun(stageFiles: false)
        defer { run.remove() }
        let other = try Planner.makePlan(for: run.dataset, parameters: PlanParameters(shardCount: 2, sliceCount: 3,
                                                                                         budget: 3, seed: 8))
        #expect(other.identity != run.plan.identity)
        try other.save(to: Plan.url(inRun: run.directory))
        #expect(throws: TrainingError.planReplaced(file: Plan.url(inRun: run.directory).path)) {
            try ToyStageTrainer.trainAll(run.plan, in: run.directory)
        }
        let stages = RunLayout(directory: run.directory).stagesDirectory.path
        let files = FileManager.default.subpaths(atPath: stages)?.filter { $0.hasSuffix(".h5") } ?? []
        #expect(files.isEmpty, "\(files)")
        // The plan it holds now trains.
        try ToyStageTrainer.trainAll(other, in: run.directory)
    }
}
