import Forgetting
import Foundation
import Glibc
import Planning
import RunFixtures
import Testing
import Training

/// Output that cannot be written neither stops a command half way nor passes for a success:
/// a forget whose reader has gone (`lethe forget … | head -1`) still tombstones and records its
/// receipt, and then exits 1 saying the output was lost.
@Suite struct OutputFailureTests {
    static func plannedRun() throws -> URL {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-output-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 6, to: data)
        let run = scratch.appendingPathComponent("run")
        try LetheProcess.succeed(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "1",
                                  "--run", run.path])
        return run
    }

    /// Runs `lethe arguments` with stdout on `output` (closed here once the child has it) and
    /// returns its exit status and stderr.
    static func run(_ arguments: [String], stdout output: FileHandle,
                    stderr: FileHandle? = nil) throws -> (status: Int32, error: String) {
        let process = Process()
        process.executableURL = try LetheProcess.binary()
        process.arguments = arguments
        process.standardOutput = output
        let errors = Pipe()
        process.standardError = stderr ?? errors.fileHandleForWriting
        try process.run()
        try output.close()
        try errors.fileHandleForWriting.close()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit, "killed by signal \(process.terminationStatus): \(text)")
        return (process.terminationStatus, text)
    }

    /// A forget whose stdout has no reader (`| head -1`) finishes, then exits 1 saying so; with
    /// stderr gone too (`2>&1 | head -c1`) the message is lost as well, but it still exits 1 and
    /// does not trap.
    @Test(arguments: [false, true]) func aForgetWhoseReaderIsGoneFinishesAndExitsOne(stderrGoneToo: Bool) throws {
        let run = try Self.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first)
        // A pipe with no reader at all: its read end is closed before the child starts.
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        close(ends[0])
        let writer = FileHandle(fileDescriptor: ends[1], closeOnDealloc: false)
        let (status, error) = try Self.run(["forget", "--run", run.path, "--id", id], stdout: writer,
                                           stderr: stderrGoneToo ? writer : nil)
        #expect(status == 1, "\(status): \(error)")
        if !stderrGoneToo {
            #expect(error.contains("Broken pipe") && error.contains("ran to its end"), "\(error)")
        }
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
        let ledger = try Ledger.open(at: run.appendingPathComponent("ledger.sqlite"))
        defer { try? ledger.close() }
        let request = try #require(try ledger.lastSequenceNumber(ofKind: .request))
        #expect(try ledger.lastSequenceNumber(ofKind: .receipt) ?? 0 > request, "the forget wrote its receipt")
    }

    @Test func aFullDiskForOutputIsAFailure() throws {
        let run = try Self.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let full = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
        let (status, error) = try Self.run(["status", "--run", run.path, "--json"], stdout: full)
        #expect(status == 1 && error.contains("No space left on device"), "\(status): \(error)")
        // A report written in one flush at the end (a bench's lines, buffered) fails as well; a
        // command without a run is not sent to `lethe status`.
        let bench = try Self.run(["bench", "plan", "--examples", "10", "--lookups", "1", "--shards", "1", "--slices", "1",
                                  "--budget", "1"], stdout: try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full")))
        #expect(bench.status == 1 && bench.error.contains("could not be written") && !bench.error.contains("lethe status"),
                "\(bench.status): \(bench.error)")
        // A forget that ends with its own status (5: an unknown id) says that its report was lost.
        let unknown = try Self.run(["forget", "--run", run.path, "--id", "no-such-example"],
                                   stdout: try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full")))
        #expect(unknown.status == 5 && unknown.error.contains("could not be written"), "\(unknown.status): \(unknown.error)")
    }
}

/// Inputs given as pipes are read to their end, as `cat` reads them: a deletion log through
/// `--log /dev/stdin` or a process substitution, a data set through `--data <(…)`.
@Suite struct PipedInputTests {
    @Test func aDeletionLogAndADataSetMayBePipes() throws {
        let run = try OutputFailureTests.plannedRun()
        let scratch = run.deletingLastPathComponent()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 1, slice: 0).first)
        let lethe = try LetheProcess.binary().path
        let forget = try LetheProcess.runTool("/bin/sh", ["-c", "printf '{\"id\": \"%s\"}\\n' \"$2\" | \"$0\" forget --run \"$1\" --log /dev/stdin",
                                                          lethe, run.path, id])
        #expect(forget.status == 0 && forget.output.contains("1 forgotten"), "\(forget.output)")
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
        // `--log -` is standard input too.
        let other = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first)
        let dash = try LetheProcess.runTool("/bin/sh", ["-c", "printf '{\"id\": \"%s\"}\\n' \"$2\" | \"$0\" forget --run \"$1\" --log -",
                                                        lethe, run.path, other])
        #expect(dash.status == 0 && dash.output.contains("1 forgotten"), "\(dash.output)")
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(other))
        // A named pipe with a writer: planned from the pipe, the plan records the same data hash
        // as a plan of the file.
        let data = scratch.appendingPathComponent("tiny.jsonl"), fifo = scratch.appendingPathComponent("data.fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let plan = try LetheProcess.runTool("/bin/sh", ["-c", "cat \"$1\" > \"$2\" & \"$0\" plan --data \"$2\" --shards 2 "
                                                        + "--slices 2 --budget 1 --run \"$3\"; wait",
                                                        lethe, data.path, fifo.path, scratch.appendingPathComponent("piped").path])
        #expect(plan.status == 0, "\(plan.output)")
        let piped = try Plan.load(from: Plan.url(inRun: scratch.appendingPathComponent("piped")))
        #expect(piped.datasetSHA256 == (try Plan.load(from: Plan.url(inRun: run))).datasetSHA256)
        // The plan records the pipe's path, which holds the data no more: plan warns, and a
        // command that needs the data asks for it as a file.
        #expect(plan.output.contains("warning: --data \(fifo.path) is a pipe"), "\(plan.output)")
        let train = try LetheProcess.run(["train", "--run", scratch.appendingPathComponent("piped").path, "--epochs", "1"])
        #expect(train.status == 1 && train.output.contains("read through a pipe")
                && train.output.contains("pass --data with a file holding the same data"), "\(train.output)")
        let jobs = try LetheProcess.run(["train", "--run", scratch.appendingPathComponent("piped").path, "--data", fifo.path,
                                         "--jobs", "2"])
        #expect(jobs.status == 64 && jobs.output.contains("which the --jobs processes cannot read again"), "\(jobs.output)")
        // finetune would read --data twice (to plan, then to train): a pipe is refused up front.
        let finetune = try LetheProcess.run(["finetune", "--data", fifo.path, "--run", scratch.appendingPathComponent("ft").path])
        #expect(finetune.status == 64 && finetune.output.contains("is a pipe: finetune reads its data twice"),
                "\(finetune.output)")
    }
}

/// A forget that fails after its requests are recorded says they are recorded and will be carried
/// out, so a caller does not take the failure for "nothing accepted"; `--resume` takes no new
/// requests.
@Suite struct FailureAfterAcceptanceTests {
    @Test func aFailureAfterAcceptanceSaysTheRequestsAreRecorded() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let location = try #require(run.plan.location(of: "ex-01"))
        // Every stage file of the example's shard replaced by a non-empty directory: erasing fails.
        let shardDirectory = RunLayout(directory: run.directory).shardDirectory(location.shard)
        for file in try FileManager.default.contentsOfDirectory(atPath: shardDirectory.path) where file.hasSuffix(".h5") {
            let url = shardDirectory.appendingPathComponent(file)
            try FileManager.default.removeItem(at: url)
            try FileManager.default.createDirectory(at: url.appendingPathComponent("x"), withIntermediateDirectories: true)
        }
        for json in [false, true] {
            let (status, output) = try LetheProcess.run(["forget", "--run", run.directory.path, "--id", "ex-01"]
                                                        + (json ? ["--json"] : []))
            #expect(status == 1 && output.contains("cannot erase the stage file") && output.contains("were accepted at ledger #")
                    && output.contains("are not lost"), "\(output)")
        }
        // Readers still report the run as it is, with why recovery stopped; the example is served
        // no more (the composition without its stages was published before the erase).
        let status = try LetheProcess.run(["status", "--run", run.directory.path])
        #expect(status.status == 0 && status.output.contains("recovery stopped: ")
                && status.output.contains("cannot erase the stage file") && status.output.contains("as it is on disk"),
                "\(status.output)")
        let audit = try LetheProcess.run(["audit", "--run", run.directory.path, "--id", "ex-01"])
        #expect(audit.status == 0 && audit.output.contains("recovery stopped: "), "\(audit.output)")
        let resume = try LetheProcess.run(["forget", "--run", run.directory.path, "--resume", "--id", "ex-02"])
        #expect(resume.status == 64 && resume.output.contains("--resume finishes the requests already recorded"), "\(resume.output)")
    }

    /// When one stage file cannot be erased, the others that saw the example still are, and the
    /// audit does not call them never written while the deletion has no receipt.
    @Test func theOtherStagesAreErasedAndTheAuditSaysTheDeletionIsPending() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let location = try #require(run.plan.location(of: "ex-01"))
        let blocked = run.stageURL(shard: location.shard, prefix: [location.slice])
        try FileManager.default.removeItem(at: blocked)
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("x"), withIntermediateDirectories: true)
        let forget = try LetheProcess.run(["forget", "--run", run.directory.path, "--id", "ex-01"])
        #expect(forget.status == 1 && forget.output.contains("cannot erase the stage file"), "\(forget.output)")
        let audit = try LetheProcess.run(["audit", "--run", run.directory.path, "--id", "ex-01"])
        #expect(audit.output.contains("1 on disk, 0 erased, 5 absent (never written, or erased by the deletion still pending)")
                && audit.output.contains("0 served now"), "\(audit.output)")
    }
}
