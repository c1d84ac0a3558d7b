import Forgetting
import Foundation
import Glibc
import Planning
import RunFixtures
import Testing

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

    @Test func aForgetWhoseReaderIsGoneFinishesAndExitsOne() throws {
        let run = try Self.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first)
        // A pipe with no reader at all: its read end is closed before the child starts.
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        close(ends[0])
        let (status, error) = try Self.run(["forget", "--run", run.path, "--id", id],
                                           stdout: FileHandle(fileDescriptor: ends[1], closeOnDealloc: false))
        #expect(status == 1 && error.contains("Broken pipe") && error.contains("ran to its end"), "\(status): \(error)")
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
        let ledger = try Ledger.open(at: run.appendingPathComponent("ledger.sqlite"))
        defer { try? ledger.close() }
        let request = try #require(try ledger.lastSequenceNumber(ofKind: .request))
        #expect(try ledger.lastSequenceNumber(ofKind: .receipt) ?? 0 > request, "the forget wrote its receipt")
    }

    /// With stderr gone too (`lethe forget … 2>&1 | head -c1`), the message about the lost
    /// output is lost as well, but the forget still completes and exits 1: no trap.
    @Test func aForgetWhoseStdoutAndStderrAreGoneStillExitsOne() throws {
        let run = try Self.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first)
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        close(ends[0])
        let writer = FileHandle(fileDescriptor: ends[1], closeOnDealloc: false)
        let (status, _) = try Self.run(["forget", "--run", run.path, "--id", id, "--json"], stdout: writer, stderr: writer)
        #expect(status == 1)
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
    }

    @Test func aFullDiskForOutputIsAFailure() throws {
        let run = try Self.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let full = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
        let (status, error) = try Self.run(["status", "--run", run.path, "--json"], stdout: full)
        #expect(status == 1 && error.contains("No space left on device"), "\(status): \(error)")
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
    }
}
