import Audit
import Foundation
import Planning
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// A run whose plan.h5 is gone is restored, never planned anew: a new plan would not account for
/// the ledger, the stages and the served composition made from the old one.
@Suite struct LostPlanTests {
    /// The run's layout, after writing an s3t train.json (a forget reads the strategy there when
    /// it replaces served.json).
    static func withSettings(_ run: TinyRun) throws -> RunLayout {
        let layout = RunLayout(directory: run.directory)
        try TrainingSettings(strategy: .s3t, baseModel: "b", baseModelSHA256: String(repeating: "0", count: 64))
            .save(to: layout.settingsURL)
        return layout
    }

    @Test func aRunWhosePlanIsLostIsNeverPlannedAnew() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let deleted = try #require(run.plan.members(shard: 0, slice: 1).first)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        let planURL = Plan.url(inRun: run.directory)
        try FileManager.default.removeItem(at: planURL)

        #expect(throws: PlanningError.planMissing(directory: run.directory.path,
                                                  remaining: ["ledger.sqlite", "served.json", "stages/"])) {
            _ = try Plan.load(from: planURL)
        }
        let data = run.directory.appendingPathComponent("other.jsonl")
        let lines = (0..<12).map { #"{"id": "n\#($0)", "text": "text \#($0)", "label": "\#($0 % 2)"}"# }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data)
        let (status, output) = try LetheProcess.run(["plan", "--data", data.path, "--shards", "2", "--slices", "2",
                                                     "--budget", "1", "--run", run.directory.path])
        #expect(status == 1 && output.contains("plan.h5 is missing, but the run still has ledger.sqlite"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: planURL.path))
        // A directory with nothing made from a plan is still "not a run".
        let empty = run.directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        #expect(throws: PlanningError.notARun(directory: empty.path)) { _ = try Plan.load(from: Plan.url(inRun: empty)) }
    }

    /// served.json naming a shard the plan does not have (the files of two runs mixed) is another
    /// run's: a publish from training refuses it naming both files, and a forget replaces it
    /// with the composition the plan derives, as it does a damaged one. Nothing traps.
    @Test func aServedShardOutsideThePlanIsTreatedAsAnotherRunsFile() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let layout = try Self.withSettings(run)
        let served = try ServedComposition.load(from: layout.servedURL)
        let stranger = ServedComposition.Entry(shard: 99, sequence: 0, prefixLength: 1,
                                               stageKeys: try #require(served.entry(shard: 1)).stageKeys.prefix(1).map { $0 })
        try ServedComposition(strategy: .s3t, shards: served.shards + [stranger], ledgerHead: served.ledgerHead).save(to: layout)
        #expect(try !RunGuard(run: run.directory, nowMilliseconds: { 500 }).recover().didSomething)
        do {
            _ = try RunGuard(run: run.directory, nowMilliseconds: { 600 }).publish(strategy: .s3t, shards: [0])
            Issue.record("a training publish kept a composition of another run")
        } catch let error as ForgettingError {
            #expect(error.description.hasPrefix(layout.servedURL.path + ": it serves shard 99, but plan.h5 plans shards 0…1"),
                    "\(error)")
        }
        let deleted = try #require(run.plan.members(shard: 0, slice: 1).first)
        let receipt = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))],
                                                               nowMilliseconds: 1_000)
        #expect(receipt.replacedComposition?.reason.hasPrefix("it serves shard 99") == true, "\(receipt)")
        #expect(try ServedComposition.load(from: layout.servedURL).shards.map(\.shard) == [0, 1])
        #expect(try !ExampleAudit.audit(run: run.directory, id: deleted).servedNow)
    }

    /// served.json naming another strategy than train.json (its models would be read another way
    /// than they were trained) is reported by verify and replaced by the next forget.
    @Test func aServedStrategyOtherThanTheRunsIsReplaced() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let settings = run.retrainer().runner.settings
        try settings.save(to: layout.settingsURL)
        #expect(settings.strategy == .s3t)
        var served = try ServedComposition.load(from: layout.servedURL)
        served.strategy = .sisa
        try served.save(to: layout)
        let problems = try RunVerifier.verify(run: run.directory).problems
        #expect(problems.contains { $0.kind == .servedLineage && $0.detail.hasPrefix("serves a sisa composition") },
                "\(problems)")
        // Readers (predict, evaluate, serve build their ensembles through this check) refuse it.
        do {
            try served.requireStrategy(of: settings, layout: layout)
            Issue.record("a sisa composition was read on an s3t run")
        } catch {
            #expect("\(error)".contains("serves a sisa composition, but train.json trains s3t"), "\(error)")
        }
        let deleted = try #require(run.plan.members(shard: 1, slice: 0).first)
        let receipt = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))],
                                                               nowMilliseconds: 1_000)
        #expect(receipt.replacedComposition?.reason
                == "it serves a sisa composition, but train.json and the stages it serves record s3t")
        #expect(try ServedComposition.load(from: layout.servedURL).strategy == .s3t)
    }

    /// What counts as made from a plan: a tombstone log holding an id (a header alone is what a
    /// killed plan leaves), and stage files behind a linked stages/ directory.
    @Test func leftoversCountedThroughLinksAndLogs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-leftovers-\(UUID().uuidString)")
        let elsewhere = directory.appendingPathComponent("elsewhere/shard-0")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = directory.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let log = TombstoneLog.url(forPlanAt: Plan.url(inRun: run))
        try Data(TombstoneLog.header.utf8).write(to: log)
        #expect(Plan.filesMadeFromAPlan(in: run).isEmpty)
        try Data((TombstoneLog.header + "ex-01\n").utf8).write(to: log)
        #expect(Plan.filesMadeFromAPlan(in: run) == ["plan.tombstones"])
        try FileManager.default.removeItem(at: log)
        try FileManager.default.createSymbolicLink(at: run.appendingPathComponent("stages"),
                                                   withDestinationURL: directory.appendingPathComponent("elsewhere"))
        #expect(Plan.filesMadeFromAPlan(in: run).isEmpty)
        try Data().write(to: elsewhere.appendingPathComponent("stage-1-ab.h5"))
        #expect(Plan.filesMadeFromAPlan(in: run) == ["stages/"])
    }
}
