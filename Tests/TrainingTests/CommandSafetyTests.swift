import Forgetting
import Foundation
import Synchronization
import RunFixtures
import Testing
import Planning
import Store
@testable import Training

/// The CLI refuses what it cannot do before doing anything, and says why: settings that leave
/// no train.json behind when refused, the base model checked by hash, a diverging loss that
/// saves nothing, exit codes that mean something, no raw Foundation or HDF5 errors.
@Suite(.serialized) struct CommandSafetyTests {
    static let root = S3TEndToEndTests.root
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) { try LetheProcess.run(arguments) }
    static let model = root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2")

    /// What must never reach a user: Foundation's error domains, coding-path dumps, HDF5's
    /// error stack, Swift's dump of an enum.
    static let rawErrorMarkers = ["NSCocoaErrorDomain", "Error Domain=", "DecodingError", "EncodingError", "HDF5-DIAG",
                                  "codingPath", "Swift.", "Fatal error"]

    static func expectNoRawError(_ output: String, _ context: String) {
        for marker in rawErrorMarkers { #expect(!output.contains(marker), "\(context) printed \(marker): \(output)") }
    }

    /// The end-to-end training arguments with `options` added, each replacing the same option's
    /// value there (so `--rank 100000` is the rank given, not a second one).
    static func trainArguments(replacing options: [String]) -> [String] {
        var base = S3TEndToEndTests.trainArguments
        for name in options where name.hasPrefix("--") {
            if let index = base.firstIndex(of: name) { base.removeSubrange(index ... index + 1) }
        }
        return base + options
    }

    /// A variable that forces other OpenBLAS or oneDNN kernels (and so other bits) is ignored:
    /// lethe runs on the core OpenBLAS picks for the CPU, with its arguments intact.
    @Test func aForcedBLASCoreInTheEnvironmentIsIgnored() throws {
        let arguments = ["bench", "peak", "--threads", "1", "--repetitions", "1", "--seconds", "0.05", "--json"]
        func core(_ environment: [String: String]) throws -> (name: String, output: String) {
            let (status, output) = try LetheProcess.run(arguments, environment: environment)
            #expect(status == 0, "\(output)")
            let match = try #require(output.firstMatch(of: /"core_name":"([^"]+)"/), "\(output)")
            #expect(output.contains(#""threads":1"#) && !output.contains(#""threads":2"#), "\(output)")
            return (String(match.1), output)
        }
        let own = try core([:]).name
        let forced = own == "Haswell" ? "Sandybridge" : "Haswell"
        let other = try core(["OPENBLAS_CORETYPE": forced, "OPENBLAS_BLOCK_FACTOR": "2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                              "ONEDNN_DEFAULT_FPMATH_MODE": "BF16"])
        #expect(other.name == own, "\(other.output)")
    }

    /// Every stage file under a run's stages/ (none for a run that trained nothing).
    static func stageFiles(_ run: URL) -> [String] {
        let stages = run.appendingPathComponent("stages")
        guard let walker = FileManager.default.enumerator(atPath: stages.path) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".h5") }
    }

    /// A classifier needs two labels: labelled data with one label is refused by `plan`, with
    /// the label named, before a run directory is made (text data, with none, trains a decoder).
    @Test func dataWithOneLabelIsRefusedBeforeAnythingIsWritten() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("one-label.jsonl")
        let lines = (0..<8).map { "{\"id\": \"n\($0)\", \"text\": \"headline number \($0)\", \"label\": \"sport\"}" }
        try (lines.joined(separator: "\n") + "\n").write(to: data, atomically: true, encoding: .utf8)
        let run = scratch.appendingPathComponent("one")
        let (exit, output) = try Self.run(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "1",
                                           "--run", run.path])
        #expect(exit != 0 && output.contains("the label \"sport\"") && output.contains("two or more labels")
                && output.contains(data.path), "exit \(exit): \(output)")
        Self.expectNoRawError(output, "one label")
        #expect(!FileManager.default.fileExists(atPath: run.path))
    }

    /// `finetune` plans its run itself: refused on one-label data it leaves no directory, so
    /// the corrected call with other data trains; a decoder's GGUF is a usage error.
    @Test func aRefusedFinetuneLeavesNothingAndTheCorrectedOneTrains() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let one = scratch.appendingPathComponent("one-label.jsonl"), two = scratch.appendingPathComponent("two-labels.jsonl")
        let lines = (0..<8).map { "{\"id\": \"n\($0)\", \"text\": \"headline number \($0)\", \"label\": \"sport\"}" }
        try (lines.joined(separator: "\n") + "\n").write(to: one, atomically: true, encoding: .utf8)
        let mixed = (0..<8).map { "{\"id\": \"m\($0)\", \"text\": \"story \($0)\", \"label\": \"\($0 % 2 == 0 ? "sport" : "tech")\"}" }
        try (mixed.joined(separator: "\n") + "\n").write(to: two, atomically: true, encoding: .utf8)
        let out = scratch.appendingPathComponent("tuned")
        let arguments = ["--epochs", "1", "--rank", "4", "--threads", "1", "--max-tokens", "16", "--model", Self.model.path]
        let refused = try Self.run(["finetune", "--data", one.path, "--run", out.path] + arguments)
        #expect(refused.0 != 0 && refused.1.contains("two or more labels"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: out.path), "a refused finetune left its run directory")
        let texts = scratch.appendingPathComponent("texts.jsonl")
        try ((0..<8).map { "{\"id\": \"t\($0)\", \"text\": \"story \($0)\"}" }.joined(separator: "\n") + "\n")
            .write(to: texts, atomically: true, encoding: .utf8)
        let unlabelled = try Self.run(["finetune", "--data", texts.path, "--run", out.path] + arguments)
        #expect(unlabelled.0 != 0 && unlabelled.1.contains("finetune trains an encoder classifier")
                && unlabelled.1.contains("lethe train --run DIR"), "\(unlabelled)")
        #expect(!FileManager.default.fileExists(atPath: out.path), "a refused finetune left its run directory")
        let gguf = try Self.run(["finetune", "--data", two.path, "--run", out.path, "--model", "model.gguf"])
        #expect(gguf.0 == 64 && gguf.1.contains("encoder classifier"), "\(gguf)")
        let trained = try Self.run(["finetune", "--data", two.path, "--run", out.path] + arguments)
        #expect(trained.0 == 0, "\(trained)")
        // A second finetune while one trains there is refused and touches nothing; status
        // reads a fine-tuned run whose model is not trained yet.
        let busy = scratch.appendingPathComponent("busy")
        try FileManager.default.createDirectory(at: busy, withIntermediateDirectories: true)
        let held: (Int32, String)? = try FileLock.withLockIfFree(busy.appendingPathComponent(".finetune.lock")) {
            try Self.run(["finetune", "--data", two.path, "--run", busy.path] + arguments)
        }
        let second = try #require(held)
        #expect(second.0 == 1 && second.1.contains("another `lethe finetune` is training there"), "\(second)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: busy.path) == [".finetune.lock"])
        try FileManager.default.removeItem(at: RunLayout(directory: out).shardDirectory(0))
        let status = try Self.run(["status", "--run", out.path])
        #expect(status.0 == 0 && status.1.contains("shard 0: 0/1 stages on disk"), "\(status)")
    }

    @Test func aRefusedOptionLeavesNoSettingsAndTheCorrectedCommandTrains() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        let settings = RunLayout(directory: run).settingsURL
        // A model whose weights are fine but whose vocabulary is empty: it fails to load.
        let emptyVocabulary = scratch.appendingPathComponent("empty-vocab-model")
        try FileManager.default.copyItem(at: Self.model, to: emptyVocabulary)
        try Data().write(to: emptyVocabulary.appendingPathComponent("vocab.txt"))
        let otherData = scratch.appendingPathComponent("other.jsonl")
        try "{\"id\": \"a\", \"text\": \"b\", \"label\": \"c\"}\n".write(to: otherData, atomically: true, encoding: .utf8)
        // (options, exit status, what the message names): refused by validate(), by the target
        // parser, and by the checks `train` makes once it has read the plan and the model.
        let refusals: [([String], Int32, String)] = [
            (["--rank", "100000"], 64, "--rank 100000"),
            (["--lr", "1e6"], 64, "--lr"),
            (["--targets", "q", "nonsense"], 64, "--targets nonsense"),
            (["--data", scratch.appendingPathComponent("nope.jsonl").path], 64, "--data"),
            (["--data", otherData.path], 64, otherData.path),
            (["--strategy", "sisa"], 64, "--strategy sisa needs a plan with budget 1"),
            (["--layers-per-block", "4"], 64, "--layers-per-block 4"),
            (["--shard", "7"], 64, "--shard 7: give 0…1"),
            (["--model", scratch.appendingPathComponent("no-model").path], 64, "--model"),
            (["--model", emptyVocabulary.path], 1, "vocab.txt"),
            (["--wait"], 64, "--wait is an option of --scheduler slurm."),
            (["--scheduler", "k8s", "--emit-manifest", "--time", "1:00"], 64, "--time is an option of --scheduler slurm"),
        ]
        for (options, status, named) in refusals {
            let arguments = ["train", "--run", run.path] + Self.trainArguments(replacing: options)
            let (exit, output) = try Self.run(arguments)
            #expect(exit == status, "\(options): exit \(exit): \(output)")
            #expect(output.contains(named), "\(options): \(output)")
            Self.expectNoRawError(output, "\(options)")
            #expect(!FileManager.default.fileExists(atPath: settings.path), "\(options) left train.json behind")
            #expect(Self.stageFiles(run).isEmpty, "\(options) trained something")
        }
        // The corrected command trains; the model path is stored relative to the run.
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        let saved = try TrainingSettings.load(from: settings)
        #expect(saved.baseModel.hasPrefix("/") == S3TEndToEndTests.trainArguments.contains { $0.hasPrefix("/") })
        #expect(Self.stageFiles(run).count == 8)
        // An option that contradicts the saved settings is a usage error (64, as retrain's
        // --threads) and leaves them as they were.
        let before = try Data(contentsOf: settings)
        let (exit, output) = try Self.run(["train", "--run", run.path, "--epochs", "2"])
        #expect(exit == 64 && output.contains("epochs") && output.contains(settings.path), "\(output)")
        #expect(try Data(contentsOf: settings) == before)
        // So is one that train.json leaves unwritten at its default (precision fp32).
        let (bf16Exit, bf16Output) = try Self.run(["train", "--run", run.path, "--precision", "bf16"])
        #expect(bf16Exit == 64 && bf16Output.contains("precision") && bf16Output.contains("fp32"), "\(bf16Output)")
        #expect(try Data(contentsOf: settings) == before)
        // A trained run that lost train.json is not trained on with new settings.
        try FileManager.default.removeItem(at: settings)
        let (lostExit, lostOutput) = try Self.run(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        #expect(lostExit == 1 && lostOutput.contains("is missing, but the run has trained stages"), "\(lostOutput)")
        #expect(!FileManager.default.fileExists(atPath: settings.path))
    }

    @Test func aWriteThatFailsInsideHDF5EndsInAnErrorNotACrash() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        // Files may not grow past 8 KB (SIGXFSZ ignored, so the write fails with EFBIG as a full
        // disk fails it with ENOSPC): the first stage file's close fails inside HDF5. HDF5's
        // shutdown at exit used to close that file again and crash the process.
        let limited = "ulimit -f 8; trap '' XFSZ; exec \"$0\" \"$@\""
        let (status, output) = try LetheProcess.runTool(
            "/bin/bash", ["-c", limited, try LetheProcess.binary().path, "train", "--run", run.path]
                + S3TEndToEndTests.trainArguments)
        #expect(status == 1, "exit \(status): \(output)")
        #expect(output.contains("close the file failed: File too large (errno 27)"), "\(output)")
        #expect(!output.contains("crashed") && !output.contains("file descriptor ="), "\(output)")
        Self.expectNoRawError(output, "train with a file size limit")
        let shard0 = RunLayout(directory: run).shardDirectory(0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: shard0.path) == [], "a file was left behind")
        #expect(!FileManager.default.fileExists(atPath: RunLayout(directory: run).servedURL.path))
    }

    @Test func twoFirstCallsOnANewRunCannotMixSettings() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        // Started together, each on its own shard, each with its own precision: whichever
        // saves train.json first trains; the other is held to those settings and refused.
        let calls = [["--shard", "0", "--precision", "fp32"], ["--shard", "1", "--precision", "bf16"]]
        let outcomes = Mutex<[Int: (status: Int32, output: String)]>([:])
        DispatchQueue.concurrentPerform(iterations: calls.count) { index in
            let outcome = (try? Self.run(["train", "--run", run.path] + Self.trainArguments(replacing: calls[index])))
                ?? (-1, "could not start lethe")
            outcomes.withLock { $0[index] = outcome }
        }
        let results = outcomes.withLock { $0 }
        let trained = results.filter { $0.value.status == 0 }
        #expect(trained.count == 1, "\(results)")
        guard let winner = trained.first?.key, let loser = results[1 - winner] else { return }
        #expect(loser.status == 64 && loser.output.contains("precision"), "\(loser.output)")
        let saved = try TrainingSettings.load(from: RunLayout(directory: run).settingsURL)
        #expect(saved.precision.rawValue == calls[winner][3])
        #expect(Self.stageFiles(run).allSatisfy { $0.hasPrefix("shard-\(winner)/") }, "\(Self.stageFiles(run))")
        let verified = try Self.run(["verify", "--run", run.path])
        #expect(verified.status == 0, "\(verified.output)")
    }

    @Test func aNonFiniteLossStopsTrainingWithNothingSavedOrPublished() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        // A base model whose embeddings of the first 200 tokens ([PAD], [CLS], [SEP] among them)
        // are NaN: every hidden state, and so the first step's loss, is NaN.
        let poisoned = scratch.appendingPathComponent("nan-model")
        try FileManager.default.copyItem(at: Self.model, to: poisoned)
        let weights = poisoned.appendingPathComponent("model.safetensors")
        let handle = try FileHandle(forUpdating: weights)
        let lengthBytes = try #require(try handle.read(upToCount: 8))
        let headerLength = lengthBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let headerBytes = try #require(try handle.read(upToCount: Int(headerLength)))
        let header = try #require(try JSONSerialization.jsonObject(with: headerBytes) as? [String: Any])
        let embeddings = try #require(header["embeddings.word_embeddings.weight"] as? [String: Any])
        let start = try #require((embeddings["data_offsets"] as? [Int])?.first)
        try handle.seek(toOffset: 8 + headerLength + UInt64(start))
        try handle.write(contentsOf: Data((0 ..< 384 * 200).flatMap { _ in [0, 0, 0xC0, 0x7F] as [UInt8] }))
        try handle.close()

        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        let (status, output) = try Self.run(["train", "--run", run.path] + Self.trainArguments(replacing: ["--model", poisoned.path]))
        #expect(status == 1, "exit \(status): \(output)")
        #expect(output.contains("shard 0 stage 1: the training loss became nan at step 1; nothing was saved"), "\(output)")
        #expect(output.contains("--lr"))
        Self.expectNoRawError(output, "train on a NaN model")
        #expect(Self.stageFiles(run).isEmpty, "a stage file was written: \(Self.stageFiles(run))")
        #expect(!FileManager.default.fileExists(atPath: RunLayout(directory: run).servedURL.path), "a composition was published")
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
        // So does a changed config.json (here its layer norm epsilon), which the run pinned too.
        let restore = try FileHandle(forUpdating: weights)   // the weights' byte back as it was
        try restore.seek(toOffset: 50_000_000)
        try restore.write(contentsOf: Data([byte[0]]))
        try restore.close()
        let config = copy.appendingPathComponent("config.json")
        let original = try String(contentsOf: config, encoding: .utf8)
        try original.replacingOccurrences(of: "1e-12", with: "0.5").write(to: config, atomically: true, encoding: .utf8)
        #expect(try String(contentsOf: config, encoding: .utf8) != original)
        let (configStatus, configOutput) = try Self.run(["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(configStatus == 1 && configOutput.contains(config.path) && configOutput.contains("SHA-256"), "\(configOutput)")
        // verify reports it (exit 3), and with train.json gone, that too.
        let verified = try Self.run(["verify", "--run", run.path])
        #expect(verified.status == 3 && verified.output.contains("base_model: ") && verified.output.contains("SHA-256"),
                "\(verified.output)")
        try FileManager.default.removeItem(at: RunLayout(directory: run).settingsURL)
        let lost = try Self.run(["verify", "--run", run.path])
        #expect(lost.status == 3 && lost.output.contains("run_settings: ") && lost.output.contains("is missing"),
                "\(lost.output)")
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
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl").path
        // An empty id is a usage error, and nothing reaches the ledger.
        let empty = try Self.run(["forget", "--run", run.path, "--id", ""])
        #expect(empty.status == 64 && empty.output.contains("--id \"\": an empty name forgets nothing"), "\(empty.output)")
        // So are an id holding a control character and a log with no request in it.
        let escape = try Self.run(["forget", "--run", run.path, "--id", "a\u{1B}[31mb"])
        #expect(escape.status == 64 && escape.output.contains("holds the control character U+001B"), "\(escape.output)")
        let blank = scratch.appendingPathComponent("blank.jsonl")
        try Data("\n  \n".utf8).write(to: blank)
        let emptyLog = try Self.run(["forget", "--run", run.path, "--log", blank.path])
        #expect(emptyLog.status == 64 && emptyLog.output.contains("holds no request"), "\(emptyLog.output)")
        let ledger = try Ledger.openForReading(at: RunLayout(directory: run).ledgerURL)
        #expect(try ledger.entries().allSatisfy { $0.kind == .publish }, "only the training's publish is recorded")
        try ledger.close()
        // An unknown id is recorded (the receipt says unknown) and exits with 5, naming it.
        let unknown = try Self.run(["forget", "--run", run.path, "--id", "no-such-example", "--json"])
        #expect(unknown.status == 5, "\(unknown.output)")
        #expect(unknown.output.contains(#""status":"unknown""#) && unknown.output.contains(#""unknown_ids":["no-such-example"]"#))
        #expect(unknown.output.contains("unknown to the plan (recorded, nothing deleted): id \"no-such-example\""))
        let blankID = try Self.run(["forget", "--run", run.path, "--id", "  "])
        #expect(blankID.status == 5 && blankID.output.contains("unknown to the plan (recorded, nothing deleted): id \"  \""),
                "\(blankID.output)")
        // An id of a space or an invisible character is one a dataset may hold: looked up, not
        // refused as empty.
        for invisible in [" ", "\u{200B}"] {
            let answer = try Self.run(["forget", "--run", run.path, "--id", invisible])
            #expect(answer.status == 5 && !answer.output.contains("empty name"), "\(answer.output)")
        }
        let id = try #require(try String(contentsOfFile: data, encoding: .utf8)
            .split(separator: "\n").first.flatMap { line in
                (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String })
        #expect(try Self.run(["forget", "--run", run.path, "--id", id]).status == 0)
        // Its only shard is dead: evaluate and predict refuse (exit 1) instead of answering.
        for command in [["evaluate", "--run", run.path, "--data", data], ["evaluate", "--run", run.path, "--data", data, "--json"],
                        ["predict", "--run", run.path, "--text", "Shares rise"]] {
            let (status, output) = try Self.run(command)
            #expect(status == 1, "\(command): exit \(status): \(output)")
            #expect(output.contains("every shard of \(run.path) is dead") && output.contains("lethe retrain --run \(run.path)"),
                    "\(command): \(output)")
            #expect(!output.contains("accuracy"), "\(command): \(output)")
        }
    }

    /// `lethe unlearn --out DIR` writes DIR/adapter.h5; `perplexity --adapter` takes DIR or the file.
    @Test func anAdapterIsFoundByItsDirectoryOrItsFile() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-adapter-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let texts = S3TEndToEndTests.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        let model = S3TEndToEndTests.root.appendingPathComponent("Checkpoints/base/SmolLM2-135M-Instruct/model.gguf").path
        let out = scratch.appendingPathComponent("u").path
        let unlearned = try Self.run(["unlearn", "--model", model, "--method", "ga", "--forget", texts, "--steps", "1",
                                      "--batch-size", "1", "--chunk-tokens", "16", "--rank", "2", "--out", out])
        #expect(unlearned.status == 0, "\(unlearned.output)")
        let file = out + "/adapter.h5"
        #expect(FileManager.default.fileExists(atPath: file))
        var perplexities: [String] = []
        for adapter in [out, file] {
            let (status, output) = try Self.run(["perplexity", "--model", model, "--data", texts, "--limit", "2",
                                                 "--chunk-tokens", "16", "--adapter", adapter, "--json"])
            #expect(status == 0, "--adapter \(adapter): \(output)")
            perplexities.append(output)
        }
        #expect(perplexities[0] == perplexities[1] && perplexities[0].contains("perplexity"))
        // A file in the way of --out is a usage error before anything loads.
        let blocked = try Self.run(["unlearn", "--model", model, "--method", "ga", "--forget", texts, "--out", texts])
        #expect(blocked.status == 64 && blocked.output.contains("--out \(texts): a file is in the way"), "\(blocked.output)")
    }

    /// Work whose memory no machine has is refused before it is allocated, and --out is not made.
    @Test func decoderWorkBeyondTheMachinesMemoryIsRefusedFirst() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-memory-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let articles = S3TEndToEndTests.root.appendingPathComponent("Datasets/bbc-news/test.jsonl").path
        let out = scratch.appendingPathComponent("u").path
        // 1024 article chunks of 2048 tokens per step: about 14 TB of activations.
        let model = S3TEndToEndTests.root.appendingPathComponent("Checkpoints/base/SmolLM2-135M-Instruct/model.gguf").path
        let (status, output) = try Self.run(["unlearn", "--model", model, "--method", "ga", "--forget", articles, "--field", "body",
                                             "--chunk-tokens", "2048", "--batch-size", "1024", "--out", out])
        #expect(status == 64, "exit \(status): \(output)")
        #expect(output.contains("training on batches of 1024 chunks of 2048 tokens needs about")
                && output.contains("lower --chunk-tokens or --batch-size"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func filesThatCannotBeReadAreNamedWithoutRawErrors() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "r")
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        let missing = scratch.appendingPathComponent("nope.jsonl").path
        let directory = scratch.path
        let notHDF5 = scratch.appendingPathComponent("adapter-dir")
        try FileManager.default.createDirectory(at: notHDF5, withIntermediateDirectories: true)
        try Data("not an adapter".utf8).write(to: notHDF5.appendingPathComponent("adapter.h5"))
        let empty = scratch.appendingPathComponent("empty-dir")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let texts = S3TEndToEndTests.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        let noText = scratch.appendingPathComponent("no-text.jsonl"), blank = scratch.appendingPathComponent("blank.jsonl")
        try Data("{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n".utf8).write(to: noText)
        try Data("\n".utf8).write(to: blank)
        let unlabelled = scratch.appendingPathComponent("unlabelled.jsonl")
        try Data("{\"id\": \"q1\", \"text\": \"no label here\"}\n".utf8).write(to: unlabelled)
        let otherLabel = scratch.appendingPathComponent("other-label.jsonl")
        try Data("{\"id\": \"q2\", \"text\": \"rain\", \"label\": \"weather\"}\n".utf8).write(to: otherLabel)
        // (arguments, exit status, what the message must name)
        let cases: [([String], Int32, String)] = [
            (["predict", "--run", run.path, "--data", missing], 64, "--data \(missing): no such file"),
            (["evaluate", "--run", run.path, "--data", directory], 64, "--data \(directory): a directory, not a file"),
            (["plan", "--data", missing, "--shards", "1", "--slices", "1", "--budget", "1", "--run",
              scratch.appendingPathComponent("p").path], 64, "--data \(missing): no such file"),
            (["forget", "--run", run.path, "--log", missing], 64, "--log \(missing): no such file"),
            (["forget", "--run", run.path, "--log", "/dev/zero"], 64, "--log /dev/zero: a device or a socket, not a file"),
            (["evaluate", "--run", run.path, "--data", unlabelled.path], 1, "has no label; evaluate needs labelled data"),
            (["evaluate", "--run", run.path, "--data", otherLabel.path], 1,
             "example q2 has label \"weather\", which the run was not trained on"),
            (["status", "--run", scratch.appendingPathComponent("no-run").path], 1, "no plan here, so this is not a run directory"),
            (["train", "--run", scratch.appendingPathComponent("no-run").path], 1, "no plan.h5 here, so this is not a run directory"),
            (["retrain", "--run", scratch.appendingPathComponent("no-run").path], 1, "no plan.h5 here, so this is not a run directory"),
            (["plan", "show", "--run", scratch.appendingPathComponent("no-run").path], 1, "no plan.h5 here, so this is not a run"),
            (["evaluate", "--run", scratch.appendingPathComponent("no-run").path, "--data", texts], 1,
             "no plan.h5 here, so this is not a run directory. Check --run, or make the run with `lethe plan"),
            (["perplexity", "--data", texts, "--limit", "2", "--adapter", empty.path], 1,
             "--adapter \(empty.path): a directory without adapter.h5"),
            (["perplexity", "--data", texts, "--limit", "2", "--adapter", notHDF5.path], 1,
             notHDF5.appendingPathComponent("adapter.h5").path),
            (["generate", "x", "--model", missing], 64, "--model \(missing): no such file"),
            (["embed", "x", "--model", missing], 64, "--model: \(missing)/model.safetensors is missing"),
            (["predict", "--run", run.path, "--data", noText.path], 1, "\(noText.path):2: no \"text\" string"),
            (["predict", "--run", run.path, "--data", blank.path], 1, "\(blank.path): holds no line to classify"),
        ]
        for (arguments, status, named) in cases {
            let (exit, output) = try Self.run(arguments)
            #expect(exit == status, "\(arguments): exit \(exit): \(output)")
            #expect(output.contains(named), "\(arguments): \(output)")
            Self.expectNoRawError(output, "\(arguments)")
        }
        // CRLF lines are lines; a control character in an id is shown escaped.
        let crlf = scratch.appendingPathComponent("crlf.jsonl")
        try Data("{\"id\": \"a\\u001b[31m\", \"text\": \"Shares rise\"}\r\n{\"text\": \"Markets fall\"}\r\n".utf8).write(to: crlf)
        let (crlfExit, crlfOutput) = try Self.run(["predict", "--run", run.path, "--data", crlf.path])
        #expect(crlfExit == 0 && crlfOutput.contains("a\\u{1B}[31m → ") && !crlfOutput.contains("\u{1B}"), "\(crlfOutput)")
        #expect(crlfOutput.split(separator: "\n").count == 2, "\(crlfOutput)")
        // A damaged train.json names the file and the field instead of a decoder dump.
        let settings = RunLayout(directory: run).settingsURL
        try Data(#"{"epochs": "three"}"#.utf8).write(to: settings)
        for command in [["train", "--run", run.path], ["status", "--run", run.path], ["predict", "--run", run.path, "--text", "x"]] {
            let (exit, output) = try Self.run(command)
            #expect(exit == 1 && output.contains(settings.path) && output.contains("field"), "\(command): \(output)")
            Self.expectNoRawError(output, "\(command)")
        }
    }

    /// Without its base model a run's stages cannot be listed (they are named by its layers), but
    /// `status` still reports everything else and says why, instead of failing.
    @Test func statusWithoutTheBaseModelSaysWhatItCannotList() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let settings = RunLayout(directory: run).settingsURL
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: settings)) as? [String: Any])
        let moved = scratch.appendingPathComponent("moved-model").path
        object["base_model"] = moved
        try JSONSerialization.data(withJSONObject: object).write(to: settings)
        let (exit, output) = try Self.run(["status", "--run", run.path])
        #expect(exit == 0 && output.contains("stages per shard: unknown") && output.contains(moved), "\(output)")
        #expect(output.contains("deletions: 0 example(s) forgotten"), "\(output)")
        let json = try Self.run(["status", "--run", run.path, "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        #expect((report["stages_unavailable"] as? String)?.contains(moved) == true && report["shard_status"] as? [Any] != nil)
        #expect(try Self.run(["verify", "--run", run.path]).status == 3)
    }

    /// A run whose train.json names its base model at a relative path where nothing is (a run
    /// moved on its own) is told where to put the model or a link; train.json may then name the
    /// model's new place: the path is no setting (the hashes are), so verify and predict accept it.
    @Test func aRunMayNameItsBaseModelsNewPlace() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let settings = RunLayout(directory: run).settingsURL
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: settings)) as? [String: Any])
        object["base_model"] = "../elsewhere/all-MiniLM-L6-v2"
        try JSONSerialization.data(withJSONObject: object).write(to: settings)
        let expected = scratch.appendingPathComponent("elsewhere/all-MiniLM-L6-v2").path
        let (exit, output) = try Self.run(["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(exit == 1 && output.contains("ln -s <the model> \(expected)") && output.contains("train.json's base_model"),
                "\(output)")
        let link = scratch.appendingPathComponent("models-moved")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: Self.model)
        object["base_model"] = link.path
        try JSONSerialization.data(withJSONObject: object).write(to: settings)
        #expect(try Self.run(["predict", "--run", run.path, "--text", "Shares rise"]).status == 0)
        let verify = try Self.run(["verify", "--run", run.path])
        #expect(verify.status == 0, "\(verify.output)")
        #expect(try Self.run(["train", "--run", run.path]).status == 0)
    }

    /// A new scratch directory (the tiny dataset, `tiny.jsonl`) with a run `one` planned as one
    /// shard of one slice and trained.
    static func trainedOneSliceRun() throws -> (scratch: URL, run: URL) {
        let scratch = try S3TEndToEndTests.prepare()
        let run = scratch.appendingPathComponent("one")
        let data = scratch.appendingPathComponent("tiny.jsonl").path
        try S3TEndToEndTests.lethe(["plan", "--data", data, "--shards", "1", "--slices", "1", "--budget", "1", "--run", run.path])
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        return (scratch, run)
    }

    /// `predict --data` reads a pipe as it reads a file, with the strict reader of the other
    /// data commands: a key given twice is refused naming its line and column. A module named
    /// twice in --targets is one target; text+lead on data without leads is said.
    @Test func predictReadsAPipeAndRefusesARepeatedKey() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let fifo = scratch.appendingPathComponent("texts.fifo")
        #expect(mkfifo(fifo.path, 0o644) == 0)
        let writer = Thread {
            try? Data("{\"id\": \"a\", \"text\": \"Shares rise\"}\n\n{\"text\": \"Striker scores\"}\n".utf8)
                .write(to: fifo)
        }
        writer.start()
        let piped = try LetheProcess.runApart(["predict", "--run", run.path, "--data", fifo.path, "--json"])
        #expect(piped.status == 0 && piped.stdout.split(separator: "\n").count == 2, "\(piped.stdout) \(piped.stderr)")
        let repeated = scratch.appendingPathComponent("repeated.jsonl")
        try Data("{\"text\": \"a\"}\n{\"text\": \"b\", \"text\": \"c\"}\n".utf8).write(to: repeated)
        let refused = try Self.run(["predict", "--run", run.path, "--data", repeated.path])
        #expect(refused.status == 1 && refused.output.contains("\(repeated.path):2: column") && refused.output.contains("text"),
                "\(refused.output)")

        let twice = try S3TEndToEndTests.copyPlan(scratch, to: "targets")
        // (text+lead on data without leads trains on the text alone, and says so.)
        let trained = try Self.run(["train", "--run", twice.path, "--targets", "q", "--targets", "query", "--targets", "v",
                                    "--text-field", "text+lead"] + S3TEndToEndTests.trainArguments)
        #expect(trained.status == 0 && trained.output.contains("no example of") && trained.output.contains("\"lead\""),
                "\(trained.output)")
        let settings = try TrainingSettings.load(from: RunLayout(directory: twice).settingsURL)
        #expect(settings.targets == ["attention.self.query", "attention.self.value"])
    }

    /// A user who may read a run but not write it gets its answers (under the shared lock, no
    /// recovery), and is refused while the run has unfinished work (an accepted deletion that
    /// recovery has not carried out), which its owner's next command completes.
    @Test func aReadOnlyRunAnswersUnlessItHasUnfinishedWork() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let answer = try LetheProcess.runReadOnly(run, ["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(answer.status == 0 && answer.output.contains("Shares rise →"), "\(answer.output)")
        // A request recorded in the ledger without its forget: unfinished work.
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first)
        let ledger = try Ledger.open(at: RunLayout(directory: run).ledgerURL)
        _ = try ledger.append(LedgerDraft(kind: .request, timestampMilliseconds: 1_700_000_000_000,
                                          payload: RequestRecord(requestID: "r-1", id: id, group: nil, timestamp: nil,
                                                                 examples: [id]).json,
                                          keys: [.requestID("r-1"), .exampleID(id)]))
        try ledger.close()
        let refused = try LetheProcess.runReadOnly(run, ["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(refused.status == 1 && refused.output.contains("unfinished work")
                && refused.output.contains("lethe forget --run \(run.path) --resume"), "\(refused.output)")
        let owner = try Self.run(["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(owner.status == 1 && owner.output.contains("every shard"), "its one shard is dead now: \(owner.output)")
    }

    /// A sealed stage file copied into another stage's place (say, one a forget erased, put back
    /// under a served name) is refused where it is loaded and reported by verify.
    @Test func aStageFileInAnotherStagesPlaceIsRefused() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "swap")
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        let shard = RunLayout(directory: run).shardDirectory(0)
        let firsts = try FileManager.default.contentsOfDirectory(atPath: shard.path).filter { $0.hasPrefix("stage-1-") }.sorted()
        try #require(firsts.count == 2, "two sequences, two first stages: \(firsts)")
        let served = shard.appendingPathComponent(firsts[0])
        try FileManager.default.removeItem(at: served)
        try FileManager.default.copyItem(at: shard.appendingPathComponent(firsts[1]), to: served)
        let (exit, output) = try Self.run(["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(exit == 1 && output.contains(served.path) && output.contains("stage_key"), "\(output)")
        let verify = try Self.run(["verify", "--run", run.path])
        #expect(verify.status == 3 && verify.output.contains("misplaced_stage: \(served.path)"), "\(verify.output)")
        // train does not take it for that stage, complete: it names it instead of publishing it.
        let train = try Self.run(["train", "--run", run.path])
        #expect(train.status == 1 && train.output.contains(served.path) && train.output.contains("stage_key")
                && !train.output.contains("already complete"), "\(train.output)")
        // The path names the shard too.
        let other = URL(fileURLWithPath: "/runs/r/stages/shard-1/" + firsts[1])
        let key = String(firsts[1].dropFirst("stage-1-".count).dropLast(".h5".count))
        #expect(StageCheckpoint.slotMismatch(other, shard: 0, stage: 1, key: key)?.field == "shard")
        #expect(StageCheckpoint.slotMismatch(shard.appendingPathComponent(firsts[1]), shard: 0, stage: 1, key: key) == nil)
    }

    /// A stage holding NaN (written whole: its tensor hash and seal agree) is refused where it
    /// is loaded, instead of answering NaN with exit 0; verify names it.
    @Test func aStageHoldingNaNIsRefused() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stage = try #require(RunLayout(directory: run).anyStageFile())
        var checkpoint = try StageCheckpoint.load(from: stage)
        let first = checkpoint.adapters[0]
        checkpoint.adapters[0] = NamedTensor(name: first.name, shape: first.shape, values: [.nan] + first.values.dropFirst())
        try FileManager.default.removeItem(at: stage)
        try checkpoint.save(to: stage)
        let (exit, output) = try Self.run(["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(exit == 1 && output.contains(stage.path) && output.contains("1 adapter or head value(s) are NaN"), "\(output)")
        let verify = try Self.run(["verify", "--run", run.path])
        #expect(verify.status == 3 && verify.output.contains("non_finite_tensor: \(stage.path)"), "\(verify.output)")
    }

    /// A damaged served.json stops the commands that would trust it, but verify reports it as a
    /// finding, and the advice every message gives works: set it aside, train, and the run
    /// answers and forgets again.
    @Test func aDamagedServedJSONIsReportedAndTheAdviceRepublishesIt() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let served = RunLayout(directory: run).servedURL
        var bytes = try Data(contentsOf: served)
        bytes[bytes.count / 2] ^= 0x04
        try bytes.write(to: served)
        let predict = try Self.run(["predict", "--run", run.path, "--text", "Shares rise"])
        #expect(predict.status == 1 && predict.output.contains("mv \(served.path) \(served.path).damaged"), "\(predict.output)")
        let verify = try Self.run(["verify", "--run", run.path])
        #expect(verify.status == 3 && verify.output.contains("unreadable_composition"), "\(verify.output)")
        try FileManager.default.moveItem(at: served, to: served.appendingPathExtension("damaged"))
        try S3TEndToEndTests.lethe(["train", "--run", run.path])
        #expect(try Self.run(["predict", "--run", run.path, "--text", "Shares rise"]).status == 0)
        #expect(try Self.run(["verify", "--run", run.path]).status == 0)
    }

    /// A deletion does not wait for an operator when served.json is damaged: the forget is
    /// accepted and publishes, in its place, the composition an intact run publishes for the same
    /// forget (checked against a twin run), keeps the damaged file beside it and names it in the
    /// receipt. Status reports the damage before; verify is clean after.
    @Test func aForgetRepublishesADamagedServedJSON() throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "damaged")
        try S3TEndToEndTests.lethe(["train", "--run", run.path] + S3TEndToEndTests.trainArguments)
        let twin = scratch.appendingPathComponent("twin")
        try FileManager.default.copyItem(at: run, to: twin)
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let ids = (0..<2).map { shard in plan.undeletedExampleIDs.first { plan.location(of: $0)?.shard == shard }! }
        let served = RunLayout(directory: run).servedURL

        var bytes = try Data(contentsOf: served)
        bytes[bytes.count / 2] ^= 0x04
        try bytes.write(to: served)
        let status = try Self.run(["status", "--run", run.path, "--json"])
        #expect(status.status == 0 && status.output.contains("\"served_unreadable\":\"its content hash does not match"),
                "\(status.output)")

        // Damaged bytes, then a FIFO in its place (which must neither hang nor be read).
        for (index, id) in ids.enumerated() {
            if index == 1 {
                try FileManager.default.removeItem(at: served)
                #expect(mkfifo(served.path, 0o644) == 0)
            }
            let forget = try Self.run(["forget", "--run", run.path, "--id", id, "--json"])
            let keptAs = "served.json.damaged" + (index == 0 ? "" : "-2")
            #expect(forget.status == 0 && forget.output.contains("\"kept_as\":\"\(keptAs)\""), "\(forget.output)")
            #expect(try Self.run(["forget", "--run", twin.path, "--id", id]).status == 0)
            let repaired = try ServedComposition.load(from: served)
            let intact = try ServedComposition.load(from: RunLayout(directory: twin).servedURL)
            #expect(repaired.shards == intact.shards && repaired.ledgerHead.sequenceNumber == intact.ledgerHead.sequenceNumber)
            #expect(!repaired.shards.allSatisfy { $0.prefixLength == 2 }, "the forget truncated a shard")
        }
        #expect(try Data(contentsOf: run.appendingPathComponent("served.json.damaged")) == bytes)
        #expect(try S3TEndToEndTests.stageHashes(run) == S3TEndToEndTests.stageHashes(twin))
        let verify = try Self.run(["verify", "--run", run.path])
        #expect(verify.status == 0, "\(verify.output)")
        #expect(try Self.run(["predict", "--run", run.path, "--text", "Shares rise"]).status == 0)
    }

    /// train.json edited after training (other epochs) is refused by the commands that would
    /// train on beside the existing stages; removed, every command says the same thing.
    @Test func anEditedOrMissingTrainJSONIsNamedTheSameWayEverywhere() throws {
        let (scratch, run) = try Self.trainedOneSliceRun()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let settings = RunLayout(directory: run).settingsURL
        let original = try Data(contentsOf: settings)
        var object = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        object["epochs"] = 2
        try JSONSerialization.data(withJSONObject: object).write(to: settings)
        // (retrain has nothing to retrain here, so it trains nothing and needs no check.)
        for command in [["train", "--run", run.path]] {
            let (exit, output) = try Self.run(command)
            #expect(exit == 1 && output.contains(settings.path) && output.contains("epochs is 2") && output.contains("with 1"),
                    "\(command): \(output)")
        }
        // A recorded hash that is no SHA-256 (one digit changed into a letter) is train.json's
        // fault, said so, not blamed on the model's files.
        object["epochs"] = 1
        let recorded = try #require(object["base_model_sha256"] as? String)
        object["base_model_sha256"] = "g" + recorded.dropFirst()
        try JSONSerialization.data(withJSONObject: object).write(to: settings)
        for command in [["predict", "--run", run.path, "--text", "x"], ["train", "--run", run.path]] {
            let (exit, output) = try Self.run(command)
            #expect(exit == 1 && output.contains(settings.path) && output.contains("base_model_sha256")
                    && output.contains("no SHA-256") && !output.contains("model.safetensors"), "\(command): \(output)")
        }
        try original.write(to: settings)
        // A served stage file that is gone is named, with what to run.
        let served = try ServedComposition.load(from: RunLayout(directory: run).servedURL)
        let entry = try #require(served.shards.first { !$0.isDead })
        let stage = RunLayout(directory: run).stageURL(shard: entry.shard, stage: 1, key: entry.stageKeys[0])
        let stageBytes = try Data(contentsOf: stage)
        try FileManager.default.removeItem(at: stage)
        let (missingExit, missing) = try Self.run(["predict", "--run", run.path, "--text", "x"])
        #expect(missingExit == 1 && missing.contains(stage.path) && missing.contains("the file is missing")
                && missing.contains("lethe train --run \(run.path)"), "\(missing)")
        try stageBytes.write(to: stage)

        try FileManager.default.removeItem(at: settings)
        for command in [["status", "--run", run.path], ["train", "--run", run.path],
                        ["predict", "--run", run.path, "--text", "x"]] {
            let (_, output) = try Self.run(command)
            #expect(output.contains("is missing, but the run has trained stages") && output.contains("restore it from a backup"),
                    "\(command): \(output)")
        }
    }
}

