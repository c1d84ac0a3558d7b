import Audit
import Foundation
import Planning
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// Entries with a valid hash chain but a kind Lethe does not write, a payload that is not its
/// kind's record, or a shard the plan lacks were written outside Lethe: verify names each, and a
/// command that reads such a payload says which entry it is instead of a decoder's dump.
@Suite struct LedgerEntryCheckTests {
    @Test func entriesLetheWouldNotWriteAreNamed() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let deleted = try #require(run.plan.members(shard: 0, slice: 1).first)
        _ = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(deleted))], nowMilliseconds: 1_000)
        #expect(try RunVerifier.verify(run: run.directory).isClean)

        let layout = RunLayout(directory: run.directory)
        let ledger = try Ledger.open(at: layout.ledgerURL)
        let first = try #require(try ledger.lastSequenceNumber(ofKind: .receipt)) + 1
        let foreign = PublishRecord(shards: [.dead(shard: 77)], cause: .train)
        for draft in [LedgerDraft(kind: "zzz", timestampMilliseconds: 2_000, payload: "{}"),
                      LedgerDraft(kind: .retrain, timestampMilliseconds: 2_000, payload: #"{"shard": "x"}"#),
                      try LedgerDraft(kind: .publish, timestampMilliseconds: 2_000, encoding: foreign, keys: [])] {
            _ = try ledger.append(draft)
        }
        let garbage = try ledger.append(LedgerDraft(kind: .request, timestampMilliseconds: 2_000, payload: #"{"x": 1}"#,
                                                    keys: [.exampleID(deleted)]))
        try ledger.close()
        do {
            _ = try Ledger.openForReading(at: layout.ledgerURL).entry(at: garbage.sequenceNumber)?
                .decodePayload(as: RequestRecord.self)
            Issue.record("a payload without a request's fields was read as a request")
        } catch ForgettingError.unreadableLedgerEntry(let sequenceNumber, let kind, _) {
            #expect(sequenceNumber == garbage.sequenceNumber && kind == "request")
        }

        // The audit of the example that entry names stops at it rather than report less than the ledger holds.
        do {
            _ = try ExampleAudit.audit(run: run.directory, id: deleted)
            Issue.record("the audit skipped an entry it cannot read")
        } catch ForgettingError.unreadableLedgerEntry(let sequenceNumber, _, _) {
            #expect(sequenceNumber == garbage.sequenceNumber)
        }
        let problems = try RunVerifier.verify(run: run.directory).problems.filter { $0.kind == .ledgerEntry }
        #expect(problems.map(\.location) == (first...first + 3).map { "\(layout.ledgerURL.path) #\($0)" }, "\(problems)")
        #expect(problems.first?.detail.contains(#"its kind "zzz" is none Lethe writes"#) == true, "\(problems)")
        #expect(problems.dropFirst().first?.detail.contains("a retrain entry: its payload cannot be read") == true,
                "\(problems)")
        #expect(problems.dropFirst(2).first?.detail.contains("naming shard 77, which the plan (shards 0…1)") == true,
                "\(problems)")
        #expect(problems.last?.detail.hasPrefix("deletion ledger (ledger.sqlite) entry #\(garbage.sequenceNumber)") == true)
    }

    /// An id the plan does not hold is no model's, but a request may still have named it: the
    /// audit's answer quotes those requests.
    @Test func theAuditOfAnUnplannedIdNamesTheRequestsForIt() throws {
        let run = try TinyRun()
        defer { run.remove() }
        #expect(throws: AuditError.unknownExample(id: "nope/0", requests: [])) {
            _ = try ExampleAudit.audit(run: run.directory, id: "nope/0")
        }
        let receipt = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example("nope/0"))],
                                                               nowMilliseconds: 1_000)
        let request = try #require(receipt.requests.first?.ledgerSequence)
        do {
            _ = try ExampleAudit.audit(run: run.directory, id: "nope/0")
            Issue.record("an unplanned id was audited")
        } catch let error as AuditError {
            #expect(error == .unknownExample(id: "nope/0", requests: [request]))
            #expect(error.description.contains("deletion request(s) naming it at #\(request), kept as unknown"))
        }
        // A group no example belongs to, likewise (the CLI and the server look its requests up so).
        let group = try Forgetter(run: run.directory).forget([ForgetRequest(target: .group("nobody"))],
                                                             groups: { _ in [] }, nowMilliseconds: 2_000)
        let groupRequest = try #require(group.requests.first?.ledgerSequence)
        #expect(try ExampleAudit.requests(matching: .group("nobody"), run: run.directory) == [groupRequest])
        #expect(AuditError.unknownGroup(group: "nobody", requests: [groupRequest]).description
            .contains("naming it at #\(groupRequest), kept as unknown"))
    }
}
