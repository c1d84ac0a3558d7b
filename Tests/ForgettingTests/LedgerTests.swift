import Crypto
import Foundation
import GRDB
import Testing
@testable import Forgetting

/// The deletion ledger: durable settings, chained hashes, lookups, reopening, batches.
@Suite struct LedgerTests {
    static func request(_ index: Int, at timestamp: Int64 = 1_700_000_000_000) -> LedgerDraft {
        LedgerDraft(kind: .request, timestampMilliseconds: timestamp + Int64(index),
                    payload: #"{"id":"bbc-\#(index)","request_id":"r\#(index)"}"#,
                    keys: [.requestID("r\(index)"), .exampleID("bbc-\(index)")])
    }

    @Test func appendAssignsSequenceAndChainsHashes() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        #expect(try ledger.head() == nil)
        let first = try ledger.append(Self.request(0))
        let batch = try ledger.append([Self.request(1), Self.request(2)])
        #expect(first.sequenceNumber == 1)
        #expect(first.previousHash == String(repeating: "0", count: 64))
        #expect(batch.map(\.sequenceNumber) == [2, 3])
        #expect(batch[0].previousHash == first.hash)
        #expect(batch[1].previousHash == batch[0].hash)
        #expect(Set([first.hash, batch[0].hash, batch[1].hash]).count == 3)
        #expect(try ledger.head() == LedgerHead(sequenceNumber: 3, hash: batch[1].hash))
        #expect(try ledger.entries() == [first] + batch)
        #expect(try ledger.entries(from: 2, limit: 1) == [batch[0]])
        #expect(try ledger.entry(at: 3) == batch[1])
        #expect(try ledger.entry(at: 4) == nil)
        #expect(try ledger.count() == 3)
    }

    /// The hash is exactly the documented canonical encoding (LedgerHashing), built here by hand.
    @Test func hashFollowsTheDocumentedEncoding() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        let entry = try ledger.append(LedgerDraft(
            kind: .receipt, timestampMilliseconds: 42, payload: #"{"ok":true}"#,
            keys: [.group("movie-ä"), .requestID("r1"), .group("movie-ä")]))
        #expect(entry.keys == [.group("movie-ä"), .requestID("r1")])  // sorted, deduplicated

        var bytes = Array("lethe-ledger-v1".utf8) + [0]
        func u32(_ v: Int) { bytes += [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
        func str(_ s: String) { u32(s.utf8.count); bytes += s.utf8 }
        bytes += [0, 0, 0, 0, 0, 0, 0, 1]       // seq 1
        bytes += [0, 0, 0, 0, 0, 0, 0, 42]      // 42 ms
        str("receipt")
        str(#"{"ok":true}"#)
        u32(2)
        str("group"); str("movie-ä")
        str("request_id"); str("r1")
        bytes += [UInt8](repeating: 0, count: 32)
        let expected = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        #expect(entry.hash == expected)
    }

    @Test func lookupsByRequestExampleAndGroupUseTheIndex() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        try ledger.append((0..<50).map { Self.request($0) })
        let groupRequest = LedgerDraft(kind: .request, timestampMilliseconds: 5,
                                       payload: #"{"group":"Heat (1995)"}"#,
                                       keys: [.requestID("g1"), .group("Heat (1995)")])
        let receipt = LedgerDraft(kind: .receipt, timestampMilliseconds: 6,
                                  payload: #"{"requests":["r7","g1"],"erased":["s0/q1/stage2"]}"#,
                                  keys: [.requestID("r7"), .requestID("g1"), .exampleID("bbc-7")])
        try ledger.append([groupRequest, receipt])
        #expect(try ledger.entries(forExampleID: "bbc-7").map(\.sequenceNumber) == [8, 52])
        #expect(try ledger.entries(forRequestID: "r7").map(\.kind) == [.request, .receipt])
        #expect(try ledger.entries(forGroup: "Heat (1995)").map(\.payload) == [#"{"group":"Heat (1995)"}"#])
        #expect(try ledger.entries(forExampleID: "absent").isEmpty)
        let usesIndex = try ledger.read("plan") { db in
            try Row.fetchAll(db, sql: """
                EXPLAIN QUERY PLAN SELECT seq FROM ledger_keys WHERE field = 'example_id' AND value = 'x'
                """).contains { ($0["detail"] as String? ?? "").contains("PRIMARY KEY (field=? AND value=?)") }
        }
        #expect(usesIndex)
    }

    @Test func databaseIsWALWithFullSynchronous() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        let (mode, synchronous) = try ledger.read("pragmas") { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"),
             try Int.fetchOne(db, sql: "PRAGMA synchronous"))
        }
        #expect(mode == "wal")
        #expect(synchronous == 2)  // FULL
        let writerSynchronous = try ledger.write("pragmas") { db in
            try Int.fetchOne(db, sql: "PRAGMA synchronous")
        }
        #expect(writerSynchronous == 2)
    }

    @Test func reopeningContinuesTheChain() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        var ledger = try Ledger.open(at: scratch.ledgerURL)
        let before = try ledger.append((0..<10).map { Self.request($0) })
        try ledger.close()
        ledger = try Ledger.open(at: scratch.ledgerURL)
        #expect(try ledger.entries() == before)
        let next = try ledger.append(Self.request(10))
        #expect(next.sequenceNumber == 11)
        #expect(next.previousHash == before.last?.hash)
        #expect(try ledger.verifyChain(expectedHead: LedgerHead(sequenceNumber: 11, hash: next.hash)).isIntact)
    }

    @Test func invalidDraftRejectsTheWholeBatch() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        var batch = (0..<5).map { Self.request($0) }
        batch[3].payload = "not json"
        let error = #expect(throws: ForgettingError.self) { try ledger.append(batch) }
        #expect(error == .invalidLedgerEntry(file: scratch.ledgerURL.path, batchIndex: 3,
                                             reason: "payload must be a JSON object or array"))
        batch[3] = Self.request(3)
        batch[1].kind = "Request!"
        #expect(throws: ForgettingError.self) { try ledger.append(batch) }
        #expect(try ledger.count() == 0)
    }

    @Test func foreignDatabaseIsRejected() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let other = try DatabaseQueue(path: scratch.ledgerURL.path)
        try other.write { try $0.execute(sql: "CREATE TABLE photos (id INTEGER)") }
        try other.close()
        let error = #expect(throws: ForgettingError.self) { try Ledger.open(at: scratch.ledgerURL) }
        guard case .ledgerFormat(let file, _, let found) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(file == scratch.ledgerURL.path)
        #expect(found.contains("photos"))
    }

    @Test func missingDirectoryGivesLedgerUnavailable() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let url = scratch.directory.appendingPathComponent("no/such/run/ledger.sqlite")
        let error = #expect(throws: ForgettingError.self) { try Ledger.open(at: url) }
        guard case .ledgerUnavailable(let file, _) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(file == url.path)
        #expect(error?.description.hasSuffix("Check that the run directory exists and is writable.") == true)
    }

    @Test func concurrentWritersKeepOneChain() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledgers = try (0..<2).map { _ in try Ledger.open(at: scratch.ledgerURL) }
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 2) { writer in
            for batch in 0..<25 {
                do {
                    try ledgers[writer].append((0..<8).map { Self.request(writer * 10_000 + batch * 8 + $0) })
                } catch {
                    failures.add("\(error)")
                }
            }
        }
        #expect(failures.all.isEmpty)
        let verification = try ledgers[0].verifyChain()
        #expect(verification.isIntact, "\(verification)")
        #expect(verification.entryCount == 400)
    }

    @Test func hundredThousandRequestsInOneTransaction() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        try ledger.append(Self.request(-1))
        let drafts = (0..<100_000).map { Self.request($0) }
        let entries = try ledger.append(drafts)  // timed by `lethe bench ledger`, not here
        #expect(entries.count == 100_000)
        #expect(entries.last?.sequenceNumber == 100_001)
        #expect(try ledger.entries(forExampleID: "bbc-99999").map(\.sequenceNumber) == [100_001])
        let verification = try ledger.verifyChain(expectedHead: ledger.head())
        #expect(verification.isIntact)
        #expect(verification.entryCount == 100_001)
    }
}

/// Collects failure messages from concurrent writers.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    func add(_ message: String) { lock.lock(); messages.append(message); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return messages }
}

/// A fresh directory holding one ledger file.
struct LedgerScratch {
    let directory: URL
    var ledgerURL: URL { directory.appendingPathComponent("ledger.sqlite") }

    init(_ label: String = #function) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lethe-ledger-\(label.filter(\.isLetter))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
