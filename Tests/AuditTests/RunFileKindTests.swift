import Foundation
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// A run's files are regular files. A FIFO in the place of one must not block a command
/// forever (opening a FIFO waits for a writer): the command names the file and stops.
@Suite struct RunFileKindTests {
    @Test(arguments: ["served.json", "plan.tombstones", ".forget-unfinished", "stage", ".run.lock"])
    func aFIFOInPlaceOfARunFileIsNamedNotWaitedOn(_ name: String) throws {
        let run = try TinyRun("fifo-\(name)")
        defer { run.remove() }
        // The first forget creates the tombstone log and the flag.
        try LetheProcess.succeed(["forget", "--run", run.directory.path, "--id", "ex-03"])
        let layout = RunLayout(directory: run.directory)
        let entry = try #require(try run.served().entry(shard: 1))
        let target = name == "stage" ? layout.stageURL(shard: 1, stage: 1, key: entry.stageKeys[0])
            : run.directory.appendingPathComponent(name)
        try FileManager.default.removeItem(at: target)
        #expect(mkfifo(target.path, 0o644) == 0)
        // A stage file is read by verify (audit only looks whether it exists, forget unlinks it).
        // The run lock is opened by every command: the readers (which open it read-only) too.
        let commands = [["verify", "--run", run.directory.path]] + (name == "stage" ? [] : [
            ["audit", "--run", run.directory.path, "--id", "ex-20"], ["forget", "--run", run.directory.path, "--id", "ex-20"]])
            + (name == ".run.lock" ? [["status", "--run", run.directory.path]] : [])
        for arguments in commands {
            let (status, output) = try Self.runWithin(seconds: 30, arguments)
            #expect(status != nil, "\(arguments) still waiting after 30 s")
            // (This fixture has no train.json, so a forget cannot republish served.json in the
            // FIFO's place — CommandSafetyTests.aForgetRepublishesADamagedServedJSON — and names it.)
            #expect(status != 0 && output.contains(target.path) && output.contains("FIFO"), "\(arguments): \(status ?? -1) \(output)")
        }
    }

    /// A directory in place of the run lock is named, with what to do, by a writer and by a
    /// command that recovers first; removed, the next command makes the lock again.
    @Test func aDirectoryInPlaceOfTheRunLockIsNamed() throws {
        let run = try TinyRun("lock-directory")
        defer { run.remove() }
        let lock = RunLayout(directory: run.directory).lockURL
        try? FileManager.default.removeItem(at: lock)
        try FileManager.default.createDirectory(at: lock, withIntermediateDirectories: false)
        for arguments in [["forget", "--run", run.directory.path, "--id", "ex-03"], ["status", "--run", run.directory.path]] {
            let (status, output) = try LetheProcess.run(arguments)
            #expect(status == 1 && output.contains("\(lock.path): is a directory, so the run cannot be locked")
                    && output.contains("rm -r \(lock.path)"), "\(arguments): \(output)")
        }
        try FileManager.default.removeItem(at: lock)
        try LetheProcess.succeed(["forget", "--run", run.directory.path, "--id", "ex-03"])
    }

    /// served.json is derived, never edited: one rewritten without a trained, undeleted shard
    /// (its content hash recomputed, so it reads as valid) is reported, and train publishes the
    /// shard again.
    @Test func verifyReportsATrainedShardLeftOutOfTheComposition() throws {
        let run = try TinyRun("left-out")
        defer { run.remove() }
        let layout = RunLayout(directory: run.directory)
        let served = try ServedComposition.load(from: layout.servedURL)
        try #require(served.entry(shard: 1) != nil)
        try ServedComposition(strategy: served.strategy, shards: served.shards.filter { $0.shard != 1 },
                              ledgerHead: served.ledgerHead).save(to: layout)
        let verify = try LetheProcess.runApart(["verify", "--run", run.directory.path])
        #expect(verify.status == 3 && verify.stdout.contains("stale_composition:")
                && verify.stdout.contains("shard 1 is trained to serve"), "\(verify.stdout) \(verify.stderr)")
        // The first forget republishes every shard already served, and only those: shard 1 stays out.
        try LetheProcess.succeed(["forget", "--run", run.directory.path, "--id", "ex-03"])
        #expect(try LetheProcess.runApart(["verify", "--run", run.directory.path]).stdout.contains("stale_composition:"))
    }

    /// A run whose recovery cannot run (here the forget flag is a directory, so it cannot be
    /// written) refuses every forget; verify reports that (exit 3), never "OK".
    @Test func verifyReportsARunWhoseRecoveryCannotRun() throws {
        let run = try TinyRun("flag-directory")
        defer { run.remove() }
        try LetheProcess.succeed(["forget", "--run", run.directory.path, "--id", "ex-03"])
        let flag = UnfinishedForget.url(RunLayout(directory: run.directory))
        try FileManager.default.removeItem(at: flag)
        try FileManager.default.createDirectory(at: flag, withIntermediateDirectories: false)
        let forget = try LetheProcess.run(["forget", "--run", run.directory.path, "--id", "ex-20"])
        #expect(forget.status == 1 && forget.output.contains(flag.path), "\(forget.output)")
        let verify = try LetheProcess.runApart(["verify", "--run", run.directory.path])
        #expect(verify.status == 3 && verify.stdout.contains("recovery_stopped:") && verify.stdout.contains(flag.path)
                && !verify.stdout.contains("OK"), "\(verify.stdout) \(verify.stderr)")
    }

    /// A FIFO in place of a base model's file (weights, config, vocabulary, a GGUF) is named,
    /// not waited on: opening one for reading would wait for a writer that never comes.
    @Test(arguments: ["model.safetensors", "config.json", "vocab.txt", "model.gguf"])
    func aFIFOInPlaceOfAModelFileIsNamedNotWaitedOn(_ name: String) throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-fifo-model-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let source = LetheProcess.root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        for file in ["model.safetensors", "config.json", "vocab.txt"] where file != name {
            try FileManager.default.createSymbolicLink(at: scratch.appendingPathComponent(file),
                                                       withDestinationURL: source.appendingPathComponent(file))
        }
        let fifo = scratch.appendingPathComponent(name)
        #expect(mkfifo(fifo.path, 0o644) == 0)
        let arguments = name == "model.gguf"
            ? ["generate", "Hello", "--model", fifo.path, "--new-tokens", "1"]
            : ["embed", "--model", scratch.path, "Hello"]
        let (status, output) = try Self.runWithin(seconds: 30, arguments)
        #expect(status != nil, "\(arguments) still waiting after 30 s")
        #expect(status != 0 && output.contains(fifo.path) && output.contains("FIFO"), "\(arguments): \(status ?? -1) \(output)")
    }

    /// Runs `lethe`; nil status when it had to be killed after `seconds`.
    static func runWithin(seconds: Double, _ arguments: [String]) throws -> (status: Int32?, output: String) {
        let process = Process()
        process.executableURL = try LetheProcess.binary()
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-fifo-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        let finished = !process.isRunning
        if !finished { process.terminate(); process.waitUntilExit() }
        try handle.close()
        return (finished ? process.terminationStatus : nil, try String(contentsOf: output, encoding: .utf8))
    }
}
