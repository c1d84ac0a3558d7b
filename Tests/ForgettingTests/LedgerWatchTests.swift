import Foundation
import Testing
@testable import Forgetting

/// `LedgerWatch`: the cheap, repeated look a server takes at a ledger other connections append to.
@Suite struct LedgerWatchTests {
    /// Watching a ledger that does not exist fails and creates nothing: reading must never make one.
    @Test func aMissingLedgerIsAnErrorAndIsNotCreated() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        #expect(throws: ForgettingError.self) { _ = try LedgerWatch(url: scratch.ledgerURL) }
        #expect(!FileManager.default.fileExists(atPath: scratch.ledgerURL.path))
    }

    /// Every commit by another connection shows in the next answer, per kind, whether it lands
    /// between two looks or after many looks without one; two watches agree with the ledger.
    @Test func commitsOfOtherConnectionsShowInTheNextAnswer() throws {
        let scratch = try LedgerScratch()
        defer { scratch.remove() }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        let watch = try LedgerWatch(url: scratch.ledgerURL)
        #expect(try watch.lastSequenceNumber(ofKind: .request) == nil)
        #expect(try watch.lastSequenceNumber(ofKind: .request) == nil)
        try ledger.append(LedgerTests.request(0))
        #expect(try watch.lastSequenceNumber(ofKind: .request) == 1)
        #expect(try watch.lastSequenceNumber(ofKind: .receipt) == nil)
        try ledger.append(LedgerDraft(kind: .receipt, timestampMilliseconds: 5, payload: #"{"ok":true}"#,
                                      keys: [.requestID("r0")]))
        #expect(try watch.lastSequenceNumber(ofKind: .receipt) == 2)
        #expect(try watch.lastSequenceNumber(ofKind: .request) == 1)
        for round in 1...20 {
            for _ in 0..<(round % 3) { #expect(try watch.lastSequenceNumber(ofKind: .request) != nil) }
            try ledger.append([LedgerTests.request(2 * round), LedgerTests.request(2 * round + 1)])
            let expected = try ledger.lastSequenceNumber(ofKind: .request)
            #expect(try watch.lastSequenceNumber(ofKind: .request) == expected)
        }
        let second = try LedgerWatch(url: scratch.ledgerURL)
        #expect(try second.lastSequenceNumber(ofKind: .request) == 42)
        #expect(try watch.lastSequenceNumber(ofKind: .request) == 42)
        #expect(try watch.lastSequenceNumber(ofKind: .receipt) == 2)
    }
}
