import Audit
import Forgetting
import Foundation
import Planning
import RunFixtures
import Store
import Testing
import Training

/// A cluster task (`lethe train --task`, what each Slurm array task and each Kubernetes pod
/// runs) reads the plan but never the ledger. A forget that died after recording its request and
/// before tombstoning it leaves the plan without that deletion; the task must not train on it.
@Suite struct ClusterTaskTests {
    @Test func aTaskTrainsNothingWhileAForgetIsUnfinished() async throws {
        let run = try SlurmTests.plannedRuns(["unfinished"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        // The host's first call records the settings (and trains shard 1).
        try LetheProcess.succeed(["train", "--run", run.path, "--shard", "1"] + SlurmTests.train)
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let id = try #require(plan.members(shard: 0, slice: 0).first)

        // A forget killed right after its request is durable ("accepted"), before step 2.
        await #expect(processExitsWith: .signal(SIGKILL)) { [runPath = run.path as String, id = id as String] in
            let forgetter = Forgetter(run: URL(fileURLWithPath: runPath))
            _ = try forgetter.forget([ForgetRequest(target: .example(id))], nowMilliseconds: 1_700_000_000_000,
                                     accepted: { _ in kill(getpid(), SIGKILL) })
        }
        #expect(try !Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id), "killed before its tombstone")
        #expect(UnfinishedForget.isRaised(RunLayout(directory: run)))

        let shard0 = run.appendingPathComponent("stages/shard-0")
        func stageFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: shard0.path)) ?? []).filter { $0.hasSuffix(".h5") }
        }
        let refused = try LetheProcess.run(["train", "--run", run.path, "--shard", "0", "--task"])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("lethe forget --run \(run.path) --resume"), "\(refused.output)")
        #expect(stageFiles().isEmpty, "the task trained nothing")

        // Finished on the host, the deletion binds the task: the stages of sequences that begin
        // with the deleted example's slice are withheld, the others trained.
        try LetheProcess.succeed(["forget", "--run", run.path, "--resume"])
        #expect(!UnfinishedForget.isRaised(RunLayout(directory: run)))
        try LetheProcess.succeed(["train", "--run", run.path, "--shard", "0", "--task"])
        let prefixes = try stageFiles().map { file in
            try StageCheckpoint.load(from: shard0.appendingPathComponent(file)).lineage.prefixSlices
        }
        #expect(!prefixes.isEmpty && prefixes.allSatisfy { !$0.contains(0) }, "\(prefixes)")
        try LetheProcess.succeed(["train", "--run", run.path])
        #expect(try LetheProcess.run(["audit", "--run", run.path, "--id", id]).status == 0)
        try LetheProcess.succeed(["verify", "--run", run.path])
    }

    /// The host submitting an array (or writing a Job) completes an interrupted forget first, as
    /// every command that reads a run does; otherwise each task would refuse to train.
    @Test func aSubmissionCompletesAnInterruptedForgetFirst() async throws {
        let run = try SlurmTests.plannedRuns(["submit-recovers"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 1, slice: 0).first)
        await #expect(processExitsWith: .signal(SIGKILL)) { [runPath = run.path as String, id = id as String] in
            let forgetter = Forgetter(run: URL(fileURLWithPath: runPath))
            _ = try forgetter.forget([ForgetRequest(target: .example(id))], nowMilliseconds: 1_700_000_000_000,
                                     accepted: { _ in kill(getpid(), SIGKILL) })
        }
        #expect(UnfinishedForget.isRaised(RunLayout(directory: run)))
        let output = try LetheProcess.succeed(["train", "--run", run.path, "--scheduler", "k8s", "--emit-manifest"]
                                              + SlurmTests.train)
        #expect(output.contains("recovery: completed 1"), "\(output)")
        #expect(!UnfinishedForget.isRaised(RunLayout(directory: run)))
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("k8s/train-job.yaml").path))
    }

    /// A task that starts while a forget is still running (its flag raised, the run lock held)
    /// waits for it instead of taking it for a forget that died, and then trains.
    @Test func aTaskWaitsForAForgetInProgress() throws {
        let run = try SlurmTests.plannedRuns(["in-progress"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        try LetheProcess.succeed(["train", "--run", run.path, "--shard", "1"] + SlurmTests.train)
        let layout = RunLayout(directory: run)
        let holding = DispatchSemaphore(value: 0)
        let holder = Thread {
            try? FileLock.withExclusiveLock(layout.lockURL) {
                try UnfinishedForget.raise(layout)
                holding.signal()
                Thread.sleep(forTimeInterval: 2)
                try UnfinishedForget.lower(layout)
            }
        }
        holder.start()
        holding.wait()
        let task = try LetheProcess.run(["train", "--run", run.path, "--shard", "0", "--task"])
        #expect(task.status == 0 && task.output.contains("stage"), "\(task.output)")
    }

    /// A retrain's array task trains stages of rebuilt slices, which the plan names only once the
    /// coordinator publishes. A forget in between of an example still in a rebuilt slice erases
    /// those of its stages that saw it, and the receipt lists them; the coordinator then
    /// publishes without them.
    @Test func aForgetErasesTheUnpublishedStagesOfARetrainThatSawItsExample() throws {
        let run = try SlurmTests.plannedRuns(["retrain-candidates"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        try LetheProcess.succeed(["train", "--run", run.path] + SlurmTests.train)
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let members = plan.members(shard: 0, slice: 0)
        try #require(members.count >= 2)
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", members[0]])
        let shard0 = run.appendingPathComponent("stages/shard-0")
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: shard0.path))
        try LetheProcess.succeed(["retrain", "--run", run.path, "--shard", "0", "--task"])
        let candidates = Set(try FileManager.default.contentsOfDirectory(atPath: shard0.path)).subtracting(before)
        let sawSlice0 = try candidates.filter { name in
            try StageCheckpoint.load(from: shard0.appendingPathComponent(name)).lineage.prefixSlices.contains(0)
        }
        try #require(!sawSlice0.isEmpty, "the task retrained stages of the rebuilt slice 0: \(candidates)")

        let forget = try LetheProcess.run(["forget", "--run", run.path, "--id", members[1], "--json"])
        #expect(forget.status == 0, "\(forget.output)")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: shard0.path))
        #expect(left.isDisjoint(with: sawSlice0), "stages that saw \(members[1]) are still on disk")
        #expect(candidates.subtracting(sawSlice0).isSubset(of: left), "stages that did not see it are kept")
        for name in sawSlice0 { #expect(forget.output.contains(name), "the receipt lists \(name)") }

        // The audit of the example lists them as erased, though no planned prefix names them,
        // before the retrain publishes and after.
        for step in ["before the retrain", "after it"] {
            if step == "after it" { try LetheProcess.succeed(["retrain", "--run", run.path]) }
            let audit = try LetheProcess.runApart(["audit", "--run", run.path, "--id", members[1], "--json"])
            #expect(audit.status == 0, "\(audit.stderr)")
            let stages = try JSONDecoder().decode(ExampleAudit.self, from: Data(audit.stdout.utf8)).stages
            for name in sawSlice0 {
                let listed = stages.first { $0.file.hasSuffix("/" + name) }
                #expect(listed?.erased == true && listed?.exists == false && listed?.served == false,
                        "\(step): the audit lists \(name) as erased: \(String(describing: listed))")
            }
            let served = stages.filter(\.served)
            #expect(served.isEmpty, "\(step): nothing that saw \(members[1]) is served")
        }
        try LetheProcess.succeed(["verify", "--run", run.path])
    }

    /// The audit of an example lists the retrain stages its own forget erased, not those a later
    /// forget erased for another example while repeating its request (a log run again).
    @Test func anAuditDoesNotClaimStagesErasedForAnotherExample() throws {
        let run = try SlurmTests.plannedRuns(["repeat"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        try LetheProcess.succeed(["train", "--run", run.path] + SlurmTests.train)
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let first = try #require(plan.sequences(of: 0).first?.first)
        let other = try #require((0..<plan.sliceCount).first { $0 != first })
        let x = try #require(plan.members(shard: 0, slice: first).first)
        let y = try #require(plan.members(shard: 0, slice: other).first)
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", x])
        let before = try LetheProcess.runApart(["audit", "--run", run.path, "--id", x, "--json"])
        let listed = Set(try JSONDecoder().decode(ExampleAudit.self, from: Data(before.stdout.utf8)).stages.map(\.key))
        // Stages of the rebuilt slice (without x), then a forget of y that repeats x's request.
        try LetheProcess.succeed(["retrain", "--run", run.path, "--shard", "0", "--task"])
        let forget = try LetheProcess.run(["forget", "--run", run.path, "--id", x, "--id", y, "--json"])
        #expect(forget.status == 0, "\(forget.output)")
        let after = try LetheProcess.runApart(["audit", "--run", run.path, "--id", x, "--json"])
        let stages = try JSONDecoder().decode(ExampleAudit.self, from: Data(after.stdout.utf8)).stages
        #expect(Set(stages.map(\.key)) == listed, "stages erased for \(y) are not claimed for \(x): \(stages)")
    }

    /// A forget stopped after its tombstone (a stage it must erase is a directory), a retrain task
    /// that rebuilt the slice without the example meanwhile, then the forget resumed: the
    /// retrain's stages never saw the example and stay. A directory named like a stage in the
    /// shard is no stage: it neither stops a forget nor is counted as erased.
    @Test func aResumedForgetKeepsRetrainStagesBuiltWithoutItsExample() throws {
        let run = try SlurmTests.plannedRuns(["resumed"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        try LetheProcess.succeed(["train", "--run", run.path] + SlurmTests.train)
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let id = try #require(plan.members(shard: 0, slice: 0).first)
        let shard0 = run.appendingPathComponent("stages/shard-0")
        try FileManager.default.createDirectory(at: shard0.appendingPathComponent("stage-9-notes.h5/sub"),
                                                withIntermediateDirectories: true)
        // Every planned stage that saw the example becomes a directory: the erase fails.
        let saw = try FileManager.default.contentsOfDirectory(atPath: shard0.path).filter { name in
            guard name != "stage-9-notes.h5" else { return false }
            return try StageCheckpoint.load(from: shard0.appendingPathComponent(name)).lineage.prefixSlices.contains(0)
        }
        for name in saw {
            try FileManager.default.removeItem(at: shard0.appendingPathComponent(name))
            try FileManager.default.createDirectory(at: shard0.appendingPathComponent(name + "/sub"), withIntermediateDirectories: true)
        }
        let stopped = try LetheProcess.run(["forget", "--run", run.path, "--id", id])
        #expect(stopped.status == 1 && stopped.output.contains("cannot erase the stage file"), "\(stopped.output)")
        for name in saw { try FileManager.default.removeItem(at: shard0.appendingPathComponent(name)) }
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: shard0.path))
        try LetheProcess.succeed(["retrain", "--run", run.path, "--shard", "0", "--task"])
        let candidates = Set(try FileManager.default.contentsOfDirectory(atPath: shard0.path)).subtracting(before)
        try #require(!candidates.isEmpty)
        let resumed = try LetheProcess.run(["forget", "--run", run.path, "--resume", "--json"])
        #expect(resumed.status == 0, "\(resumed.output)")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: shard0.path))
        #expect(candidates.isSubset(of: left), "stages trained without \(id) were erased: \(candidates.subtracting(left))")
        #expect(left.contains("stage-9-notes.h5") && !resumed.output.contains("stage-9-notes"), "\(resumed.output)")
        try FileManager.default.removeItem(at: shard0.appendingPathComponent("stage-9-notes.h5"))
        try LetheProcess.succeed(["retrain", "--run", run.path])
        try LetheProcess.succeed(["verify", "--run", run.path])
    }

    /// Some minutes after an array ends, the controller forgets it and `squeue -j` fails with
    /// "Invalid job id": its shards without a result ended without one. Any other failure of
    /// squeue leaves their state unknown ("submitted").
    @Test func aJobTheControllerForgotEndedWithoutAResult() throws {
        let run = try SlurmTests.plannedRuns(["forgotten-job"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        let slurm = run.appendingPathComponent("slurm")
        try FileManager.default.createDirectory(at: slurm, withIntermediateDirectories: true)
        try Data(#"{"job_id":"4242","script":"x.sh","shards":[0,1],"submitted_ms":1}"#.utf8)
            .write(to: slurm.appendingPathComponent("job.json"))
        let bin = run.deletingLastPathComponent().appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let squeue = bin.appendingPathComponent("squeue")
        let path = bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin")
        for (message, state) in [("slurm_load_jobs error: Invalid job id specified", "ended without a result"),
                                 ("slurm_load_jobs error: Unable to contact slurm controller", "submitted")] {
            try "#!/bin/sh\necho '\(message)' >&2\nexit 1\n".write(to: squeue, atomically: true, encoding: .utf8)
            #expect(chmod(squeue.path, 0o755) == 0)
            let status = try LetheProcess.run(["status", "--run", run.path], environment: ["PATH": path])
            #expect(status.status == 0 && status.output.contains("shard 0 \(state)"), "\(status.output)")
        }
        // While squeue cannot answer, whether the array still trains is unknown: a local train
        // is refused rather than run beside it.
        let train = try LetheProcess.run(["train", "--run", run.path] + SlurmTests.train, environment: ["PATH": path])
        #expect(train.status == 1 && train.output.contains("cannot tell whether Slurm job 4242 still trains this run"),
                "\(train.output)")
    }

    /// A task of an array whose settings are gone (train.json deleted) refuses to train, rather
    /// than training with default settings.
    @Test func aTaskWithoutTheRunsSettingsTrainsNothing() throws {
        let run = try SlurmTests.plannedRuns(["no-settings"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        let task = try LetheProcess.run(["train", "--run", run.path, "--shard", "0", "--task"])
        #expect(task.status == 1 && task.output.contains("train.json is missing, so this array task"), "\(task.output)")
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("train.json").path))
        let stages = (try? FileManager.default.subpathsOfDirectory(atPath: run.appendingPathComponent("stages").path)) ?? []
        #expect(stages.allSatisfy { !$0.hasSuffix(".h5") }, "\(stages)")
    }
}
