import Foundation
import RunFixtures
import Planning
import Support
import Testing
@testable import Audit
@testable import Forgetting
@testable import Training

/// The promise that a deletion binds everything after it, attacked with real `lethe` processes
/// on real training (40 BBC headlines, MiniLM, 2 shards × 2 slices × 2 sequences, 1 epoch):
///
/// - interleavings: a forget before a shard is trained, a forget while training runs, two
///   forgets at once, `plan --force` over a run with deletions;
/// - kill -9 at random moments of `train`, `train --jobs 2`, `forget` and `retrain`, followed by
///   the ordinary next command, which must recover on its own.
///
/// After each: no accepted request is lost, nothing served saw a deleted example, `lethe verify`
/// is clean, and the served stages are bit for bit those of an uninterrupted run. Trials per
/// kind: `LETHE_TORTURE_TRIALS` (default 3; `make torture` runs more).
@Suite(.serialized) struct ExactnessTortureTests {
    static let trials = Int(ProcessInfo.processInfo.environment["LETHE_TORTURE_TRIALS"] ?? "") ?? 3
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let trainArguments = ["--epochs", "1", "--layers-per-block", "1", "--rank", "4", "--threads", "1",
                                 "--seed", "5", "--model",
                                 root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path]

    /// A scratch directory with the data and a plan, and the ids the trials forget.
    struct Fixture {
        let scratch: URL
        let plan: Plan
        /// An example of shard 1 in the slice that sequence 0 trains second (so the shard keeps
        /// a shorter prefix), and one of shard 0.
        let victim: String
        let second: String

        init() throws {
            scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-torture-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            try BBCSubset.write(perLabel: 8, to: scratch.appendingPathComponent("tiny.jsonl"))
            let base = scratch.appendingPathComponent("base")
            try ExactnessTortureTests.lethe(["plan", "--data", scratch.appendingPathComponent("tiny.jsonl").path,
                                             "--shards", "2", "--slices", "2", "--budget", "2", "--seed", "3",
                                             "--run", base.path])
            plan = try Plan.load(from: Plan.url(inRun: base))
            let shard1Second = plan.sequences(of: 1)[0][1]
            victim = try #require(plan.members(shard: 1, slice: shard1Second).first)
            second = try #require(plan.members(shard: 0, slice: plan.sequences(of: 0)[0][1]).first)
        }

        /// A new run directory holding a copy of the plan.
        func newRun(_ name: String) throws -> URL {
            let run = scratch.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Plan.url(inRun: scratch.appendingPathComponent("base")),
                                             to: Plan.url(inRun: run))
            return run
        }

        func remove() { try? FileManager.default.removeItem(at: scratch) }
    }

    // MARK: - Interleavings

    @Test func deletionsBindEveryLaterTrainingPublishAndAnswer() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let reference = try Self.referenceAfterForgetting([fixture.victim], fixture)

        // A forget before its shard is trained: shard 1 never trains the victim's stages.
        let before = try fixture.newRun("before")
        try Self.lethe(["train", "--run", before.path, "--shard", "0"] + Self.trainArguments)
        try Self.lethe(["forget", "--run", before.path, "--id", fixture.victim])
        let trained = try Self.lethe(["train", "--run", before.path, "--shard", "1", "--json"] + Self.trainArguments)
        #expect(trained.contains("\"event\":\"withheld\""))
        try Self.expectExact(before, equals: reference, deleted: [fixture.victim])

        // A forget while `lethe train` runs wins, whenever it lands.
        for trial in 0..<Self.trials {
            let run = try fixture.newRun("during-\(trial)")
            let training = try Self.start(["train", "--run", run.path] + Self.trainArguments)
            try Self.waitForStageFiles(run, atLeast: 1 + trial % 3, while: training)
            try Self.lethe(["forget", "--run", run.path, "--id", fixture.victim])
            training.waitUntilExit()
            #expect(training.terminationStatus == 0)
            try Self.expectExact(run, equals: reference, deleted: [fixture.victim])
        }

        // Two forgets at once: both recorded, both honoured.
        let both = try fixture.newRun("both")
        try Self.lethe(["train", "--run", both.path] + Self.trainArguments)
        let first = try Self.start(["forget", "--run", both.path, "--id", fixture.victim])
        let second = try Self.start(["forget", "--run", both.path, "--id", fixture.second])
        first.waitUntilExit(); second.waitUntilExit()
        #expect(first.terminationStatus == 0 && second.terminationStatus == 0)
        try Self.expectExact(both, equals: try Self.referenceAfterForgetting([fixture.victim, fixture.second], fixture),
                             deleted: [fixture.victim, fixture.second])

        // A forget while `lethe retrain` rebuilds the shard: the retrain never publishes a stage
        // that saw it (a stage trained on it is dropped at commit, the next pass rebuilds again).
        let other = try #require(fixture.plan.members(shard: 1, slice: fixture.plan.sequences(of: 1)[0][0]).first)
        for trial in 0..<Self.trials {
            let run = fixture.scratch.appendingPathComponent("retrain-during-\(trial)")
            try FileManager.default.copyItem(at: try Self.referenceRun([fixture.victim], fixture), to: run)
            let retraining = try Self.start(["retrain", "--run", run.path])
            usleep(UInt32(100_000 * trial))
            try Self.lethe(["forget", "--run", run.path, "--id", other])
            retraining.waitUntilExit()
            #expect([0, 4].contains(retraining.terminationStatus), "done, or left truncated by the forget")
            try Self.expectClean(run, deleted: [fixture.victim, other])
        }

        // A new plan over a run with deletions is refused, and the plan is left as it was.
        let planBefore = try Data(contentsOf: Plan.url(inRun: both))
        #expect(throws: (any Error).self) {
            try Self.lethe(["plan", "--data", fixture.scratch.appendingPathComponent("tiny.jsonl").path, "--shards", "2",
                            "--slices", "2", "--budget", "2", "--run", both.path, "--force"])
        }
        #expect(try Data(contentsOf: Plan.url(inRun: both)) == planBefore)
    }

    // MARK: - kill -9

    @Test func killedTrainingResumesToTheUninterruptedResultAndHonoursForgets() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let full = try Self.referenceAfterForgetting([], fixture)
        let forgotten = try Self.referenceAfterForgetting([fixture.victim], fixture)
        var generator = SplitMix64(seed: 20261204)
        var outcomes: [String] = []
        for trial in 0..<(2 * Self.trials) {
            let run = try fixture.newRun("kill-train-\(trial)")
            let jobs = trial % 2 == 1
            let process = try Self.start(["train", "--run", run.path] + (jobs ? ["--jobs", "2"] : []) + Self.trainArguments)
            try Self.waitForStageFiles(run, atLeast: Int(generator.next() % 6), while: process)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if jobs { try Self.waitForChildrenToDie(of: run) }
            let survived = try Self.stageTensorHashes(run).count
            // Every other trial forgets between the kill and the resume.
            let forget = trial % 4 >= 2
            if forget { try Self.lethe(["forget", "--run", run.path, "--id", fixture.victim]) }
            try Self.lethe(["train", "--run", run.path] + (jobs ? ["--jobs", "2"] : []) + Self.trainArguments)
            try Self.expectExact(run, equals: forget ? forgotten : full, deleted: forget ? [fixture.victim] : [])
            outcomes.append("\(jobs ? "jobs" : "train") killed with \(survived) stage(s), \(forget ? "forget, " : "")resumed")
        }
        print("kill -9 of train: \(outcomes.count) trials: \(outcomes.joined(separator: "; "))")
    }

    @Test func killedForgetsAreCompletedByTheNextCommand() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let trained = try fixture.newRun("trained")
        try Self.lethe(["train", "--run", trained.path] + Self.trainArguments)
        let forgotten = try Self.referenceAfterForgetting([fixture.victim], fixture)
        var generator = SplitMix64(seed: 7)
        var accepted = 0
        let trialCount = 4 * Self.trials
        for trial in 0..<trialCount {
            let run = fixture.scratch.appendingPathComponent("kill-forget-\(trial)")
            try FileManager.default.copyItem(at: trained, to: run)
            let process = try Self.start(["forget", "--run", run.path, "--id", fixture.victim])
            usleep(UInt32(generator.next() % 250_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // The next reader recovers on its own; which one varies by trial.
            let reader = [["predict", "--run", run.path, "--text", "Shares rise"], ["status", "--run", run.path],
                          ["evaluate", "--run", run.path, "--data", fixture.scratch.appendingPathComponent("tiny.jsonl").path],
                          ["train", "--run", run.path] + Self.trainArguments][trial % 4]
            try Self.lethe(reader)
            let ledger = RunLayout(directory: run).ledgerURL
            var wasAccepted = false
            if FileManager.default.fileExists(atPath: ledger.path) {
                let opened = try Ledger.open(at: ledger)
                wasAccepted = try opened.entries(forExampleID: fixture.victim).contains { $0.kind == .request }
                try opened.close()
            }
            if wasAccepted { accepted += 1 }
            let untouched = try Self.referenceAfterForgetting([], fixture)
            try Self.expectExact(run, equals: wasAccepted ? forgotten : untouched,
                                 deleted: wasAccepted ? [fixture.victim] : [])
        }
        print("kill -9 of forget: \(trialCount) trials, \(accepted) accepted before the kill and completed by the next command")
    }

    @Test func killedRetrainsCompleteToTheUninterruptedRetrain() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let forgotten = fixture.scratch.appendingPathComponent("forgotten")
        try FileManager.default.copyItem(at: try Self.referenceRun([fixture.victim], fixture), to: forgotten)
        let reference = try fixture.newRun("retrain-reference-dir")
        try FileManager.default.removeItem(at: reference)
        try FileManager.default.copyItem(at: forgotten, to: reference)
        try Self.lethe(["retrain", "--run", reference.path])
        let expected = try Self.servedState(reference)
        var generator = SplitMix64(seed: 99)
        for trial in 0..<Self.trials {
            let run = fixture.scratch.appendingPathComponent("kill-retrain-\(trial)")
            try FileManager.default.copyItem(at: forgotten, to: run)
            let process = try Self.start(["retrain", "--run", run.path])
            usleep(UInt32(200_000 + generator.next() % 2_000_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try Self.lethe(["retrain", "--run", run.path])
            try Self.expectExact(run, equals: expected, deleted: [fixture.victim])
        }
    }

    // MARK: - Support

    /// What a run serves: per shard the entry, and the tensor hash of every served stage.
    struct ServedState: Equatable {
        var entries: [ServedComposition.Entry]
        var tensorHashes: [String]
    }

    static func servedState(_ run: URL) throws -> ServedState {
        let layout = RunLayout(directory: run)
        let composition = try ServedComposition.load(from: layout.servedURL)
        let hashes = try composition.liveShards.flatMap { entry in
            try entry.stageKeys.enumerated().map { index, key in
                try StageCheckpoint.load(from: layout.stageURL(shard: entry.shard, stage: index + 1, key: key)).tensorsSHA256
            }
        }
        return ServedState(entries: composition.shards, tensorHashes: hashes)
    }

    /// Trains a fresh run uninterrupted, then forgets `ids`; returns the run.
    static func referenceRun(_ ids: [String], _ fixture: Fixture) throws -> URL {
        let name = "reference-" + (ids.isEmpty ? "none" : ids.joined(separator: "+"))
        let run = fixture.scratch.appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: RunLayout(directory: run).servedURL.path) { return run }
        _ = try fixture.newRun(name)
        try lethe(["train", "--run", run.path] + trainArguments)
        if !ids.isEmpty { try lethe(["forget", "--run", run.path] + ids.flatMap { ["--id", $0] }) }
        return run
    }

    static func referenceAfterForgetting(_ ids: [String], _ fixture: Fixture) throws -> ServedState {
        try servedState(try referenceRun(ids, fixture))
    }

    /// The run serves exactly `expected`, verifies clean, has no pending request, and no
    /// served stage saw a deleted example.
    static func expectExact(_ run: URL, equals expected: ServedState, deleted: [String],
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let state = try servedState(run)
        #expect(state == expected, "served composition and tensors", sourceLocation: sourceLocation)
        let plan = try Plan.load(from: Plan.url(inRun: run))
        for id in deleted { #expect(plan.isTombstoned(id), sourceLocation: sourceLocation) }
        try expectClean(run, deleted: deleted, sourceLocation: sourceLocation)
    }

    /// Verifies clean, nothing pending, and no deleted example served.
    static func expectClean(_ run: URL, deleted: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try RunVerifier.verify(run: run).problems == [], sourceLocation: sourceLocation)
        for id in deleted { #expect(try !ExampleAudit.audit(run: run, id: id).servedNow, sourceLocation: sourceLocation) }
        #expect(try ForgettingStatus.load(run: run).pendingRequestCount == 0, sourceLocation: sourceLocation)
    }

    static func stageTensorHashes(_ run: URL) throws -> [String] {
        let layout = RunLayout(directory: run)
        return (0..<2).flatMap { layout.stageFileNames(shard: $0) }
    }

    /// Waits until the run has `count` stage files (or the process ended).
    static func waitForStageFiles(_ run: URL, atLeast count: Int, while process: Process) throws {
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline, try stageTensorHashes(run).count < count { usleep(2_000) }
    }

    /// `train --jobs` children die with their parent; wait until no process has the run open.
    static func waitForChildrenToDie(of run: URL) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let alive = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { $0.allSatisfy(\.isNumber) }
                .contains { pid in
                    let command = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                    return String(decoding: command, as: UTF8.self).contains(run.path)
                }
            if !alive { return }
            usleep(20_000)
        }
        Issue.record("a child of the killed `lethe train --jobs` still runs on \(run.path)")
    }

    static func start(_ arguments: [String]) throws -> Process { try LetheProcess.start(arguments) }

    @discardableResult
    static func lethe(_ arguments: [String]) throws -> String { try LetheProcess.succeed(arguments) }
}
