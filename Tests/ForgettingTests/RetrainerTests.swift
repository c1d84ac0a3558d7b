import Audit
import Foundation
import Planning
import Store
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// `Retrainer` on tiny runs trained by `ToyStageTrainer`: forget, then retrain.
@Suite struct RetrainerTests {
    /// Bytes and modification time of every file under a directory, by name.
    static func snapshot(_ directory: URL) throws -> [String: (Data, Date)] {
        var result: [String: (Data, Date)] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            let url = directory.appendingPathComponent(name)
            let date = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date
            result[name] = (try Data(contentsOf: url), date ?? .distantPast)
        }
        return result
    }

    /// The first id of the plan in `shard`, slice `slice`, not yet tombstoned.
    static func member(_ plan: Plan, shard: Int, slice: Int, skip: Int = 0) -> String {
        Array(plan.members(shard: shard, slice: slice).filter { !plan.isTombstoned($0) })[skip]
    }

    /// Stored tensors of a stage file, as bit patterns.
    static func bits(_ url: URL) throws -> [String: [UInt32]] {
        let checkpoint = try StageCheckpoint.load(from: url)
        return Dictionary(uniqueKeysWithValues: checkpoint.storedTensors.map { ($0.name, $0.values.map(\.bitPattern)) })
    }

    @Test func retrainRestoresFullSequencesBitIdenticalToTrainingTheNewPlan() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let deleted = Self.member(run.plan, shard: 0, slice: 1)
        let untouchedBefore = try Self.snapshot(RunLayout(directory: run.directory).shardDirectory(1))
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        #expect(try run.served().entry(shard: 0)?.prefixLength ?? 0 < run.plan.sliceCount)
        #expect(try Retrainer.shardsNeedingRetrain(run: run.directory) == [0])

        let records = try run.retrainer().retrain(nowMilliseconds: { 2_000 })
        #expect(records.map(\.shard) == [0])
        let record = try #require(records.first)
        #expect(record.rebuiltSlices.map(\.slice) == [1])
        #expect(record.rebuiltSlices.first?.removedIDs == [deleted])
        // Sequences that start with slice 1 retrain from stage 1, the others from slice 1's position on.
        #expect(!record.trainedStages.isEmpty && record.reusedStageCount > 0)

        // The plan: new members and hashes for the rebuilt slice only.
        let plan = try run.currentPlan()
        #expect(plan.isExcluded(deleted) && plan.isTombstoned(deleted))
        #expect(!plan.currentMembers(shard: 0, slice: 1).contains(deleted))
        #expect(plan.sliceHash(shard: 0, slice: 1) == SliceHash.of(ids: plan.currentMembers(shard: 0, slice: 1)))
        #expect(plan.sliceHash(shard: 0, slice: 1) != run.plan.sliceHash(shard: 0, slice: 1))
        for (shard, slice) in [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)] {
            #expect(plan.sliceHash(shard: shard, slice: slice) == run.plan.sliceHash(shard: shard, slice: slice))
        }
        #expect(plan.hitSlices.isEmpty)

        // Every shard serves a full sequence, and every sequence of shard 0 is complete again.
        let served = try run.served()
        for entry in served.shards { #expect(entry.prefixLength == plan.sliceCount) }
        let fresh = ShardState(plan: plan, shard: 0, layout: RunLayout(directory: run.directory))
        #expect(try fresh.strayFiles().isEmpty)
        for sequence in plan.sequences(of: 0) {
            for length in 1...sequence.count {
                let url = RunLayout(directory: run.directory).stageURL(shard: 0, stage: length,
                                         key: fresh.key(ofPrefix: Array(sequence.prefix(length))))
                #expect(FileManager.default.fileExists(atPath: url.path), "sequence \(sequence) stage \(length)")
            }
        }
        // The unaffected shard's files are untouched, bytes and times.
        let untouchedAfter = try Self.snapshot(RunLayout(directory: run.directory).shardDirectory(1))
        #expect(untouchedAfter.keys.sorted() == untouchedBefore.keys.sorted())
        for (name, (data, date)) in untouchedBefore {
            #expect(untouchedAfter[name]?.0 == data && untouchedAfter[name]?.1 == date, "\(name)")
        }

        // Bit-identical to training the new plan from scratch in another directory.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-scratch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        try plan.save(to: Plan.url(inRun: scratch))
        // With its ledger: a plan holding tombstones beside no ledger is a run that lost it.
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: run.directory.path + "/ledger.sqlite" + suffix) {
            try FileManager.default.copyItem(atPath: run.directory.path + "/ledger.sqlite" + suffix,
                                             toPath: scratch.path + "/ledger.sqlite" + suffix)
        }
        try ToyStageTrainer.trainAll(plan, in: scratch)
        for entry in served.shards {
            for (index, key) in entry.stageKeys.enumerated() {
                let ours = try Self.bits(RunLayout(directory: run.directory).stageURL(shard: entry.shard, stage: index + 1, key: key))
                let theirs = try Self.bits(RunLayout(directory: scratch).stageURL(shard: entry.shard, stage: index + 1, key: key))
                #expect(ours == theirs, "shard \(entry.shard) stage \(index + 1)")
            }
        }

        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
        let ledger = try Ledger.open(at: Forgetter(run: run.directory).ledgerURL)
        defer { try? ledger.close() }
        #expect(try ledger.entries(forExampleID: deleted).map(\.kind) == [.request, .retrain])
        #expect(try ledger.verifyChain().isIntact)
        // The audit still names the stages that saw the example (by the slice's old hash): all erased.
        let audit = try ExampleAudit.audit(run: run.directory, id: deleted)
        #expect(audit.sliceHash == run.plan.sliceHash(shard: 0, slice: 1))
        #expect(!audit.stages.isEmpty && audit.stages.allSatisfy { !$0.exists && !$0.served } && !audit.servedNow)
        // An example the rebuilt slice kept was trained on twice: by the stages of its slice's old
        // hash (erased by the rebuild) and by those of its new hash (on disk). The audit names both.
        let kept = try #require(plan.currentMembers(shard: 0, slice: 1).first)
        let keptAudit = try ExampleAudit.audit(run: run.directory, id: kept)
        let erasedOld = keptAudit.stages.filter { $0.erased && !$0.exists }, onDisk = keptAudit.stages.filter(\.exists)
        #expect(!erasedOld.isEmpty && !onDisk.isEmpty, "\(keptAudit.summary)")
        #expect(Set(erasedOld.map(\.key)).isDisjoint(with: onDisk.map(\.key)))
        #expect(Set(erasedOld.map { "\($0.stage) \($0.slices)" }) == Set(onDisk.map { "\($0.stage) \($0.slices)" }),
                "each prefix of the kept example's slice in both versions: \(keptAudit.summary)")

        // Nothing left to do: a second retrain changes nothing.
        #expect(try run.retrainer().retrain(nowMilliseconds: { 3_000 }).isEmpty)
    }

    @Test func aForgetArrivingDuringRetrainingIsHonoured() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let first = Self.member(run.plan, shard: 0, slice: 2)
        let second = Self.member(run.plan, shard: 0, slice: 2, skip: 1)  // same, retrained slice
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(first))], nowMilliseconds: 1_000)

        let retrainer = run.retrainer()
        var injected = false
        retrainer.beforePublish = { _ in
            guard !injected else { return }
            injected = true
            _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(second))], nowMilliseconds: 1_500)
        }
        let records = try retrainer.retrain(maxPasses: 1, nowMilliseconds: { 2_000 })
        #expect(injected && records.count == 1)
        // The new stages of slice 2 saw `second`: the shard stays on prefixes before slice 2.
        var plan = try run.currentPlan()
        #expect(plan.isExcluded(first) && !plan.isExcluded(second))
        let entry = try #require(try run.served().entry(shard: 0))
        let sequence = plan.sequences(of: 0)[try #require(entry.sequence)]
        #expect(entry.prefixLength < plan.sliceCount)
        #expect(!sequence.prefix(entry.prefixLength).contains(2))
        #expect(records[0].prefixLengths == plan.sequences(of: 0).map { $0.firstIndex(of: 2) ?? 3 })
        var report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")

        // The next retrain rebuilds again; with several passes one call does both.
        let again = try run.retrainer().retrain(nowMilliseconds: { 3_000 })
        #expect(again.count == 1 && again[0].rebuiltSlices.first?.removedIDs == [second])
        plan = try run.currentPlan()
        #expect(plan.isExcluded(second) && plan.hitSlices.isEmpty)
        #expect(try run.served().entry(shard: 0)?.prefixLength == plan.sliceCount)
        report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    /// A forget arriving while stages train withholds the later stages of its slice and erases
    /// a finished one that saw it: the record counts as reused only the stages the shard still
    /// keeps that this pass did not train (withheld stages are neither).
    @Test func theRecordOfAPassAForgetInterruptedCountsOnlyKeptStagesAsReused() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let first = Self.member(run.plan, shard: 0, slice: 1)
        let second = Self.member(run.plan, shard: 0, slice: 2)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(first))], nowMilliseconds: 1_000)
        var injected = false, withheld = 0
        let records = try run.retrainer().retrain(maxPasses: 1, nowMilliseconds: { 2_000 }) { event in
            guard case .training(let event) = event else { return }
            if case .stageWithheld = event { withheld += 1 }
            guard case .stageFinished = event, !injected else { return }
            injected = true
            _ = try? Forgetter(run: run.directory).forget([ForgetRequest(target: .example(second))], nowMilliseconds: 1_500)
        }
        let record = try #require(records.first)
        #expect(injected && withheld > 0 && !record.fullLength)
        let kept = RunLayout(directory: run.directory).stageFileNames(shard: 0)
        let keptUntrained = kept.filter { name in !record.trainedStages.contains { name.contains($0) } }
        #expect(record.reusedStageCount == keptUntrained.count, "\(record.summary); on disk: \(kept)")
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    /// Stages a cluster's tasks trained before the coordinator publishes (`trainRebuiltStages`)
    /// are recorded as trained by the retrain, not as reused.
    @Test func stagesTrainedByTasksAreRecordedAsTrained() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let deleted = Self.member(run.plan, shard: 0, slice: 1)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        _ = try run.retrainer().trainRebuiltStages(shard: 0)
        let record = try #require(try run.retrainer().retrain(nowMilliseconds: { 2_000 }).first)
        // Every prefix holding slice 1 was retrained; the others were kept.
        let prefixes = Set(run.plan.sequences(of: 0).flatMap { sequence in (1...3).map { Array(sequence.prefix($0)) } })
        let rebuilt = prefixes.filter { $0.contains(1) }.count
        #expect(record.trainedStages.count == rebuilt && record.reusedStageCount == prefixes.count - rebuilt,
                "\(record.summary)")
        #expect(Set(record.trainedStages).count == rebuilt)
    }

    @Test func severalPassesAbsorbForgetsThatArriveMeanwhile() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let first = Self.member(run.plan, shard: 1, slice: 0)
        let second = Self.member(run.plan, shard: 1, slice: 1)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(first))], nowMilliseconds: 1_000)
        let retrainer = run.retrainer()
        var calls = 0
        retrainer.beforePublish = { _ in
            calls += 1
            if calls == 1 {
                _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(second))], nowMilliseconds: 1_500)
            }
        }
        let records = try retrainer.retrain(nowMilliseconds: { 2_000 })
        #expect(records.map(\.round) == [1, 2])
        #expect(records.last?.prefixLengths == [3, 3, 3])
        let plan = try run.currentPlan()
        #expect(plan.excludedIDs == [first, second].sorted(by: UTF8Order.precedes))
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    @Test func aRetrainStoppedBeforePublishingLeavesTheRunValidAndARerunCompletesIt() throws {
        struct Stop: Error {}
        let run = try TinyRun.trained()
        defer { run.remove() }
        let deleted = Self.member(run.plan, shard: 0, slice: 0)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        let servedBefore = try run.served()
        let retrainer = run.retrainer()
        retrainer.beforePublish = { _ in throw Stop() }
        #expect(throws: Stop.self) { try retrainer.retrain(nowMilliseconds: { 2_000 }) }
        #expect(try run.served() == servedBefore)
        #expect(try !run.currentPlan().isExcluded(deleted))
        #expect(try RunVerifier.verify(run: run.directory).isClean)

        let records = try run.retrainer().retrain(nowMilliseconds: { 3_000 })
        // The stopped pass trained them all; the record of the retrain that publishes them lists
        // them (the 6 prefixes holding slice 0) as trained, the other 3 as reused.
        #expect(records.first?.trainedStages.count == 6 && records.first?.reusedStageCount == 3)
        #expect(try run.served().entry(shard: 0)?.prefixLength == run.plan.sliceCount)
        #expect(try RunVerifier.verify(run: run.directory).isClean)
    }

    /// A pass killed between its plan rename and its composition: the old truncated prefix is
    /// still served, the ledger already holds the pass's record (so the audit of an example the
    /// rebuilt slice kept still finds the stages of the slice's old hash), and a re-run completes it.
    @Test func aRetrainStoppedBetweenPlanAndCompositionIsCompletedByARerun() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let deleted = Self.member(run.plan, shard: 1, slice: 2), kept = Self.member(run.plan, shard: 1, slice: 2, skip: 1)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        let keptBefore = try ExampleAudit.audit(run: run.directory, id: kept)
        let oldKeys = Set(keptBefore.stages.filter(\.erased).map(\.key))
        #expect(!oldKeys.isEmpty, "\(keptBefore.summary)")
        let retrainer = run.retrainer()
        struct Killed: Error {}
        retrainer.afterPlanSave = { _ in throw Killed() }
        #expect(throws: Killed.self) { try retrainer.retrain(nowMilliseconds: { 2_000 }) }
        #expect(try run.currentPlan().isExcluded(deleted))
        // What is served is the old truncated prefix: nothing with the deleted example.
        let entry = try #require(try run.served().entry(shard: 1))
        let sequence = run.plan.sequences(of: 1)[try #require(entry.sequence)]
        #expect(!sequence.prefix(entry.prefixLength).contains(2))
        #expect(try Retrainer.shardsNeedingRetrain(run: run.directory) == [1])
        let ledger = try Ledger.open(at: Forgetter(run: run.directory).ledgerURL)
        defer { try? ledger.close() }
        let recorded = try ledger.entries(forExampleID: deleted).filter { $0.kind == .retrain }
        #expect(try recorded.map { try $0.decodePayload(as: RetrainRecord.self).rebuiltSlices.map(\.slice) } == [[2]])
        let keptMidway = try ExampleAudit.audit(run: run.directory, id: kept)
        #expect(oldKeys.isSubset(of: keptMidway.stages.map(\.key)), "\(keptMidway.summary)")
        #expect(keptMidway.stages.contains { $0.exists && !oldKeys.contains($0.key) }, "the pass's new stages are on disk")

        let records = try run.retrainer().retrain(nowMilliseconds: { 3_000 })
        #expect(records.count == 1 && records[0].trainedStages.isEmpty && records[0].rebuiltSlices.isEmpty)
        #expect(try run.served().entry(shard: 1)?.prefixLength == run.plan.sliceCount)
        let keptAfter = try ExampleAudit.audit(run: run.directory, id: kept)
        #expect(oldKeys.isSubset(of: keptAfter.stages.map(\.key)) && keptAfter.servedNow, "\(keptAfter.summary)")
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    /// A pass killed before its publish step leaves stage files on a rebuilt version of the
    /// slice that no record names; an example that slice kept was trained on by each of them,
    /// on disk and once a forget of another example erased them.
    @Test func theAuditOfAKeptExampleFindsTheFilesOfAPassThatNeverPublished() throws {
        struct Stop: Error {}
        let run = try TinyRun.trained()
        defer { run.remove() }
        let deleted = Self.member(run.plan, shard: 0, slice: 0), kept = Self.member(run.plan, shard: 0, slice: 0, skip: 1)
        let other = Self.member(run.plan, shard: 0, slice: 0, skip: 2)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        let before = RunLayout(directory: run.directory).stageFileNames(shard: 0)
        let retrainer = run.retrainer()
        retrainer.beforePublish = { _ in throw Stop() }
        #expect(throws: Stop.self) { try retrainer.retrain(nowMilliseconds: { 2_000 }) }
        // Every file of shard 0 on a prefix holding slice 0 trained on `kept`, whatever its version.
        let layout = RunLayout(directory: run.directory)
        let holding = try Set(layout.stageFileNames(shard: 0).filter { name in
            try StageCheckpoint.load(from: layout.shardDirectory(0).appendingPathComponent(name)).lineage.prefixSlices.contains(0)
        }.map { "stages/shard-0/" + $0 })
        let audit = try ExampleAudit.audit(run: run.directory, id: kept)
        #expect(Set(audit.stages.filter(\.exists).map(\.file)) == holding, "\(audit.summary)")
        #expect(!holding.subtracting(before.map { "stages/shard-0/" + $0 }).isEmpty, "the pass trained files of its own")

        // A forget of another member erases the pass's files (they hold slice 0): still listed, erased.
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(other))], nowMilliseconds: 3_000)
        let after = try ExampleAudit.audit(run: run.directory, id: kept)
        let listed = Set(after.stages.map(\.file))
        #expect(holding.isSubset(of: listed), "\(holding.subtracting(listed)) missing: \(after.summary)")
        #expect(after.stages.filter { holding.contains($0.file) }.allSatisfy { $0.erased && !$0.exists })
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.isClean, "\(report.problems)")
    }

    /// The temporary file of a stage whose trainer died before renaming it may hold a complete
    /// stage on data since deleted: removed by the next forget or recovery, but only while no
    /// trainer holds the shard's training lock.
    @Test func aDeadTrainersUnfinishedStageFileIsRemoved() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let real = try #require(layout.stageFileNames(shard: 0).first)
        let temporary = layout.shardDirectory(0).appendingPathComponent("." + real + ".tmp-0badc0de")
        try FileManager.default.copyItem(at: layout.shardDirectory(0).appendingPathComponent(real), to: temporary)
        // A live trainer's file stays.
        try FileLock.withExclusiveLock(layout.trainingLockURL(shard: 0)) {
            _ = try RunGuard(run: run.directory, nowMilliseconds: { 1_000 }).recover()
        }
        #expect(FileManager.default.fileExists(atPath: temporary.path))
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(Self.member(run.plan, shard: 1, slice: 0)))],
                                                     nowMilliseconds: 2_000)
        #expect(!FileManager.default.fileExists(atPath: temporary.path))
        try FileManager.default.copyItem(at: layout.shardDirectory(0).appendingPathComponent(real), to: temporary)
        _ = try RunGuard(run: run.directory, nowMilliseconds: { 3_000 }).recover()
        #expect(!FileManager.default.fileExists(atPath: temporary.path))
    }

    @Test func sisaRunsRetrainTheirSingleSequence() throws {
        let run = try TinyRun.trained(budget: 1, strategy: .sisa)
        defer { run.remove() }
        let deleted = Self.member(run.plan, shard: 0, slice: run.plan.sequences(of: 0)[0][1])
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        #expect(try run.served().entry(shard: 0)?.prefixLength == 1)
        let retrainer = Retrainer(run: run.directory, runner: ToyStageTrainer.runner(run.directory, strategy: .sisa),
                                  layerCount: 6)
        let records = try retrainer.retrain(nowMilliseconds: { 2_000 })
        #expect(records.first?.trainedStages.count == 2 && records.first?.reusedStageCount == 1)
        #expect(try run.served().entry(shard: 0)?.prefixLength == 3)
        #expect(try RunVerifier.verify(run: run.directory).isClean)
    }

    /// A slice whose every example is deleted cannot be rebuilt: the retrain refuses with the
    /// one thing to do (plan a new run), not with advice to run it again.
    @Test func aSliceWithEveryExampleDeletedIsRefusedWithWhatToDo() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let members = run.plan.members(shard: 0, slice: 1)
        _ = try Forgetter(run: run.directory).forget(members.map { ForgetRequest(target: .example($0)) }, nowMilliseconds: 1_000)
        let retrainer = Retrainer(run: run.directory, runner: ToyStageTrainer.runner(run.directory), layerCount: 6)
        #expect(throws: PlanningError.sliceEmptied(shard: 0, slice: 1)) {
            _ = try retrainer.retrain(shards: [0], nowMilliseconds: { 2_000 })
        }
        let status = try ForgettingStatus.load(run: run.directory)
        #expect(status.emptiedSlices == [[0, 1]] && status.sequencesToRetrain.allSatisfy { $0[0] != 0 })
    }

    /// A shard that cannot be retrained does not hold up the others: they are retrained and
    /// published, then the refusal names the shard that was not.
    @Test func aShardWithAnEmptiedSliceDoesNotStopTheOthers() throws {
        let run = try TinyRun.trained()
        defer { run.remove() }
        let emptied = run.plan.members(shard: 0, slice: 1), other = Self.member(run.plan, shard: 1, slice: 0)
        _ = try Forgetter(run: run.directory).forget((emptied + [other]).map { ForgetRequest(target: .example($0)) },
                                                     nowMilliseconds: 1_000)
        var published: [Int] = []
        #expect(throws: ForgettingError.retrainsRefused(reasons: ["\(PlanningError.sliceEmptied(shard: 0, slice: 1))"],
                                                        retrained: [1])) {
            _ = try run.retrainer().retrain(nowMilliseconds: { 2_000 }) { event in
                if case .published(let record) = event { published.append(record.shard) }
            }
        }
        #expect(published == [1])
        let plan = try run.currentPlan()
        let shard1 = try run.served().entry(shard: 1)
        #expect(plan.isExcluded(other) && shard1?.prefixLength == plan.sliceCount)
        #expect(try Retrainer.shardsNeedingRetrain(run: run.directory) == [0])
    }
}
