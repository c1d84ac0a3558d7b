import Foundation
import Testing
@testable import Forgetting

/// A writer killed with SIGKILL at arbitrary moments never loses an acknowledged batch,
/// never leaves part of a batch, and leaves a chain that verifies.
@Suite struct LedgerCrashTests {
    static let batchSize = 50

    static func draft(batch: Int, index: Int) -> LedgerDraft {
        LedgerDraft(kind: .request, timestampMilliseconds: Int64(batch),
                    payload: #"{"batch":\#(batch),"index":\#(index)}"#,
                    keys: [.requestID("b\(batch)"), .exampleID("b\(batch)-\(index)")])
    }

    @Test(arguments: 0..<8)
    func killedWriterLosesNothingAcknowledged(trial: Int) async throws {
        let scratch = try LedgerScratch("crash\(trial)")
        defer { scratch.remove() }
        let ledgerPath = scratch.ledgerURL.path
        let progressPath = scratch.directory.appendingPathComponent("acknowledged.txt").path
        // Kill after 10…115 ms: before the first commit, between commits and during them.
        let killAfterMicroseconds = UInt32(10_000 + trial * 15_000)

        await #expect(processExitsWith: .signal(SIGKILL)) {
            [ledgerPath = ledgerPath as String, progressPath = progressPath as String,
             killAfterMicroseconds = killAfterMicroseconds as UInt32] in
            let ledger = try Ledger.open(at: URL(fileURLWithPath: ledgerPath))
            let progress = open(progressPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            Thread.detachNewThread {
                usleep(killAfterMicroseconds)
                kill(getpid(), SIGKILL)
            }
            var batch = 0
            while true {
                try ledger.append((0..<LedgerCrashTests.batchSize).map {
                    LedgerCrashTests.draft(batch: batch, index: $0)
                })
                // Acknowledge only after `append` returned (a plain write survives SIGKILL).
                let line = Array("\(batch)\n".utf8)
                _ = line.withUnsafeBytes { write(progress, $0.baseAddress, $0.count) }
                batch += 1
            }
        }

        let acknowledgedText = (try? String(contentsOfFile: progressPath, encoding: .utf8)) ?? ""
        let acknowledged = acknowledgedText.split(separator: "\n").compactMap { Int($0) }
        #expect(acknowledged == Array(0..<acknowledged.count))
        guard FileManager.default.fileExists(atPath: ledgerPath) else {
            #expect(acknowledged.isEmpty)
            return
        }
        let ledger = try Ledger.open(at: scratch.ledgerURL)
        defer { try? ledger.close() }
        let verification = try ledger.verifyChain()
        #expect(verification.isIntact, "\(verification)")
        let count = verification.entryCount
        print("crash trial \(trial): acknowledged \(acknowledged.count) batches, ledger holds \(count / Self.batchSize)")
        #expect(count % Self.batchSize == 0, "a batch was recorded in part: \(count) entries")
        #expect(count / Self.batchSize >= acknowledged.count,
                "acknowledged \(acknowledged.count) batches, ledger has \(count) entries")
        #expect(count / Self.batchSize <= acknowledged.count + 1)
        if let last = acknowledged.last {
            #expect(try ledger.entries(forRequestID: "b\(last)").count == Self.batchSize)
        }
    }
}
