import Foundation
import Testing
import Planning
@testable import Training

/// The CLI refuses what it cannot do before doing anything, and says why: bounded options,
/// settings that leave no train.json behind when refused, the base model checked by hash,
/// exit codes that mean something, no raw Foundation errors.
@Suite(.serialized) struct CommandSafetyTests {
    static let root = S3TEndToEndTests.root
    static let model = root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2")

    /// Runs lethe; returns the exit status and everything it printed.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try S3TEndToEndTests.letheBinary()
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func outOfRangeOptionsAreRefusedBeforeAnyWorkAndLeaveNoSettings() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        let settings = RunLayout(directory: run).settingsURL
        for (options, names) in [(["--rank", "100000"], "rank"), (["--lr", "1e6"], "lr"), (["--lr", "nan"], "lr"),
                                 (["--epochs", "0"], "epochs"), (["--batch-size", "0"], "batch-size"),
                                 (["--max-tokens", "100000"], "max-tokens"), (["--layers-per-block", "4"], "layers-per-block"),
                                 (["--threads", "0"], "threads")] {
            let (status, output) = try Self.run(["train", "--run", run.path, "--model", Self.model.path] + options)
            #expect(status != 0, "\(options)")
            #expect(output.contains(names), "\(options): \(output)")
            #expect(!output.contains("NSCocoaErrorDomain") && !output.contains("EncodingError"))
            #expect(!FileManager.default.fileExists(atPath: settings.path), "\(options) left train.json behind")
        }
        // The corrected command then trains; the model path is stored relative to the run.
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        let saved = try TrainingSettings.load(from: settings)
        #expect(saved.baseModel.hasPrefix("/") == S3TEndToEndTests.trainArguments.contains { $0.hasPrefix("/") })

        for arguments in [["generate", "x", "--max-positions", "4000000"], ["generate", "x",
                          "--new-tokens", "0"], ["plan", "--data", "x.jsonl", "--shards", "100000", "--slices", "2",
                          "--budget", "1", "--run", scratch.appendingPathComponent("p").path]] {
            let (status, output) = try Self.run(arguments)
            #expect(status == 64 && (output.contains("give") || output.contains("limits")), "\(arguments): \(output)")
        }
    }

    @Test func aDifferentBaseModelAtTheRecordedPathIsRefused() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let copy = scratch.appendingPathComponent("model")
        try FileManager.default.copyItem(at: Self.model, to: copy)
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        var arguments = S3TEndToEndTests.trainArguments
        arguments[arguments.firstIndex(of: "--model")! + 1] = copy.path
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + arguments)
        try S3TEndToEndTests.lethe(["predict", "--run", run.path, "--text", "Shares rise"])
        // One byte of the weights changes: every command that loads the model refuses.
        let weights = copy.appendingPathComponent("model.safetensors")
        let handle = try FileHandle(forUpdating: weights)
        try handle.seek(toOffset: 50_000_000)
        let byte = try handle.read(upToCount: 1) ?? Data([0])
        try handle.seek(toOffset: 50_000_000)
        try handle.write(contentsOf: Data([byte[0] ^ 1]))
        try handle.close()
        for command in [["predict", "--run", run.path, "--text", "Shares rise"], ["train", "--run", run.path]] {
            let (status, output) = try Self.run(command)
            #expect(status == 1, "\(command)")
            #expect(output.contains(weights.path) && output.contains("SHA-256"), "\(output)")
        }
    }

    /// One changed byte in plan.h5 or in a stage file: every command that reads it stops with an
    /// error naming the file and what to do — never a crash, never HDF5's own error dump.
    @Test func damagedPlansAndStagesAreNamedErrorsInEveryCommand() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl").path
        let run = scratch.appendingPathComponent("one")
        try S3TEndToEndTests.lethe(["plan", "--data", data, "--shards", "1", "--slices", "1", "--budget", "1",
                                    "--run", run.path])
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        let shard = RunLayout(directory: run).shardDirectory(0)
        let stage = shard.appendingPathComponent(try #require(
            try FileManager.default.contentsOfDirectory(atPath: shard.path).first { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }))
        func flipMiddleByte(_ url: URL) throws -> Data {
            let original = try Data(contentsOf: url)
            var damaged = original
            damaged[damaged.count / 2] ^= 0x04
            try damaged.write(to: url)
            return original
        }
        func expectRefusal(_ arguments: [String], naming file: URL, _ advice: String) throws {
            let (status, output) = try Self.run(arguments)
            #expect(status == 1, "\(arguments): status \(status)")
            #expect(output.contains(file.path) && output.contains("damaged or was modified") && output.contains(advice),
                    "\(arguments): \(output)")
            #expect(!output.contains("HDF5-DIAG"), "\(arguments): \(output)")
        }
        let stageBytes = try flipMiddleByte(stage)
        try expectRefusal(["predict", "--run", run.path, "--text", "Shares rise"], naming: stage, "lethe train")
        try expectRefusal(["evaluate", "--run", run.path, "--data", data], naming: stage, "lethe train")
        try stageBytes.write(to: stage)

        let plan = Plan.url(inRun: run)
        _ = try flipMiddleByte(plan)
        for command in [["status", "--run", run.path], ["predict", "--run", run.path, "--text", "Shares rise"],
                        ["verify", "--run", run.path], ["forget", "--run", run.path, "--id", "x"],
                        ["train", "--run", run.path]] {
            try expectRefusal(command, naming: plan, "Restore it from a backup")
        }
    }

    @Test func forgetExitCodesAndADeadRunRefusesToAnswer() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = scratch.appendingPathComponent("one")
        try S3TEndToEndTests.lethe(["plan", "--data", scratch.appendingPathComponent("tiny.jsonl").path, "--shards", "1",
                                    "--slices", "1", "--budget", "1", "--run", run.path])
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        #expect(try Self.run(["forget", "--run", run.path, "--id", ""]).status == 64)
        let unknown = try Self.run(["forget", "--run", run.path, "--id", "no-such-example"])
        #expect(unknown.status == 5 && unknown.output.contains("no-such-example"))
        let id = try #require(try String(contentsOf: scratch.appendingPathComponent("tiny.jsonl"), encoding: .utf8)
            .split(separator: "\n").first.flatMap { line in
                (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String })
        #expect(try Self.run(["forget", "--run", run.path, "--id", id]).status == 0)
        // Its only shard is dead: evaluate and predict refuse instead of answering.
        for command in [["evaluate", "--run", run.path, "--data", scratch.appendingPathComponent("tiny.jsonl").path],
                        ["predict", "--run", run.path, "--text", "Shares rise"]] {
            let (status, output) = try Self.run(command)
            #expect(status != 0 && output.contains("dead") && !output.contains("accuracy"), "\(command): \(output)")
        }
        let missing = try Self.run(["predict", "--run", run.path, "--data", scratch.appendingPathComponent("nope.jsonl").path])
        #expect(missing.status != 0 && !missing.output.contains("NSCocoaErrorDomain"))
    }
}
