import ArgumentParser
import Forgetting
import CommandSupport
import Foundation

/// `lethe bench ledger`: how fast the deletion ledger records, looks up and verifies.
public struct BenchLedgerCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Time ledger appends (one batch, single entries), lookups and chain verification.",
        discussion: """
            Creates a fresh ledger in a temporary directory (or --out), appends --count \
            request entries in one transaction, then 100 single-entry appends (each its own \
            fsynced transaction), 1,000 lookups by example id, and a full chain verification. \
            The directory is removed afterwards unless --keep is given.

            Example:
              lethe bench ledger --count 10000

            \(BenchHelp.exitCodes)
            """
    )

    @Option(help: "Requests in the batch, \(BenchBounds.items.text).")
    var count = 100_000

    @Option(help: "Directory for the ledger file (default: a new temporary directory).")
    var out: String?

    @Flag(help: "Keep the ledger file.")
    var keep = false

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    public func validate() throws {
        try BenchBounds.items.check(count, option: "--count")
    }

    public func run() throws {
        let base = out.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-ledger-\(UUID().uuidString)")
        let cleanup = out == nil && !keep ? InterruptCleanup.shared.remove(base) : 0
        defer { InterruptCleanup.shared.release(cleanup) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let url = base.appendingPathComponent("ledger-bench-\(UUID().uuidString).sqlite")
        defer {
            if !keep {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: url.path + suffix) }
                if out == nil { try? FileManager.default.removeItem(at: base) }
            }
        }
        let ledger = try Ledger.open(at: url)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let drafts = (0..<count).map { index in
            LedgerDraft(kind: .request, timestampMilliseconds: now,
                        payload: #"{"id":"example-\#(index)","request_id":"req-\#(index)"}"#,
                        keys: [.requestID("req-\(index)"), .exampleID("example-\(index)")])
        }
        let clock = ContinuousClock()
        let batchCPU0 = processCPUSeconds()
        let batchSeconds = try seconds(clock.measure { try ledger.append(drafts) })
        let batchCPUSeconds = processCPUSeconds() - batchCPU0

        var singleSeconds: [Double] = []
        for index in 0..<100 {
            let draft = LedgerDraft(kind: .receipt, timestampMilliseconds: now,
                                    payload: #"{"single":\#(index)}"#, keys: [.requestID("single-\(index)")])
            singleSeconds.append(try seconds(clock.measure { try ledger.append(draft) }))
        }
        var lookupSeconds: [Double] = []
        for index in stride(from: 0, to: count, by: max(1, count / 1000)).prefix(1000) {
            lookupSeconds.append(try seconds(clock.measure {
                _ = try ledger.entries(forExampleID: "example-\(index)")
            }))
        }
        var verification: LedgerVerification?
        let verifyCPU0 = processCPUSeconds()
        let verifySeconds = try seconds(clock.measure { verification = try ledger.verifyChain() })
        let verifyCPUSeconds = processCPUSeconds() - verifyCPU0
        try ledger.close()
        let intact = verification?.isIntact ?? false

        let singleMedian = singleSeconds.median
        let lookupMedian = lookupSeconds.median
        if json {
            let object: [String: Any] = [
                "batch_entries": count, "batch_seconds": batchSeconds, "batch_cpu_seconds": batchCPUSeconds,
                "verify_cpu_seconds": verifyCPUSeconds,
                "batch_entries_per_second": Double(count) / batchSeconds,
                "single_append_median_ms": singleMedian * 1000,
                "lookup_median_ms": lookupMedian * 1000,
                "verify_seconds": verifySeconds, "verified_entries": verification?.entryCount ?? 0,
                "intact": intact,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("ledger benchmark (SQLite WAL, synchronous=FULL) at \(url.path)")
            print(String(format: "  batch append : %d entries in one transaction: %.3f s wall, %.3f s CPU (%.0f entries/s; target < 2 s for 100,000)",
                         count, batchSeconds, batchCPUSeconds, Double(count) / batchSeconds))
            print(String(format: "  single append: median %.2f ms over 100 (one fsynced transaction each)", singleMedian * 1000))
            print(String(format: "  lookup       : median %.3f ms over %d lookups by example id", lookupMedian * 1000, lookupSeconds.count))
            print(String(format: "  verify chain : %d entries in %.3f s wall, %.3f s CPU: ", verification?.entryCount ?? 0,
                         verifySeconds, verifyCPUSeconds) + (intact ? "intact" : "BROKEN"))
            print("  (CPU = user + system time of this process; wall time grows when other processes share the cores)")
        }
        if !intact { throw ExitCode(1) }
    }

    /// User + system CPU time of this process so far.
    private func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
    }

    private func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
