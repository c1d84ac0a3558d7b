import Foundation
import Glibc
import RunFixtures
import Testing

/// `lethe plan` into a directory that already exists.
@Suite struct PlanCommandTests {
    /// A first `lethe plan` killed while writing leaves its temporary file; the next plan into
    /// that directory removes it (and nothing else there).
    @Test func aKilledFirstPlansTemporaryFileIsRemovedByTheNext() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-plan-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = scratch.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 6, to: data)
        let leftover = run.appendingPathComponent(".plan.h5.tmp-1234-killed")
        let unrelated = run.appendingPathComponent("notes.txt")
        try Data(repeating: 7, count: 4096).write(to: leftover)
        try Data("keep".utf8).write(to: unrelated)
        try LetheProcess.succeed(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "2",
                                  "--run", run.path])
        #expect(!FileManager.default.fileExists(atPath: leftover.path))
        #expect(try Data(contentsOf: unrelated) == Data("keep".utf8))
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("plan.h5").path))
    }

    @Test func aRunPathThatIsAFileIsAUsageError() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-plan-file-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output) = try LetheProcess.run(["plan", "--data", file.path, "--shards", "2", "--slices", "2",
                                                      "--budget", "2", "--run", file.path])
        #expect(status == 64 && output.contains("--run \(file.path): is a file, not a directory"), "\(output)")
    }

    /// A plan --force over trained stages is refused: they were made from the old plan, and no
    /// later forget, audit or verify (which follow the plan) would account for them.
    @Test func replacingThePlanOfATrainedRunIsRefused() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let data = run.directory.appendingPathComponent("data.jsonl")
        try BBCSubset.write(perLabel: 6, to: data)
        let before = try Data(contentsOf: run.directory.appendingPathComponent("plan.h5"))
        let (status, output) = try LetheProcess.run(["plan", "--data", data.path, "--shards", "2", "--slices", "2",
                                                      "--budget", "2", "--run", run.directory.path, "--force"])
        #expect(status == 1 && output.contains("has trained stages (stages/, served.json)"), "\(output)")
        #expect(try Data(contentsOf: run.directory.appendingPathComponent("plan.h5")) == before)
    }

    /// A plan --force while a `train` is at work on a shard (holding its training lock, before
    /// it has committed any stage) is refused: that training would go on with the old plan.
    @Test func replacingThePlanWhileATrainingRunsIsRefused() throws {
        let run = try TinyRun(stageFiles: false)
        defer { run.remove() }
        let data = run.directory.appendingPathComponent("data.jsonl")
        try BBCSubset.write(perLabel: 6, to: data)
        let before = try Data(contentsOf: run.directory.appendingPathComponent("plan.h5"))
        let lock = run.directory.appendingPathComponent(".train-shard-1.lock").path
        let descriptor = open(lock, O_RDWR | O_CREAT, 0o644)
        #expect(descriptor >= 0 && flock(descriptor, LOCK_EX) == 0)
        let arguments = ["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "2",
                         "--run", run.directory.path, "--force"]
        let (status, output) = try LetheProcess.run(arguments)
        #expect(status == 1 && output.contains("a `lethe train` is working on") && output.contains(".train-shard-1.lock"),
                "\(output)")
        #expect(try Data(contentsOf: run.directory.appendingPathComponent("plan.h5")) == before)
        // Once the training has ended, the plan is replaced.
        close(descriptor)
        let (after, replaced) = try LetheProcess.run(arguments)
        #expect(after == 0, "\(replaced)")
    }

    /// A path whose bytes are not UTF-8 reaches Lethe with U+FFFD in their place, naming another
    /// directory: refused for every command that takes --run. (A test can only pass U+FFFD itself;
    /// bytes such as 0xFF become exactly that.)
    @Test func aRunPathThatIsNotUTF8IsAUsageError() throws {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-plan-\u{FFFD}-\(UUID().uuidString)").path
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-plan-\(UUID().uuidString).jsonl")
        try BBCSubset.write(perLabel: 2, to: data)
        defer { try? FileManager.default.removeItem(at: data) }
        for arguments in [["plan", "--data", data.path, "--shards", "1", "--slices", "1", "--budget", "1", "--run", run],
                          ["status", "--run", run], ["forget", "--run", run, "--id", "x"]] {
            let (status, output) = try LetheProcess.run(arguments)
            #expect(status == 64 && output.contains("holds bytes that are not UTF-8"), "\(arguments): \(output)")
        }
        #expect(!FileManager.default.fileExists(atPath: run))
    }
}

