import ArgumentParser
import CommandSupport
import Foundation
import Planning
import Store
import Support
import Training

extension Assignment: ExpressibleByArgument {}

/// `lethe plan`: `create` (the default, so `lethe plan --data …` plans) and `show`.
///
/// Why a default subcommand rather than options on `plan` itself: both need `--run`, and an
/// option of a parent command would swallow the subcommand's.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan a run (shards, slices, sequences) or look an example up in a plan.",
        discussion: ExitStatus.help(),
        subcommands: [PlanCreateCommand.self, PlanShowCommand.self],
        defaultSubcommand: PlanCreateCommand.self
    )
}

/// `lethe plan [create]`: partitions a dataset into shards, slices and sequences and writes `plan.h5`.
struct PlanCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Partition a dataset into shards, slices and training sequences (writes RUN/plan.h5); the default of `lethe plan`.",
        discussion: """
            Every example goes to exactly one shard and one slice; slice sizes within a shard \
            differ by at most one (random assignment) and nothing is dropped. Each slice gets a \
            content hash (SHA-256 over its sorted ids), each shard B sequences (orders of its L \
            slices): cyclic rotations, or BMS from a per-slice deletion prior.

            Example:
              lethe plan --data Datasets/bbc-news/train.jsonl --shards 4 --slices 3 --budget 3 --run Checkpoints/runs/demo

            \(ExitStatus.help())
            """
    )

    @Option(help: "JSON Lines dataset: one {\"id\", \"text\", \"label\", optional \"group\"} object per line; without \"label\" on every line it is text data, which `lethe train` trains a decoder on.")
    var data: String

    @OptionGroup var shape: PlanShapeOptions
    var shards: Int { shape.shards }
    var slices: Int { shape.slices }
    var selection: SequenceSelection { shape.selection }

    @Option(help: "BMS prior: one deletion probability per slice, as a JSON array or {\"slice\": p}, given inline ('[0.4,0.3,0.2,0.1]') or as a file holding it.")
    var prior: String?

    @Option(help: "How examples are dealt: random (seeded shuffle) or group (a group stays in one slice).")
    var assign: Assignment = .random

    @Option(help: "Seed of the random assignment, \(CommonBounds.seedText).")
    var seed: UInt64 = 0

    @Option(name: .customLong("run"), help: "Run directory; created if missing.")
    var runDirectory: String

    @Flag(help: "Replace a plan that the run directory already holds. Refused once the run has trained stages (they were made from the old plan), a deletion ledger or tombstones (a new plan would lose which examples were forgotten); plan into a new directory instead.")
    var force = false

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// Refuses a prior that does not fit `slices` slices as a usage error, before any work. A
    /// prior read from a pipe is checked when it is read (reading it here would consume it).
    static func checkPrior(_ argument: String?, slices: Int) throws {
        guard let argument, priorFile(argument).map({ FileKind.irregular(atPath: $0) == nil }) ?? true else { return }
        do { _ = try Prior.read(argument: argument, sliceCount: slices) } catch let error as PlanningError {
            throw ValidationError("\(error)")
        }
    }

    /// `--prior`'s value when it names a file (not inline JSON), for the input-file checks.
    static func priorFile(_ value: String) -> String? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        return trimmed.hasPrefix("[") || trimmed.hasPrefix("{") ? nil : value
    }

    func validate() throws {
        if prior != nil && selection != .bms {
            throw ValidationError("--prior is used only by --selection bms; add --selection bms or drop --prior.")
        }
        try RunOptions.checkUTF8(runDirectory, option: "--run")
        try InputFiles.check([("--data", data), ("--prior", prior.flatMap(Self.priorFile))])
        try Self.checkPrior(prior, slices: slices)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ValidationError("--run \(runDirectory): is a file, not a directory; give a new or existing directory.")
        }
    }

    func run() throws {
        var parameters = shape.parameters(assignment: assign, seed: seed)
        if let prior {
            parameters.prior = try Prior.read(argument: prior, sliceCount: slices)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let runURL = URL(fileURLWithPath: runDirectory)
        // A pipe, or a path of this process's own descriptors (/dev/stdin, /dev/fd/N): later
        // commands will not find the data there.
        let piped = InputFile.isPipe(data) || ["/dev/stdin", "/dev/fd/", "/proc/self/"].contains { data.hasPrefix($0) }
        let layout = RunLayout(directory: runURL)
        func makePlan() throws -> Plan {
            try Planner.planRun(dataURL: URL(fileURLWithPath: data), dataSource: data,
                                recordedSource: RunRelativePath.recorded(data, run: runURL),
                                parameters: parameters, runDirectory: runURL, force: force)
        }
        let plan: Plan
        if FileManager.default.fileExists(atPath: runURL.path) {
            // Under the run lock, so no forget lands between the check and the new plan; the
            // temporary file of a plan killed mid-write is removed there, where no live writer
            // can own it.
            plan = try FileLock.withExclusiveLock(layout.lockURL) {
                if !FileManager.default.fileExists(atPath: layout.planURL.path) {
                    // A lost plan.h5 beside its ledger or stages is restored, never planned anew.
                    let remaining = Plan.filesMadeFromAPlan(in: runURL)
                    if !remaining.isEmpty {
                        throw PlanningError.planMissing(directory: runURL.path, remaining: remaining)
                    }
                } else if force {
                    try Self.refuseReplacingForgottenHistory(layout)
                    try SlurmQueue.requireNoActiveJob(run: runURL)
                }
                _ = layout.removeLockedWritersTemporaryFiles()
                return try makePlan()
            }
        } else {
            plan = try makePlan()
        }
        if piped {
            // The plan records the path, which will not hold the data again.
            StandardError.write(Data(("warning: --data \(data) is a pipe or this process's own input, and the plan records that path: pass the "
                + "same data as a file with --data to train, to forget --group and to evaluate, or plan from a file "
                + "instead (a server resolves group deletions only from the recorded file).\n").utf8))
        }
        let seconds = (clock.now - start).seconds
        let summary = PlanSummary(plan: plan, path: Plan.url(inRun: runURL).path, seconds: seconds)
        print(json ? try summary.json() : summary.text)
    }
}

extension PlanCreateCommand {
    /// Refuses to replace the plan of a run that has forgotten anything: its tombstones and
    /// ledger bind every later training of that data, and a new plan would not carry them.
    static func refuseReplacingForgottenHistory(_ layout: RunLayout) throws {
        // Refusals (exit 1), not usage errors: the option is well formed, the run's state is in
        // the way. Forgotten history first, since no deletion of files can lift it.
        let tombstones = (try? Plan.load(from: layout.planURL).tombstones.count) ?? 0
        let hasLedger = FileManager.default.fileExists(atPath: layout.ledgerURL.path)
        guard tombstones == 0 && !hasLedger else {
            throw UserFacingError(description: "--force: \(layout.directory.path) has " + (hasLedger ? "a deletion ledger" : "")
                                  + (hasLedger && tombstones > 0 ? " and " : "")
                                  + (tombstones > 0 ? "\(tombstones) deleted example(s)" : "")
                                  + "; a new plan would train on forgotten data again. Plan into a new run directory "
                                  + "from a dataset without the forgotten examples instead.")
        }
        // A train or retrain at work on a shard trains the plan being replaced (its commits then
        // refuse, but its work would be lost): refused while one holds a shard's lock.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: layout.directory.path)) ?? []
        for name in names.sorted() where (name.hasPrefix(".train-shard-") || name.hasPrefix(".retrain-shard-"))
            && name.hasSuffix(".lock") {
            let url = layout.directory.appendingPathComponent(name)
            if (try? FileLock.withLockIfFree(url, {})) == nil {
                throw UserFacingError(description: "--force: a `lethe \(name.hasPrefix(".train") ? "train" : "retrain")` is "
                                      + "working on \(layout.directory.path) (it holds \(name)); let it end or stop it, "
                                      + "then plan again.")
            }
        }
        // Stages and served.json were trained on the plan being replaced; under a new plan no
        // forget, audit or verify would account for them, so they would outlive a deletion.
        if layout.anyStageFile() != nil || FileManager.default.fileExists(atPath: layout.servedURL.path) {
            throw UserFacingError(description: "--force: \(layout.directory.path) has trained stages (stages/, served.json) "
                                  + "made from the plan it would replace. Plan into a new run directory, or delete stages/ "
                                  + "and served.json first if those models are to go.")
        }
    }
}

/// What `lethe plan` prints.
struct PlanSummary: Encodable {
    var path: String
    var examples: Int
    var shards: Int
    var slices: Int
    var budget: Int
    var selection: String
    var assignment: String
    var seed: UInt64
    var datasetSHA256: String
    var sliceSizes: [[Int]]
    var sequences: [[Int]]
    var seconds: Double

    init(plan: Plan, path: String, seconds: Double) {
        self.path = path
        examples = plan.exampleCount
        shards = plan.shardCount
        slices = plan.sliceCount
        budget = plan.budget
        selection = plan.parameters.selection.rawValue
        assignment = plan.parameters.assignment.rawValue
        seed = plan.parameters.seed
        datasetSHA256 = plan.datasetSHA256
        sliceSizes = (0..<plan.shardCount).map { h in (0..<plan.sliceCount).map { plan.memberCount(shard: h, slice: $0) } }
        sequences = plan.sequences(of: 0)
        self.seconds = seconds
    }

    var text: String {
        let sizes = sliceSizes.flatMap { $0 }
        return """
            Planned \(counted(examples, "example")) into \(counted(shards, "shard")) × \(counted(slices, "slice")), \
            \(counted(budget, "\(selection) sequence")) per shard \
            (\(assignment) assignment, seed \(seed)).
            Slice sizes: \(sizes.min() ?? 0)…\(sizes.max() ?? 0) examples.
            Sequences (0-based slices, the same in every shard): \(sequences.map { $0.map(String.init).joined(separator: " ") }.joined(separator: " | "))
            Wrote \(path) in \(String(format: "%.2f", seconds)) s.
            """
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .snakeCased
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
