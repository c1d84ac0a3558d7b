import Foundation
import GRDB
import Synchronization
@testable import Audit
import RunFixtures
import Testing
@testable import Forgetting

/// An auditor may read a run without being allowed to write it. `lethe audit`, `verify`,
/// `status` and `plan show` then read it under the shared lock as it is, change nothing, and
/// name an interrupted forget instead of completing it.
@Suite struct ReadOnlyAuditTests {
    @Test func anAuditorWithReadAccessOnlySeesTheRunAsItIs() async throws {
        let run = try TinyRun()
        defer { run.remove() }
        let path = run.directory.path
        try LetheProcess.succeed(["forget", "--run", path, "--id", "ex-03"])
        // A second forget killed right after its request is durable, before its tombstone.
        let pending = try #require(run.plan.members(shard: 0, slice: run.plan.sequences(of: 0)[0][0]).first)
        await #expect(processExitsWith: .signal(SIGKILL)) { [path = path as String, pending = pending as String] in
            _ = try Forgetter(run: URL(fileURLWithPath: path)).forget([ForgetRequest(target: .example(pending))],
                                                                      nowMilliseconds: 1_700_000_000_000,
                                                                      accepted: { _ in kill(getpid(), SIGKILL) })
        }
        let before = try Self.contents(of: run.directory)

        let forgotten = try Self.readOnly(run.directory, ["audit", "--run", path, "--id", "ex-03"])
        #expect(forgotten.status == 0, "\(forgotten.output)")
        #expect(forgotten.output.contains("0 served now"), "\(forgotten.output)")
        // The interrupted deletion is named, and the audit of its example fails: a stage that
        // saw it is still served on disk.
        let audit = try Self.readOnly(run.directory, ["audit", "--run", path, "--id", pending])
        #expect(audit.status == 2, "\(audit.output)")
        #expect(audit.output.contains("read-only: 1 accepted deletion request(s) not yet carried out"), "\(audit.output)")
        #expect(audit.output.contains("lethe forget --run \(path) --resume"), "\(audit.output)")
        let verify = try Self.readOnly(run.directory, ["verify", "--run", path])
        #expect(verify.status == 3, "\(verify.output)")
        #expect(verify.output.contains("\(pending) was requested deleted but is not tombstoned"), "\(verify.output)")
        let status = try Self.readOnly(run.directory, ["status", "--run", path, "--json"])
        #expect(status.status == 0, "\(status.output)")
        #expect(status.output.contains("\"pending_requests\":1"), "\(status.output)")
        #expect(try Self.readOnly(run.directory, ["plan", "show", "--run", path]).status == 0)
        #expect(try Self.contents(of: run.directory) == before, "a reader changed the run")

        // Without its -shm index, a WAL that may hold entries cannot be read by a reader who
        // cannot create one: named, with what to do, rather than read past.
        let shm = URL(fileURLWithPath: path + "/ledger.sqlite-shm")
        let index = try Data(contentsOf: shm)
        try FileManager.default.removeItem(at: shm)
        let noIndex = try Self.readOnly(run.directory, ["audit", "--run", path, "--id", "ex-03"])
        #expect(noIndex.status == 1 && noIndex.output.contains("ledger.sqlite-shm file, missing here")
                && noIndex.output.contains("Audit a copy of the run"), "\(noIndex.output)")
        try index.write(to: shm)

        // Its owner recovers the run on the next command.
        let owner = try LetheProcess.run(["audit", "--run", path, "--id", pending])
        #expect(owner.status == 0 && owner.output.contains("recovery: completed 1 deletion request"), "\(owner.output)")
        // A ledger closed by its last connection has no WAL, and a reader that may not create
        // one reads the database file as immutable.
        try DatabaseQueue(path: path + "/ledger.sqlite").close()
        #expect(!FileManager.default.fileExists(atPath: path + "/ledger.sqlite-wal"))
        let after = try Self.readOnly(run.directory, ["audit", "--run", path, "--id", pending])
        #expect(after.status == 0 && after.output.contains("request"), "\(after.output)")
    }

    /// Readers hold the run lock shared while they read: a verify or an audit running beside a
    /// stream of forgets never sees one half done (a request without its tombstone, a stage
    /// served.json names that the forget has since erased).
    @Test func readersNeverSeeAForgetHalfDone() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let finished = Atomic<Bool>(false)
        let directory = run.directory
        let forgets = Thread {
            let forgetter = Forgetter(run: directory)
            for i in 0..<24 {
                _ = try? forgetter.forget([ForgetRequest(target: .example(String(format: "ex-%02d", i)))],
                                          nowMilliseconds: Int64(1_700_000_000_000 + i))
            }
            finished.store(true, ordering: .sequentiallyConsistent)
        }
        forgets.start()
        let guarded = RunGuard(run: run.directory, nowMilliseconds: { 1_700_000_000_000 })
        var reads = 0
        repeat {
            let (report, audit) = try guarded.withInspectedRun { _ in
                (try RunVerifier.verify(run: run.directory), try ExampleAudit.audit(run: run.directory, id: "ex-05"))
            }
            #expect(report.problems == [], "read \(reads)")
            #expect(!(audit.servedNow && !audit.deletions.isEmpty) && audit.tombstoned == !audit.deletions.isEmpty,
                    "read \(reads): \(audit.summary)")
            reads += 1
        } while !finished.load(ordering: .sequentiallyConsistent)
        #expect(reads > 1)
        #expect(try RunVerifier.verify(run: run.directory).deletedExampleCount == 24)
    }

    /// Runs `lethe` on `run` as a reader who may not write it: on a read-only bind mount of the
    /// directory when the tests run as root (whom permissions do not stop), else with write
    /// permission removed.
    static func readOnly(_ run: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try LetheProcess.runReadOnly(run, arguments)
    }

    /// Every file under `directory` (hidden ones too) and its bytes.
    static func contents(of directory: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = try #require(FileManager.default.enumerator(atPath: directory.path))
        for case let relative as String in enumerator {
            let url = directory.appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[relative] = try Data(contentsOf: url)
            }
        }
        return files
    }
}
