import Foundation
import Planning
import RunFixtures
import Testing
@testable import Audit
@testable import Forgetting

/// `lethe forget` killed with SIGKILL at spread-out moments (the built binary, a real process)
/// never loses an accepted request and never leaves a mixed composition; `lethe forget
/// --resume` then finishes the work and the run verifies clean.
@Suite(.serialized) struct ForgetKillTests {
    static let victims = ["ex-04", "ex-17", "ex-29"]

    /// Runs `lethe forget` on `run`, killing it after `killAfter` seconds (nil: let it finish);
    /// returns its standard output.
    static func forget(_ run: TinyRun, binary: URL, killAfter: Double?) throws -> String {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["forget", "--run", run.directory.path] + victims.flatMap { ["--id", $0] }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        if let killAfter {
            usleep(UInt32(killAfter * 1e6))
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test func killedForgetsLoseNothingAndLeaveNoMixedComposition() throws {
        let binary = try LetheProcess.binary()
        // How long one uninterrupted forget takes here (process start included).
        let timing = try TinyRun("timing")
        let clock = ContinuousClock()
        let start = clock.now
        let output = try Self.forget(timing, binary: binary, killAfter: nil)
        let elapsed = clock.now - start
        #expect(output.contains("accepted 3 request(s)"))
        let finished = try timing.served()
        timing.remove()
        let total = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18

        var acceptedCount = 0
        for trial in 0..<24 {
            let run = try TinyRun("kill\(trial)")
            defer { run.remove() }
            let original = try run.served()
            // Kills spread over the uninterrupted time, and the last four well after it: a
            // forget slowed by other tests' load must still be seen finishing.
            let fraction = trial < 20 ? Double(trial) / 20 : 1 + Double(trial - 19) / 2
            let output = try Self.forget(run, binary: binary, killAfter: total * fraction)
            let accepted = output.contains("accepted")
            if accepted { acceptedCount += 1 }
            // Never a mix: the composition is exactly the old one or exactly the new one.
            let now = try run.served()
            #expect(now.shards == original.shards || now.shards == finished.shards, "trial \(trial)")
            if accepted {  // Accepted means durable.
                let ledger = try Ledger.open(at: run.directory.appendingPathComponent("ledger.sqlite"))
                for id in Self.victims { #expect(try !ledger.entries(forExampleID: id).isEmpty, "trial \(trial)") }
                try ledger.close()
            }
            _ = try Forgetter(run: run.directory).forget([], nowMilliseconds: 2)  // = lethe forget --resume
            let report = try RunVerifier.verify(run: run.directory)
            #expect(report.problems == [], "trial \(trial)")
            let plan = try Plan.load(from: Plan.url(inRun: run.directory))
            let recorded = FileManager.default.fileExists(atPath: run.directory.appendingPathComponent("ledger.sqlite").path)
                && report.deletedExampleCount > 0
            if accepted || recorded {
                #expect(Self.victims.allSatisfy(plan.isTombstoned), "trial \(trial)")
                #expect(try run.served().shards == finished.shards, "trial \(trial)")
            }
        }
        // The spread reached both sides of the acceptance point.
        #expect(acceptedCount > 0 && acceptedCount < 24)
    }
}
