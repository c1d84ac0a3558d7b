import Foundation
import GRDB
import Planning
import RunFixtures
import Store
import Testing
import Training
@testable import Audit
@testable import Forgetting

/// `ExampleAudit` and `RunVerifier`: clean runs verify, and each kind of tampering is reported
/// with what and where.
@Suite struct AuditTests {
    @Test func freshAndForgottenRunsVerifyClean() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let fresh = try RunVerifier.verify(run: run.directory)
        #expect(fresh.problems == [])
        #expect(fresh.stageFileCount == 2 * 9 && fresh.servedStageCount == 2 * 3)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example("ex-03"), requestID: "q")],
                                                     nowMilliseconds: 1_700_000_000_000)
        let after = try RunVerifier.verify(run: run.directory)
        #expect(after.problems == [])
        #expect(after.deletedExampleCount == 1)
    }

    @Test func auditListsEveryStageThatSawTheExampleAndTheDeletion() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let id = "ex-08"
        let location = try #require(run.plan.location(of: id))
        let before = try ExampleAudit.audit(run: run.directory, id: id)
        // Cyclic rotations of 3 slices: the slice heads one sequence (3 stages), is second in
        // another (2 stages) and last in the third (1 stage) — 6 distinct prefixes.
        #expect(before.stages.count == 6)
        #expect(before.stages.allSatisfy { $0.exists && $0.slices.contains(location.slice) })
        #expect(before.servedNow && before.deletions.isEmpty)

        let receipt = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(id), requestID: "gdpr-1")],
                                                               nowMilliseconds: 1_700_000_000_000)
        let after = try ExampleAudit.audit(run: run.directory, id: id)
        #expect(after.stages.allSatisfy { !$0.exists && $0.erased && !$0.served })
        #expect(!after.servedNow && after.tombstoned)
        // "Served now" names the composition it speaks of: the one the forget published.
        #expect(before.servedGeneration?.sequenceNumber == 0)
        #expect(after.servedGeneration == (try ServedComposition.load(from: RunLayout(directory: run.directory).servedURL)
            .ledgerHead) && after.servedGeneration?.sequenceNumber ?? 0 > 0)
        #expect(after.summary.contains("0 served now (served generation #\(after.servedGeneration?.sequenceNumber ?? -1))"))
        let deletion = try #require(after.deletions.first)
        #expect(deletion.requestID == "gdpr-1" && deletion.timestampMilliseconds == 1_700_000_000_000)
        #expect(deletion.receiptLedgerSequence == 2)
        #expect(try deletion.receipt.map { try JSONDecoder().decode(ForgetReceipt.self, from: Data($0.utf8)) } == receipt)
        // In JSON (audit --json, /v1/audit) the receipt is an object, and reads back the same.
        let json = try JSONEncoder().encode(deletion)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect((object["receipt"] as? [String: Any])?["format"] as? String == "lethe-receipt", "\(object)")
        #expect(try JSONDecoder().decode(ExampleAudit.Deletion.self, from: json) == deletion)
    }

    /// A retrain gives a rebuilt slice a new content hash. The stages that saw a deleted example
    /// in another slice of the same prefixes were keyed by the old hash: after the retrain the
    /// audit still finds them erased, not "never written".
    @Test func stagesErasedBeforeARetrainOfAnotherSliceStayErased() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let first = "ex-08"
        let location = try #require(run.plan.location(of: first))
        let other = try #require((0..<3).filter { $0 != location.slice }.lazy
            .compactMap { run.plan.members(shard: location.shard, slice: $0).first }.first)
        let forgetter = Forgetter(run: run.directory)
        _ = try forgetter.forget([ForgetRequest(target: .example(first))], nowMilliseconds: 1_700_000_000_000)
        _ = try forgetter.forget([ForgetRequest(target: .example(other))], nowMilliseconds: 1_700_000_000_001)
        let before = try ExampleAudit.audit(run: run.directory, id: first)
        #expect(before.stages.count == 6 && before.stages.allSatisfy { !$0.exists && $0.erased }, "\(before.summary)")
        _ = try run.retrainer().retrain(nowMilliseconds: { 1_700_000_000_002 })
        let after = try ExampleAudit.audit(run: run.directory, id: first)
        #expect(after.stages.count == 6 && after.stages.allSatisfy { !$0.exists && $0.erased && !$0.served },
                "\(after.summary)")
        #expect(Set(after.stages.map(\.file)) == Set(before.stages.map(\.file)))
    }

    /// One receipt covering several requests for the example (a log naming it twice, and by its
    /// group) is embedded once: with the first request; the others name it by sequence.
    @Test func aReceiptIsEmbeddedOncePerAudit() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let id = "ex-08"
        let group = try #require(run.dataset.examples.first { $0.id == id }?.group)
        let members = Dictionary(grouping: run.dataset.examples.filter { $0.group != nil }, by: { $0.group! })
            .mapValues { $0.map(\.id) }
        _ = try Forgetter(run: run.directory).forget(
            [ForgetRequest(target: .example(id)), ForgetRequest(target: .example(id)), ForgetRequest(target: .group(group))],
            groups: { members[$0] ?? [] }, nowMilliseconds: 1)
        let audit = try ExampleAudit.audit(run: run.directory, id: id)
        #expect(audit.deletions.count == 3)
        #expect(Set(audit.deletions.compactMap(\.receiptLedgerSequence)).count == 1)
        #expect(audit.deletions.map { $0.receipt != nil } == [true, false, false])
    }

    /// Stages that were never written (a shard not trained yet) are not reported as erased,
    /// before or after a forget of the example.
    @Test func stagesNeverWrittenAreNotReportedAsErased() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let id = "ex-08"
        let location = try #require(run.plan.location(of: id))
        try FileManager.default.removeItem(at: RunLayout(directory: run.directory).shardDirectory(location.shard))
        let before = try ExampleAudit.audit(run: run.directory, id: id)
        #expect(before.stages.count == 6 && before.stages.allSatisfy { !$0.exists && !$0.erased })
        #expect(before.summary.contains("6 never written"), "\(before.summary)")
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(id))], nowMilliseconds: 1_700_000_000_000)
        let after = try ExampleAudit.audit(run: run.directory, id: id)
        #expect(after.stages.allSatisfy { !$0.exists && !$0.erased } && !after.servedNow)
        #expect(after.summary.contains("0 erased, 6 never written"), "\(after.summary)")
    }

    /// A `full` run serves one model trained on every example: the audit lists it as served for
    /// any example not deleted before training, and verify checks that its file is there.
    @Test func aFullRunsModelIsAuditedAndVerified() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-full-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 6, to: data)
        let run = scratch.appendingPathComponent("run")
        try LetheProcess.succeed(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "1",
                                  "--run", run.path])
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let deleted = try #require(plan.members(shard: 0, slice: 0).first)
        let kept = try #require(plan.members(shard: 1, slice: 1).first)
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", deleted])
        try LetheProcess.succeed(["train", "--run", run.path, "--strategy", "full", "--epochs", "1", "--rank", "4",
                                  "--threads", "1", "--max-tokens", "16",
                                  "--model", LetheProcess.root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path])
        let audit = try ExampleAudit.audit(run: run, id: kept)
        #expect(audit.servedNow && audit.stages.count == 1 && audit.stages[0].exists, "\(audit.summary)")
        #expect(try ExampleAudit.audit(run: run, id: deleted).stages.isEmpty)
        #expect(try RunVerifier.verify(run: run).problems == [])
        #expect(try ForgettingStatus.load(run: run).deletionRateRemaining == 0, "a full run forgets nothing")
        let refused = try LetheProcess.run(["forget", "--run", run.path, "--id", kept])
        #expect(refused.status == 1 && refused.output.contains("cannot forget without a full retrain. Nothing was recorded"),
                "\(refused.output)")
        try FileManager.default.removeItem(at: run.appendingPathComponent(audit.stages[0].file))
        #expect(try RunVerifier.verify(run: run).problems.map(\.kind) == [.missingServedStage])
    }

    @Test func anEditedLedgerRowIsReported() throws {
        let run = try TinyRun()
        defer { run.remove() }
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example("ex-01"))], nowMilliseconds: 1)
        let ledgerPath = run.directory.appendingPathComponent("ledger.sqlite").path
        let db = try DatabaseQueue(path: ledgerPath)
        try db.write { db in
            try db.execute(sql: "DROP TRIGGER ledger_entries_no_update")
            try db.execute(sql: "UPDATE ledger_entries SET payload = replace(payload, 'ex-01', 'ex-02') WHERE seq = 1")
        }
        try db.close()
        let report = try RunVerifier.verify(run: run.directory)
        let problem = try #require(report.problems.first { $0.kind == .ledgerChain })
        #expect(problem.location == ledgerPath)
        #expect(problem.detail.contains("1"))
    }

    @Test func aModifiedTensorIsReported() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let prefix = Array(run.plan.sequences(of: 1)[0].prefix(2))
        let url = run.stageURL(shard: 1, prefix: prefix)
        let file = try HDF5File.open(url, mode: .readWrite)
        var (values, shape) = try file.readFloats(at: "head/weight")
        values[3] = values[3].nextUp  // one ulp in one weight
        try file.remove("head/weight")
        try file.write(values, shape: shape, at: "head/weight")
        try file.close()
        // The file's seal no longer matches: verify reports it unreadable, and nothing loads it.
        let unsealed = try RunVerifier.verify(run: run.directory)
        #expect(unsealed.problems.map(\.kind) == [.unreadableStage])
        #expect(unsealed.problems.first?.detail.contains("damaged or was modified") == true)
        // Sealed again, as a deliberate editor would: the recorded tensor hash catches it.
        try HDF5Seal.seal(fileAt: url)
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.problems.map(\.kind) == [.tensorHash])
        #expect(report.problems.first?.location == url.path)
    }

    @Test func aServedStageWithADeletedExampleIsReported() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let original = try Data(contentsOf: RunLayout(directory: run.directory).servedURL)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example("ex-30"))], nowMilliseconds: 1)
        let location = try #require(run.plan.location(of: "ex-30"))
        try original.write(to: RunLayout(directory: run.directory).servedURL)  // serve the old composition again
        let report = try RunVerifier.verify(run: run.directory)
        let served = report.problems.filter { $0.kind == .servedDeletedExample }
        #expect(served.count == 1)
        #expect(served.first?.location == "shard \(location.shard), sequence 0")
        #expect(served.first?.detail.contains("ex-30") == true)
        #expect(report.problems.contains { $0.kind == .missingServedStage })
        #expect(try ExampleAudit.audit(run: run.directory, id: "ex-30").servedNow)
    }

    @Test func stagesTrainedWithOtherSettingsThanTrainJSONAreReported() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        var settings = ToyStageTrainer.settings
        try settings.save(to: layout.settingsURL)
        #expect(try RunVerifier.verify(run: run.directory).problems == [])

        // Two processes that each wrote their own train.json would leave a run like this.
        settings.epochs = 2
        try settings.save(to: layout.settingsURL)
        let epochs = try RunVerifier.verify(run: run.directory)
        #expect(epochs.problems.count == epochs.stageFileCount && epochs.stageFileCount == 2 * 9)
        #expect(epochs.problems.allSatisfy { $0.kind == .runSettings && $0.location.hasSuffix(".h5") })
        #expect(epochs.problems.first?.detail.hasPrefix("trained with epochs 1, but train.json has 2") == true,
                "\(epochs.problems.first?.detail ?? "")")
        let (_, replayed) = try StageReplay.replay(run: run.directory, count: 1, seed: 0, runner: S3TRunner(
            layout: layout, settings: settings, trainer: ToyStageTrainer(), clock: { 0 }))
        #expect(replayed.first?.detail == "it was trained with epochs 1, the run's train.json has 2")

        settings.epochs = 1
        settings.precision = .bf16
        try settings.save(to: layout.settingsURL)
        let precision = try RunVerifier.verify(run: run.directory)
        #expect(precision.problems.count == 2 * 9)
        #expect(precision.problems.first?.detail.hasPrefix("trained in fp32, but train.json says bf16") == true)

        try Data("{".utf8).write(to: layout.settingsURL)
        let unreadable = try RunVerifier.verify(run: run.directory)
        #expect(unreadable.problems.map(\.kind) == [.runSettings])
        #expect(unreadable.problems.first?.location == layout.settingsURL.path)
    }
}
