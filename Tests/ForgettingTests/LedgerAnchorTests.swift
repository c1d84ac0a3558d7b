import Foundation
import GRDB
import Planning
import RunFixtures
import Testing
import Training
@testable import Audit
@testable import Forgetting

/// The ledger is anchored: served.json and receipts quote its head, so deleting the ledger,
/// cutting its last rows or replacing it is caught by `verify` and refused by every command
/// that would go on from it.
@Suite struct LedgerAnchorTests {
    /// A run that forgot two examples in two operations (ledger: request, receipt, request, receipt).
    static func forgottenRun(_ label: String = #function, second: String = "ex-20") throws -> TinyRun {
        let run = try TinyRun(label)
        let forgetter = Forgetter(run: run.directory)
        _ = try forgetter.forget([ForgetRequest(target: .example("ex-03"))], nowMilliseconds: 1)
        _ = try forgetter.forget([ForgetRequest(target: .example(second))], nowMilliseconds: 2)
        try forgetter.close()
        return run
    }

    /// An older copy of the plan put back (a backup from before the first forget, or a tombstone
    /// log cut short) holds fewer tombstones than the last receipt recorded. The next command's
    /// recovery applies every request again: no deleted example is trained on, published or
    /// served from that plan.
    @Test(arguments: ["backup", "log"])
    func aPlanThatLostTombstonesGetsEveryDeletionAgain(_ how: String) throws {
        let run = try TinyRun("restored-\(how)")
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let backup = try Data(contentsOf: layout.planURL)  // before any forget: no tombstone log
        let forgetter = Forgetter(run: run.directory)
        _ = try forgetter.forget([ForgetRequest(target: .example("ex-03"))], nowMilliseconds: 1)
        _ = try forgetter.forget([ForgetRequest(target: .example("ex-20"))], nowMilliseconds: 2)
        try forgetter.close()
        let log = run.directory.appendingPathComponent("plan.tombstones")
        if how == "backup" {
            try backup.write(to: layout.planURL)
        } else {
            let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            try (lines.prefix(1).joined(separator: "\n") + "\n").write(to: log, atomically: true, encoding: .utf8)
        }
        #expect(try Plan.load(from: layout.planURL).tombstones.count < 2, "the damage took")
        #expect(try Self.kinds(run).contains(.missingTombstone))

        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        #expect(recovery.completedRequestCount == 2)
        #expect(try Plan.load(from: layout.planURL).tombstones == ["ex-03", "ex-20"])
        #expect(try RunVerifier.verify(run: run.directory).problems == [])
        for id in ["ex-03", "ex-20"] { #expect(try !ExampleAudit.audit(run: run.directory, id: id).servedNow) }
        // Once applied again, nothing more to do.
        #expect(try RunGuard(run: run.directory, nowMilliseconds: { 4 }).recover().didSomething == false)
    }

    /// A tombstone log with one id changed into another (a flipped character: `ex-20` becomes
    /// `ex-21`) holds as many tombstones as the last receipt recorded, but not the same ones.
    /// The receipt's digest of them tells: the next command applies every request again, so
    /// `ex-20` is deleted again before anything trains or serves; `ex-21`, which no request
    /// named, stays tombstoned (tombstones are never removed) and verify names it.
    @Test func aTombstoneLogWithAChangedIDGetsEveryDeletionAgain() throws {
        let run = try Self.forgottenRun()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let log = run.directory.appendingPathComponent("plan.tombstones")
        let text = try String(contentsOf: log, encoding: .utf8)
        try #require(text.contains("ex-20"))
        try text.replacingOccurrences(of: "ex-20", with: "ex-21").write(to: log, atomically: false, encoding: .utf8)
        let damaged = try Plan.load(from: layout.planURL).tombstones
        #expect(damaged.count == 2 && !damaged.contains("ex-20"), "the damage took: \(damaged)")

        let unfinished = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).unfinishedWork()
        #expect(unfinished.contains { $0.contains("not those the last receipt recorded") }, "\(unfinished)")
        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        #expect(recovery.completedRequestCount == 2 && recovery.tombstonesReapplied)
        #expect(Set(try Plan.load(from: layout.planURL).tombstones) == ["ex-03", "ex-20", "ex-21"])
        for id in ["ex-03", "ex-20"] { #expect(try !ExampleAudit.audit(run: run.directory, id: id).servedNow) }
        #expect(try Self.kinds(run) == [.unrecordedTombstone])
        #expect(try RunGuard(run: run.directory, nowMilliseconds: { 4 }).recover().didSomething == false)
    }

    /// A forget that died after its tombstone was durable and before its receipt leaves one
    /// tombstone more than the receipt counted, wherever it sorts: recovery completes that
    /// forget alone, and does not take the plan for a changed one.
    @Test func aForgetThatDiedBeforeItsReceiptIsCompletedNotTakenForDamage() throws {
        let run = try TinyRun("died-before-receipt")
        defer { run.remove() }
        let forgetter = Forgetter(run: run.directory)
        _ = try forgetter.forget([ForgetRequest(target: .example("ex-20"))], nowMilliseconds: 1)
        try forgetter.close()
        // ex-03 sorts before ex-20.
        try Self.dieBeforeReceipt(run, requesting: ["ex-03"], tombstoning: ["ex-03"])
        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        #expect(recovery.completedRequestCount == 1 && !recovery.tombstonesReapplied, "\(recovery)")
        #expect(try Self.kinds(run) == [])
    }

    /// The same with a request that repeats a deletion (ex-20 again, with ex-03): its examples
    /// hold one tombstone more than it added, and the receipt's set is found among the choices.
    @Test func aDiedForgetRepeatingADeletionIsNotTakenForDamage() throws {
        let run = try Self.forgottenRun(second: "ex-20")
        defer { run.remove() }
        try Self.dieBeforeReceipt(run, requesting: ["ex-20", "ex-03", "ex-31"], tombstoning: ["ex-31"])
        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        #expect(recovery.completedRequestCount == 1 && !recovery.tombstonesReapplied, "\(recovery)")
        #expect(try Self.kinds(run) == [])
    }

    /// A tombstone log changed (`ex-20` → `ex-21`) while a forget was unfinished holds one
    /// tombstone more than the last receipt counted; the unfinished forget's examples explain the
    /// extra one but not the changed one, so every request is applied again and ex-20 is deleted
    /// before anything trains or serves.
    @Test func aChangedTombstoneLogBesideAnUnfinishedForgetGetsEveryDeletionAgain() throws {
        let run = try Self.forgottenRun()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        try Self.dieBeforeReceipt(run, requesting: ["ex-31"], tombstoning: ["ex-31"])
        let log = run.directory.appendingPathComponent("plan.tombstones")
        let text = try String(contentsOf: log, encoding: .utf8)
        try text.replacingOccurrences(of: "ex-20", with: "ex-21").write(to: log, atomically: false, encoding: .utf8)
        #expect(try !Plan.load(from: layout.planURL).tombstones.contains("ex-20"), "the damage took")

        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        #expect(recovery.completedRequestCount == 3 && recovery.tombstonesReapplied, "\(recovery)")
        #expect(Set(try Plan.load(from: layout.planURL).tombstones) == ["ex-03", "ex-20", "ex-21", "ex-31"])
        for id in ["ex-03", "ex-20", "ex-31"] { #expect(try !ExampleAudit.audit(run: run.directory, id: id).servedNow) }
        #expect(try Self.kinds(run) == [.unrecordedTombstone])
    }

    /// A died forget that repeats many deletions (a log run again with two new ids) beside a
    /// changed tombstone log: which of its ids were tombstoned before is read from the earlier
    /// requests, not guessed, so the damage is found however many ids the log repeats, and the
    /// same log without damage is completed alone.
    @Test(arguments: [false, true])
    func aDiedForgetRepeatingManyDeletionsIsCheckedExactly(_ damaged: Bool) throws {
        let run = try TinyRun("repeats-\(damaged)")
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let earlier = (0..<12).map { String(format: "ex-%02d", $0) }
        let forgetter = Forgetter(run: run.directory)
        // The first forget writes its tombstone into plan.h5; the next ones append to the log.
        _ = try forgetter.forget([ForgetRequest(target: .example("ex-35"))], nowMilliseconds: 1)
        _ = try forgetter.forget(earlier.map { ForgetRequest(target: .example($0)) }, nowMilliseconds: 2)
        try forgetter.close()
        try Self.dieBeforeReceipt(run, requesting: earlier + ["ex-30", "ex-31"], tombstoning: ["ex-30", "ex-31"])
        if damaged {
            let log = run.directory.appendingPathComponent("plan.tombstones")
            let text = try String(contentsOf: log, encoding: .utf8)
            try #require(text.contains("ex-05\n"), "\(text)")
            try text.replacingOccurrences(of: "ex-05\n", with: "ex-25\n").write(to: log, atomically: false, encoding: .utf8)
            #expect(try !Plan.load(from: layout.planURL).tombstones.contains("ex-05"), "the damage took")
        }
        let recovery = try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        #expect(recovery.tombstonesReapplied == damaged, "\(recovery)")
        #expect(try Plan.load(from: layout.planURL).tombstones.contains("ex-05"))
        #expect(try Self.kinds(run) == (damaged ? [.unrecordedTombstone] : []))
    }

    /// The state a forget leaves when it dies after its request is in the ledger and `tombstoning`
    /// is durable in the tombstone log, before its receipt.
    static func dieBeforeReceipt(_ run: TinyRun, requesting examples: [String], tombstoning: [String]) throws {
        let ledger = try Ledger.open(at: RunLayout(directory: run.directory).ledgerURL)
        _ = try ledger.append(LedgerDraft(kind: .request, timestampMilliseconds: 2,
                                          payload: RequestRecord(requestID: "r-died", id: nil, group: "died", timestamp: nil,
                                                                 examples: examples).json,
                                          keys: [.requestID("r-died")] + examples.map { .exampleID($0) }))
        try ledger.close()
        let log = try FileHandle(forWritingTo: run.directory.appendingPathComponent("plan.tombstones"))
        try log.seekToEnd()
        try log.write(contentsOf: Data(tombstoning.map { $0 + "\n" }.joined().utf8))
        try log.close()
    }

    static func kinds(_ run: TinyRun) throws -> Set<VerificationProblem.Kind> {
        Set(try RunVerifier.verify(run: run.directory).problems.map(\.kind))
    }

    @Test func theCompositionAndEveryReceiptQuoteTheLedgerHead() throws {
        let run = try Self.forgottenRun()
        defer { run.remove() }
        let ledger = try Ledger.open(at: RunLayout(directory: run.directory).ledgerURL)
        defer { try? ledger.close() }
        let served = try run.served()
        // The second request is entry #3; its receipt (#4) follows the publish.
        let request = try #require(try ledger.entry(at: 3))
        #expect(request.kind == .request)
        #expect(served.ledgerHead == LedgerAnchor(sequenceNumber: 3, hash: request.hash))
        for receipt in try ledger.entries(matching: Forgetter.receiptKey) {
            let coverage = try receipt.decodePayload(as: ReceiptCoverage.self)
            #expect(try ledger.entry(at: coverage.ledgerSequence)?.hash == coverage.ledgerHash)
        }
        #expect(try Self.kinds(run) == [])
    }

    @Test func aDeletedLedgerIsReportedAndRefused() throws {
        let run = try Self.forgottenRun()
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: layout.ledgerURL.path + suffix)
        }
        // One problem, the missing ledger, with what shows it existed: not each tombstone as
        // "unrecorded", which would blame the plan.
        let report = try RunVerifier.verify(run: run.directory)
        #expect(report.problems.map(\.kind) == [.ledgerMissing], "\(report.problems)")
        #expect(report.problems.first?.detail.contains("served.json reflects ledger entry #3, and the plan holds 2 tombstones") == true,
                "\(report.problems)")
        #expect(throws: ForgettingError.self) { try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover() }
        // A forget does not start a new, empty history either, nor create a file in its place
        // (verify would then see a replaced ledger rather than a missing one), and says so.
        #expect(throws: ForgettingError.ledgerTampered(file: layout.ledgerURL.path,
                                                       reason: "the ledger is missing, but served.json reflects its entry #3")) {
            try Forgetter(run: run.directory).forget([ForgetRequest(target: .example("ex-30"))], nowMilliseconds: 3)
        }
        #expect(!FileManager.default.fileExists(atPath: layout.ledgerURL.path))
        #expect(try Self.kinds(run).contains(.ledgerMissing))
        // Without served.json too, the plan's tombstones still show that a ledger existed.
        try FileManager.default.removeItem(at: layout.servedURL)
        let bare = try RunVerifier.verify(run: run.directory)
        #expect(bare.problems.contains { $0.kind == .ledgerMissing && $0.detail.contains("the plan holds 2 tombstones") },
                "\(bare.problems)")
        #expect(!bare.problems.contains { $0.kind == .unrecordedTombstone }, "\(bare.problems)")
    }

    @Test func cuttingTheLastRowsIsReportedAndRefused() throws {
        let run = try Self.forgottenRun()
        defer { run.remove() }
        try Self.tamper(run, "DELETE FROM ledger_entries WHERE seq >= 3; DELETE FROM ledger_keys WHERE seq >= 3")
        // The chain that is left is intact: only the anchors show what is missing.
        let report = try RunVerifier.verify(run: run.directory)
        #expect(!report.problems.contains { $0.kind == .ledgerChain })
        #expect(Set(report.problems.map(\.kind)).isSuperset(of: [.servedHead, .unrecordedTombstone]))
        #expect(report.problems.contains { $0.kind == .unrecordedTombstone && $0.detail.contains("ex-20") })
        #expect {
            try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover()
        } throws: { error in
            guard case ForgettingError.ledgerTampered(_, let reason) = error else { return false }
            return reason.contains("#3")
        }
    }

    @Test func aReplacedLedgerOfTheSameLengthIsReported() throws {
        let run = try Self.forgottenRun()
        defer { run.remove() }
        // The same first request, then another example: entry #3 differs, the length does not.
        let other = try Self.forgottenRun("other", second: "ex-21")
        defer { other.remove() }
        let layout = RunLayout(directory: run.directory)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: layout.ledgerURL.path + suffix) }
        // The database with its WAL, where committed entries may still be.
        let source = RunLayout(directory: other.directory).ledgerURL.path
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: source + suffix) {
            try FileManager.default.copyItem(atPath: source + suffix, toPath: layout.ledgerURL.path + suffix)
        }
        #expect(try Self.kinds(run).contains(.servedHead))
        #expect(throws: ForgettingError.self) { try RunGuard(run: run.directory, nowMilliseconds: { 3 }).recover() }
    }

    /// Runs SQL on the run's ledger with its append-only triggers dropped, as an attacker would.
    static func tamper(_ run: TinyRun, _ sql: String) throws {
        try LedgerTampering.execute(sql, onLedgerAt: RunLayout(directory: run.directory).ledgerURL)
    }
}
