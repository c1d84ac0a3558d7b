import Audit
import Foundation
import Planning
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// The served models' version is the composition's generation (its ledger head): every publish
/// that changes a served model moves it, and one that changes nothing leaves the file alone.
@Suite struct PublishVersionTests {
    @Test func everyPublishThatChangesTheModelsMovesTheGeneration() throws {
        let run = try TinyRun(stageFiles: false)
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let runner = ToyStageTrainer.runner(run.directory)
        let guarded = RunGuard(run: run.directory, nowMilliseconds: { 1_234 })
        func train(_ shard: Int) throws -> ServedComposition {
            let schedule = try StageSchedule(
                shard: shard, sequences: run.plan.sequences(of: shard),
                sliceHashes: (0..<run.plan.sliceCount).map { run.plan.sliceHash(shard: shard, slice: $0) },
                layerCount: 2 * run.plan.sliceCount, layersPerBlock: 2, strategy: .s3t)
            return try #require(try guarded.trainAndPublish(schedule, runner: runner,
                                                            members: { run.plan.currentMembers(shard: shard, slice: $0) },
                                                            gate: guarded.stageGate(for: run.plan), events: { _ in }).composition)
        }
        let first = try train(0)
        #expect(first.ledgerHead.sequenceNumber == 1 && first.liveShards.map(\.shard) == [0])
        let second = try train(1)
        #expect(second.ledgerHead.sequenceNumber == 2 && second.liveShards.map(\.shard) == [0, 1])

        let ledger = try Ledger.open(at: layout.ledgerURL)
        defer { try? ledger.close() }
        let entries = try ledger.entries()
        #expect(entries.map(\.kind) == [.publish, .publish])
        // Each entry names the shard it changed, with what that shard serves now.
        let records = try entries.map { try $0.decodePayload(as: PublishRecord.self) }
        #expect(records.map { $0.shards.map(\.shard) } == [[0], [1]])
        #expect(records[1].shards == [try #require(second.entry(shard: 1))])
        #expect(try ledger.entries(matching: .shard(1)).map(\.sequenceNumber) == [2])
        #expect(entries.allSatisfy { $0.timestampMilliseconds == 1_234 })
        #expect(try ledger.verifyChain().isIntact)
        #expect(second.ledgerHead == LedgerAnchor(sequenceNumber: 2, hash: entries[1].hash))

        // Publishing again changes no model: no entry, the file untouched, the same version.
        let bytes = try Data(contentsOf: layout.servedURL)
        let again = try guarded.publish(strategy: .s3t, shards: [0, 1])
        let bytesAfter = try Data(contentsOf: layout.servedURL)
        #expect(again == second && bytesAfter == bytes)
        #expect(try ledger.entries().count == 2)

        // A forget moves it with its request, a retrain with its record (written before the file).
        let deleted = try #require(run.plan.members(shard: 0, slice: 2).first)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 2_000)
        #expect(try run.served().ledgerHead.sequenceNumber == 3)
        _ = try run.retrainer().retrain(nowMilliseconds: { 3_000 })
        let retrained = try run.served()
        let last = try #require(try ledger.entries().last)
        #expect(last.kind == .retrain && retrained.ledgerHead == LedgerAnchor(sequenceNumber: last.sequenceNumber, hash: last.hash))
        #expect(retrained.entry(shard: 0)?.prefixLength == run.plan.sliceCount)
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    /// Recovery that writes served.json again without a new request (a plan.h5 restored from
    /// before a retrain, a served.json restored from before a forget) gives the composition a
    /// `publish` entry of its own: never the number an earlier composition with other models had.
    @Test func aRecoveryRepublishGetsAGenerationOfItsOwn() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let planBackup = try Data(contentsOf: layout.planURL)
        let deleted = try #require(run.plan.members(shard: 0, slice: 0).first)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 2_000)
        _ = try run.retrainer().retrain(nowMilliseconds: { 3_000 })
        let retrained = try run.served()
        try planBackup.write(to: layout.planURL)
        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 4_000 }).recover()
        #expect(recovery.tombstonesReapplied)
        let recovered = try run.served()
        #expect(recovered.shards != retrained.shards, "the restored plan's slices serve other stages")
        let ledger = try Ledger.open(at: layout.ledgerURL)
        defer { try? ledger.close() }
        let quoted = try #require(try ledger.entry(at: recovered.ledgerHead.sequenceNumber))
        #expect(quoted.kind == .publish && recovered.ledgerHead.sequenceNumber > retrained.ledgerHead.sequenceNumber)
        #expect(try quoted.decodePayload(as: PublishRecord.self).cause == .recovery)

        // served.json put back from before a forget: republished at a new entry, not at the receipt's.
        let servedBackup = try Data(contentsOf: layout.servedURL)
        let other = try #require(run.plan.members(shard: 1, slice: 1).first)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(other))], nowMilliseconds: 5_000)
        let afterForget = try run.served()
        try servedBackup.write(to: layout.servedURL)
        let second = try RunGuard(run: run.directory, nowMilliseconds: { 6_000 }).recover()
        let lastRequest = try #require(try ledger.lastSequenceNumber(ofKind: .request))
        #expect(second.republishedBecause == .predatesRequest(lastRequest))
        let republished = try run.served()
        let entry = try #require(try ledger.entry(at: republished.ledgerHead.sequenceNumber))
        #expect(entry.kind == .publish && republished.ledgerHead.sequenceNumber > afterForget.ledgerHead.sequenceNumber)
        #expect(republished.shards == afterForget.shards)
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    /// served.json or plan.h5 put back from between a forget and its retrain: recovery sees that
    /// the composition is not what the plan derives and publishes it again, at a new generation.
    @Test func aFileRestoredFromBeforeARetrainIsRepublishedForward() throws {
        for restored in ["served.json", "plan.h5"] {
            let run = try TinyRun.trained()
            defer { run.remove() }
            let layout = RunLayout(directory: run.directory)
            let deleted = try #require(run.plan.members(shard: 0, slice: 0).first)
            _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 2_000)
            let file = run.directory.appendingPathComponent(restored)
            let backup = try Data(contentsOf: file)
            _ = try run.retrainer().retrain(nowMilliseconds: { 3_000 })
            let retrained = try run.served()
            try backup.write(to: file)
            let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 4_000 }).recover()
            #expect(recovery.republishedBecause == .differsFromPlan, "\(restored)")
            let republished = try run.served()
            #expect(republished.ledgerHead.sequenceNumber > retrained.ledgerHead.sequenceNumber, "\(restored)")
            let ledger = try Ledger.openForReading(at: layout.ledgerURL)
            #expect(try ledger.entry(at: republished.ledgerHead.sequenceNumber)?.kind == .publish)
            try ledger.close()
            // The composition serves no stage that saw the deleted example either way.
            #expect(try !ExampleAudit.audit(run: run.directory, id: deleted).servedNow, "\(restored)")
            if restored == "served.json" {
                #expect(republished.shards == retrained.shards)
                let report = try RunVerifier.verify(run: run.directory)
                #expect(report.isClean, "\(report.problems)")
            }
        }
    }
}
