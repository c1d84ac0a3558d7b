import Foundation
import RunFixtures
import GRDB
import Testing
@testable import Forgetting

/// Tampering with the ledger through plain SQL (as an attacker with file access would) is
/// refused by the triggers, and once the triggers are dropped, caught by `verifyChain` with
/// what and where.
@Suite struct LedgerTamperingTests {
    /// A closed ledger of 10 requests, and its head.
    private func makeLedger(_ scratch: LedgerScratch) throws -> LedgerHead {
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        try ledger.append((0..<10).map { LedgerTests.request($0) })
        let head = try #require(try ledger.head())
        #expect(try ledger.verifyChain(expectedHead: head).isIntact)
        try ledger.close()
        return head
    }

    private func tamper(_ scratch: LedgerScratch, _ sql: String) throws {
        try LedgerTampering.execute(sql, onLedgerAt: scratch.ledgerURL)
    }

    private func verify(_ scratch: LedgerScratch, head: LedgerHead? = nil) throws -> LedgerVerification {
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        defer { try? ledger.close() }
        return try ledger.verifyChain(expectedHead: head)
    }

    @Test func triggersRefuseUpdatesAndDeletes() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        let db = try DatabaseQueue(path: scratch.ledgerURL.path)
        defer { try? db.close() }
        for sql in ["UPDATE ledger_entries SET payload = '{}' WHERE seq = 3",
                    "DELETE FROM ledger_entries WHERE seq = 10",
                    "DELETE FROM ledger_keys"] {
            #expect(throws: DatabaseError.self) { try db.write { try $0.execute(sql: sql) } }
        }
        #expect(try verify(scratch).isIntact)
    }

    @Test func editedPayloadIsReportedAtItsEntry() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        try tamper(scratch, #"UPDATE ledger_entries SET payload = '{"id":"someone-else"}' WHERE seq = 4"#)
        let result = try verify(scratch)
        guard case .contentAltered(let seq, let stored, let recomputed) = result.firstBreak else {
            Issue.record("got \(result)")
            return
        }
        #expect(seq == 4)
        #expect(stored != recomputed)
        #expect(result.description.hasPrefix("ledger broken: entry 4 was edited"))
    }

    @Test func editedTimestampAndIndexKeysAreCaught() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        try tamper(scratch, "UPDATE ledger_keys SET value = 'bbc-999' WHERE seq = 6 AND field = 'example_id'")
        #expect(try verify(scratch).firstBreak == .indexMismatch(sequenceNumber: 6))

        let third = try LedgerScratch()
        defer { third.remove() }
        _ = try makeLedger(third)
        try tamper(third, "UPDATE ledger_entries SET keys = '10:example_id7:bbc-999' WHERE seq = 3")
        #expect(try verify(third).firstBreak.map(sequenceOf) == 3)

        let second = try LedgerScratch()
        defer { second.remove() }
        _ = try makeLedger(second)
        try tamper(second, "UPDATE ledger_entries SET timestamp_ms = timestamp_ms + 1 WHERE seq = 2")
        #expect(try verify(second).firstBreak.map(sequenceOf) == 2)
    }

    @Test func deletedRowIsReportedAsMissing() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        try tamper(scratch, "DELETE FROM ledger_entries WHERE seq = 7")
        let result = try verify(scratch)
        #expect(result.firstBreak == .missingEntries(first: 7, last: 7))
        #expect(result.description == "ledger broken: entry 7 is missing (deleted row)")
    }

    @Test func reorderedRowsAreReportedAsReordered() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        try tamper(scratch, """
            UPDATE ledger_entries SET seq = -1 WHERE seq = 5;
            UPDATE ledger_entries SET seq = 5 WHERE seq = 6;
            UPDATE ledger_entries SET seq = 6 WHERE seq = -1;
            """)
        let result = try verify(scratch)
        guard case .brokenLink(let seq, _, _, let chainsTo) = result.firstBreak else {
            Issue.record("got \(result)")
            return
        }
        #expect(seq == 5)
        #expect(chainsTo == 6)
        #expect(result.description.contains("rows were reordered"))
    }

    @Test func removedTailIsCaughtOnlyAgainstARecordedHead() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let head = try makeLedger(scratch)
        try tamper(scratch, "DELETE FROM ledger_entries WHERE seq >= 9; DELETE FROM ledger_keys WHERE seq >= 9")
        #expect(try verify(scratch).isIntact)  // the chain itself is consistent
        let result = try verify(scratch, head: head)
        guard case .headMismatch(let expected, let found) = result.firstBreak else {
            Issue.record("got \(result)")
            return
        }
        #expect(expected == head)
        #expect(found?.sequenceNumber == 8)
    }

    @Test func danglingIndexKeysAreReported() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        try tamper(scratch, "INSERT INTO ledger_keys (field, value, seq) VALUES ('example_id', 'ghost', 77)")
        #expect(try verify(scratch).firstBreak == .danglingKeys(sequenceNumber: 77))
    }

    private func sequenceOf(_ problem: LedgerBreak) -> Int64? {
        if case .contentAltered(let seq, _, _) = problem { return seq }
        return nil
    }

    /// SQLite stores any value in any column: a row typed wrongly by hand is a tampering finding
    /// and a named refusal, never a crash.
    @Test func valuesOfTheWrongTypeAreReportedNotFatal() throws {
        let cases: [(sql: String, finding: String)] = [
            ("UPDATE ledger_entries SET timestamp_ms = 'notanumber' WHERE seq = 4",
             #"entry #4 holds "notanumber" in its timestamp_ms column"#),
            ("UPDATE ledger_entries SET payload = x'00ff' WHERE seq = 6", "entry #6 holds"),
        ]
        for (sql, finding) in cases {
            let scratch = try LedgerScratch()
            defer { scratch.remove() }
            _ = try makeLedger(scratch)
            try tamper(scratch, sql)
            let result = try verify(scratch)
            guard case .malformedRow(let detail) = result.firstBreak else {
                Issue.record("\(sql): got \(result)")
                continue
            }
            #expect(detail.contains(finding), "\(sql): \(detail)")
            let ledger = try Ledger.open(at: scratch.ledgerURL)
            defer { try? ledger.close() }
            #expect(throws: ForgettingError.self, "\(sql)") { _ = try ledger.entries() }
        }
    }

    @Test func aSequenceNumberAtTheTopOfTheRangeIsRefusedNotOverflowed() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        _ = try makeLedger(scratch)
        try tamper(scratch, "INSERT INTO ledger_entries VALUES(9223372036854775807, 1, 'request', '{}', '[]', 'x', 'y')")
        let result = try verify(scratch)
        #expect(result.firstBreak == .missingEntries(first: 11, last: Int64.max - 1))
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        defer { try? ledger.close() }
        #expect {
            try ledger.append(LedgerTests.request(11))
        } throws: { error in
            guard case ForgettingError.ledgerTampered(let file, let reason) = error else { return false }
            return file == scratch.ledgerURL.path && reason.contains("9223372036854775807 in its seq column")
        }
    }
}
