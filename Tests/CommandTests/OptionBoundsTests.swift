import Foundation
import RunFixtures
import Testing

/// Every numeric option states its range in `--help`, and a value outside it is refused before
/// any work as a usage error (exit 64) whose message names the option, the value and the range.
@Suite struct OptionBoundsTests {
    /// Runs `lethe` on a wide terminal, so no help line is wrapped inside a range.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try HelpTextTests.run(arguments, columns: 400)
    }

    struct Case: CustomStringConvertible, Sendable {
        /// The command and the arguments it needs besides the option under test.
        let command: [String]
        let option: String
        let value: String
        /// The range as the error prints it.
        let range: String
        /// The range as the option's help states it, when it differs (a bound set by another option).
        var helpRange: String? = nil
        var description: String { (command + [option, value]).joined(separator: " ") }

        /// The subcommand whose help documents the option (`lethe plan` plans with `plan create`).
        var helpCommand: [String] {
            let words = Array(command.prefix { !$0.hasPrefix("-") && $0 != "x" })
            return words == ["plan"] ? ["plan", "create"] : words
        }
    }

    /// The help text of `option` in `help`'s option list: its line and the indented lines that
    /// continue it.
    static func helpEntry(of option: String, in help: String) -> String? {
        let lines = help.components(separatedBy: "\nOPTIONS:\n").dropFirst().joined().split(separator: "\n").map(String.init)
        guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(option + " ") }) else {
            return nil
        }
        let rest = lines[(start + 1)...].prefix { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("-") && !$0.isEmpty }
        return ([lines[start]] + rest).joined(separator: " ")
    }

    /// A run directory that does not exist: validation must refuse before anything touches it.
    static let missingRun = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bounds-never-created").path

    static let cases: [Case] = [
        Case(command: ["train", "--run", missingRun], option: "--rank", value: "100000", range: "1…256"),
        Case(command: ["train", "--run", missingRun], option: "--lr", value: "1e6", range: "1e-08…1"),
        Case(command: ["train", "--run", missingRun], option: "--lr", value: "nan", range: "1e-08…1"),
        Case(command: ["train", "--run", missingRun], option: "--lr", value: "0", range: "1e-08…1"),
        Case(command: ["train", "--run", missingRun], option: "--epochs", value: "0", range: "1…1000"),
        Case(command: ["train", "--run", missingRun], option: "--batch-size", value: "0", range: "1…4096"),
        Case(command: ["train", "--run", missingRun], option: "--max-tokens", value: "100000", range: "4…512"),
        Case(command: ["train", "--run", missingRun], option: "--threads", value: "0", range: "1…256"),
        Case(command: ["train", "--run", missingRun], option: "--alpha", value: "0", range: "0.001…10000"),
        Case(command: ["train", "--run", missingRun], option: "--layers-per-block", value: "65", range: "1…64"),
        Case(command: ["train", "--run", missingRun], option: "--jobs", value: "0", range: "1…4096"),
        Case(command: ["train", "--run", missingRun, "--scheduler", "slurm"], option: "--max-parallel", value: "0",
             range: "1…4096"),
        Case(command: ["train", "--run", missingRun, "--scheduler", "slurm"], option: "--cpus-per-task", value: "0",
             range: "1…256"),
        Case(command: ["finetune", "--data", "x.jsonl", "--run", missingRun], option: "--layers", value: "0", range: "1…64"),
        Case(command: ["finetune", "--data", "x.jsonl", "--run", missingRun], option: "--epochs", value: "5000", range: "1…1000"),
        Case(command: ["plan", "--data", "x.jsonl", "--slices", "2", "--budget", "1", "--run", missingRun],
             option: "--shards", value: "100000", range: "1…4096"),
        Case(command: ["plan", "--data", "x.jsonl", "--shards", "2", "--budget", "1", "--run", missingRun],
             option: "--slices", value: "65", range: "1…64"),
        Case(command: ["plan", "--data", "x.jsonl", "--shards", "2", "--slices", "2", "--run", missingRun],
             option: "--budget", value: "0", range: "1…1024"),
        Case(command: ["plan", "--data", "x.jsonl", "--shards", "2", "--slices", "2", "--budget", "1", "--run", missingRun],
             option: "--exponent", value: "0", range: "0.001…1000000"),
        Case(command: ["simulate", "--shards", "2", "--slices", "2", "--budget", "1"], option: "--trials", value: "1",
             range: "2…10000000"),
        Case(command: ["retrain", "--run", missingRun], option: "--passes", value: "0", range: "1…100"),
        Case(command: ["serve", "--run", missingRun], option: "--port", value: "70000", range: "0…65535"),
        Case(command: ["serve", "--run", missingRun], option: "--max-batch", value: "0", range: "1…4096"),
        Case(command: ["serve", "--run", missingRun], option: "--max-wait-ms", value: "5000", range: "0…1000"),
        Case(command: ["serve", "--run", missingRun], option: "--poll-ms", value: "0", range: "1…1000"),
        Case(command: ["serve", "--run", missingRun], option: "--max-body-mb", value: "0", range: "1…1024"),
        Case(command: ["serve", "--run", missingRun], option: "--threads", value: "0", range: "1…256"),
        Case(command: ["retrain", "--run", missingRun], option: "--threads", value: "999", range: "1…256"),
        Case(command: ["verify", "--run", missingRun], option: "--replay", value: "0", range: "1…10000"),
        Case(command: ["embed", "x"], option: "--dimensions", value: "0", range: "1…384"),
        Case(command: ["embed", "x"], option: "--threads", value: "0", range: "1…256"),
        Case(command: ["generate", "x"], option: "--max-positions", value: "4000000", range: "2…8192"),
        Case(command: ["generate", "x"], option: "--threads", value: "0", range: "1…256"),
        Case(command: ["perplexity", "--data", "x.jsonl"], option: "--chunk-tokens", value: "1", range: "2…2048",
             helpRange: "2…--max-positions"),
        Case(command: ["perplexity", "--data", "x.jsonl"], option: "--limit", value: "0", range: "1…100000000"),
        Case(command: ["unlearn", "--method", "ga", "--forget", "x.jsonl", "--out", missingRun], option: "--lr", value: "2",
             range: "1e-08…1"),
        Case(command: ["unlearn", "--method", "ga", "--forget", "x.jsonl", "--out", missingRun], option: "--steps", value: "0",
             range: "1…100000"),
        Case(command: ["unlearn", "--method", "ga", "--forget", "x.jsonl", "--out", missingRun], option: "--batch-size",
             value: "5000", range: "1…1024"),
        Case(command: ["unlearn", "--method", "ga", "--forget", "x.jsonl", "--out", missingRun], option: "--rank", value: "0",
             range: "1…256"),
        Case(command: ["unlearn", "--method", "ga", "--forget", "x.jsonl", "--out", missingRun], option: "--alpha", value: "nan",
             range: "0.001…10000"),
        Case(command: ["eval-forget", "--forget", "x.jsonl", "--unseen", "y.jsonl"], option: "--chunk-tokens",
             value: "9000", range: "2…2048", helpRange: "2…--max-positions"),
        Case(command: ["bench", "kernels"], option: "--repetitions", value: "0", range: "1…1000"),
        Case(command: ["bench", "peak"], option: "--seconds", value: "60", range: "0.001…10"),
        Case(command: ["bench", "store"], option: "--megabytes", value: "100000", range: "1…4096"),
        Case(command: ["bench", "ledger"], option: "--count", value: "0", range: "1…100000000"),
        Case(command: ["bench", "plan"], option: "--examples", value: "0", range: "1…50000000"),
        Case(command: ["bench", "forget"], option: "--log-size", value: "0", range: "1…10000000"),
        Case(command: ["bench", "train"], option: "--epochs", value: "0", range: "1…1000"),
        Case(command: ["bench", "unlearn"], option: "--rank", value: "0", range: "1…256"),
        // A NaN among several learning rates is named under --lrs, not --table-lr.
        Case(command: ["bench", "unlearn"], option: "--lrs", value: "nan", range: "1e-08…1"),
        Case(command: ["bench", "serve"], option: "--rounds", value: "0", range: "1…100"),
        Case(command: ["bench", "decoder"], option: "--batch", value: "0", range: "1…1024"),
    ]

    @Test(arguments: OptionBoundsTests.cases)
    func anOutOfRangeValueIsAUsageErrorNamingOptionValueAndRange(_ c: Case) throws {
        let (status, output) = try Self.run(c.command + [c.option, c.value])
        #expect(status == 64, "\(c): exit \(status)\n\(output)")
        let message = output.split(separator: "\n").first.map(String.init) ?? ""
        #expect(message.hasPrefix("Error: \(c.option) "), "\(c): \(message)")
        #expect(message.contains(c.range), "\(c): \(message)")
        #expect(!FileManager.default.fileExists(atPath: Self.missingRun), "\(c) created \(Self.missingRun)")
        // The range is documented in the option's own help.
        let entry = Self.helpEntry(of: c.option, in: try Self.run(c.helpCommand + ["--help"]).output)
        let documented = c.helpRange ?? c.range
        #expect(entry?.contains(documented) == true, "\(c): the help of \(c.option) does not state \(documented): \(entry ?? "none")")
    }

    @Test func aValueWithinTheRangeIsNotRefusedByValidation() throws {
        // The same options at their bounds pass validation and fail later, on the missing run.
        let (status, output) = try Self.run(["train", "--run", Self.missingRun, "--rank", "256", "--lr", "1", "--epochs", "1000",
                                             "--max-tokens", "512", "--layers-per-block", "64"])
        #expect(status != 64 && output.contains(Self.missingRun), "\(output)")
    }

    /// `--lr -1` cannot parse (the value reads as an option); the error says so and how to write
    /// it, and `--lr=-1` then reaches the range check.
    @Test func aNegativeValueAfterAnOptionIsExplained() throws {
        let (status, output) = try Self.run(["train", "--run", Self.missingRun, "--lr", "-1"])
        #expect(status == 64 && output.contains("write --lr=-1"), "\(output)")
        let (spelled, message) = try Self.run(["train", "--run", Self.missingRun, "--lr=-1"])
        #expect(spelled == 64 && message.hasPrefix("Error: --lr ") && !message.contains("Note:"), "\(message)")
    }

    /// `bench unlearn --exact` plans one example per article into shards × slices: too few
    /// articles for them are refused before any training, not after the sweep.
    @Test func anExactRunWithTooFewArticlesIsRefusedUpFront() throws {
        let (status, output) = try Self.run(["bench", "unlearn", "--exact", "--exact-shards", "3", "--exact-slices", "2",
                                             "--forget-articles", "2", "--retain-articles", "2", "--out", Self.missingRun])
        #expect(status == 64 && output.contains("--exact-shards 3 × --exact-slices 2 needs at least 6 examples"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: Self.missingRun))
    }

    /// The exact run's plan is checked as `lethe plan` checks it: a budget above L! sequences is
    /// refused before any work, naming the bench's own options.
    @Test func anExactRunWithMoreSequencesThanOrdersIsRefusedUpFront() throws {
        let (status, output) = try Self.run(["bench", "unlearn", "--exact", "--exact-budget", "30", "--exact-slices", "3",
                                             "--out", Self.missingRun])
        #expect(status == 64 && output.contains("--exact-budget 30") && output.contains("6"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: Self.missingRun))
    }

    /// A --data path that is a loop of symbolic links, or a link to nothing, is named as such.
    @Test func aLinkLoopOrADanglingLinkIsNamed() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-links-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let loop = scratch.appendingPathComponent("loop.jsonl"), other = scratch.appendingPathComponent("other.jsonl")
        try FileManager.default.createSymbolicLink(atPath: loop.path, withDestinationPath: other.path)
        try FileManager.default.createSymbolicLink(atPath: other.path, withDestinationPath: loop.path)
        let dangling = scratch.appendingPathComponent("dangling.jsonl")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: scratch.appendingPathComponent("gone").path)
        for (path, named) in [(loop.path, "a loop of symbolic links"), (dangling.path, "a symbolic link to a file that does not exist")] {
            let (status, output) = try Self.run(["plan", "--data", path, "--shards", "1", "--slices", "1", "--budget", "1",
                                                 "--run", Self.missingRun])
            #expect(status == 64 && output.contains("--data \(path): \(named)"), "\(output)")
        }
    }

    /// `lethe help` of a command that does not exist is an error, not the top-level help.
    @Test func helpOfAnUnknownCommandIsAnError() throws {
        let unknown = try Self.run(["help", "plan", "nothing"])
        #expect(unknown.status == 64 && unknown.output.contains("`nothing` is not a command of `lethe plan`"), "\(unknown.output)")
        let known = try Self.run(["help", "plan", "show"])
        #expect(known.status == 0 && known.output.contains("USAGE: lethe plan show"), "\(known.output)")
    }

    /// The manifest's options without the scheduler that reads them are refused, not ignored.
    @Test func kubernetesOptionsWithoutKubernetesAreRefused() throws {
        for option in [["--image", "registry.example/lethe:2"], ["--volume-claim", "runs"]] {
            let (status, output) = try Self.run(["train", "--run", Self.missingRun] + option)
            #expect(status == 64 && output.contains("\(option[0]) is an option of --scheduler k8s"), "\(output)")
        }
        // What goes into the manifest's YAML is checked; --jobs has no place beside a cluster.
        for (arguments, named) in [(["--image", "a b"], "--image \"a b\": give an image reference"),
                                   (["--image", ""], "--image \"\": give an image reference"),
                                   (["--volume-claim", "runs\nkind: Pod"], "a claim's name is lower-case letters"),
                                   (["--volume-claim", "Runs"], "a claim's name is lower-case letters"),
                                   (["--jobs", "2"], "--jobs runs shards as processes here")] {
            let (status, output) = try Self.run(["train", "--run", Self.missingRun, "--scheduler", "k8s", "--emit-manifest"]
                                                + arguments)
            #expect(status == 64 && output.contains(named), "\(arguments): \(output)")
        }
        // retrain offers local and slurm only: its help and its parser know no k8s options.
        let help = try Self.run(["retrain", "--help"])
        #expect(help.status == 0 && help.output.contains("--scheduler <scheduler> Where shards retrain"), "\(help.output)")
        for name in ["k8s", "--emit-manifest", "--image", "--volume-claim"] {
            #expect(!help.output.contains(name), "retrain --help names \(name): \(help.output)")
        }
        for (arguments, named) in [(["--scheduler", "k8s"], "Please provide one of 'local' and 'slurm'"),
                                   (["--emit-manifest"], "--emit-manifest is an option of `lethe train`"),
                                   (["--mem", "4G"], "--mem is an option of --scheduler slurm.")] {
            let (status, output) = try Self.run(["retrain", "--run", Self.missingRun] + arguments)
            #expect(status == 64 && output.contains(named), "\(arguments): \(output)")
        }
    }

    /// An empty --run (an unset shell variable) never means the working directory.
    @Test func anEmptyRunIsRefused() throws {
        for arguments in [["forget", "--run", "", "--id", "x"], ["status", "--run", ""], ["plan", "--run", "", "--data", "x.jsonl", "--shards", "1", "--slices", "1", "--budget", "1"],
                          ["finetune", "--run", "", "--data", "x.jsonl"], ["perplexity", "--run", "", "--data", "x.jsonl"]] {
            let (status, output) = try Self.run(arguments)
            #expect(status == 64 && output.contains("--run is empty"), "\(arguments): \(output)")
        }
    }

    /// A second `bench unlearn` into an --out another one is writing is refused before any work.
    @Test func aSecondBenchUnlearnIntoTheSameOutIsRefused() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-out-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // flock(1) holds the lock (flock(2), as Lethe takes it) while the second run starts.
        let (status, output) = try LetheProcess.runTool("/usr/bin/flock", [
            out.appendingPathComponent(".bench-unlearn.lock").path, try LetheProcess.binary().path,
            "bench", "unlearn", "--out", out.path])
        #expect(status == 1 && output.contains("another `lethe bench unlearn` is writing there"), "\(output)")
    }

    /// An option of one value given twice is refused, naming both values, before any work; an
    /// option that takes several values may repeat.
    @Test func aSingleValuedOptionGivenTwiceIsRefused() throws {
        for arguments in [["train", "--run", Self.missingRun, "--seed", "1", "--seed", "2"],
                          ["train", "--run", Self.missingRun, "--seed=1", "--seed", "2"]] {
            let (status, output) = try Self.run(arguments)
            #expect(status == 64 && output.contains("--seed is given twice (1 and 2)") && !output.contains(Self.missingRun),
                    "\(output)")
        }
        // Named before the command's own checks (here: a data file that does not exist).
        let (planned, planOutput) = try Self.run(["plan", "--seed", "1", "--seed=2", "--data", Self.missingRun, "--shards", "2",
                                                  "--slices", "2", "--budget", "2", "--run", Self.missingRun])
        #expect(planned == 64 && planOutput.contains("--seed is given twice (1 and 2)"), "\(planOutput)")
        let (runs, runOutput) = try Self.run(["status", "--run", Self.missingRun, "--run", "elsewhere"])
        #expect(runs == 64 && runOutput.contains("--run is given twice (\(Self.missingRun) and elsewhere)"), "\(runOutput)")
        // --id repeats in forget: the run is reached (and is missing), no refusal of the repetition.
        let (ids, idOutput) = try Self.run(["forget", "--run", Self.missingRun, "--id", "a", "--id", "b"])
        #expect(ids != 64 && idOutput.contains(Self.missingRun) && !idOutput.contains("given twice"), "\(idOutput)")
    }
}
