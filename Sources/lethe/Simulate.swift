import ArgumentParser
import Benchmarks
import CommandSupport
import Foundation
import Planning
import Support

/// `lethe simulate`: Monte-Carlo deletion rate against the closed form.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Estimate the deletion rate δ (requests absorbed before every shard is dead) by simulation.",
        discussion: """
            Requests hit slices independently (uniformly, or by --prior); in each sequence of the \
            hit shard, the slice's stage position p truncates it to its first p−1 stages. A shard \
            dies when all its sequences are empty; the run ends when every shard is dead. The \
            estimate (mean and 95% interval over --trials) is printed beside the closed form \
            m·L·H_{m·min(B,L)} and SISA's m·L·H_m. With --prior, cyclic and BMS are both simulated.

            Example:
              lethe simulate --shards 5 --slices 4 --budget 4 --svg delta.svg

            \(ExitStatus.help())
            """
    )

    @OptionGroup var shape: PlanShapeOptions
    var shards: Int { shape.shards }
    var slices: Int { shape.slices }
    var budget: Int { shape.budget }
    var selection: SequenceSelection { shape.selection }
    var exponent: Double { shape.exponent }

    @Option(help: "Per-slice request probabilities (a JSON array or {\"slice\": p}, inline or in a file); requests follow it and BMS uses it.")
    var prior: String?

    @Option(help: "Number of Monte-Carlo trials, \(Self.trialBounds.text) (at least 2 for an interval).")
    var trials: Int = 4000

    @Option(help: "Seed of the simulation, \(CommonBounds.seedText).")
    var seed: UInt64 = 0

    @Option(help: "Also draw δ against B = 1…max(B, L) as an SVG chart into this file.")
    var svg: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    static let trialBounds = OptionBounds(2...10_000_000, reason: "at least 2 for an interval")

    func validate() throws {
        try Self.trialBounds.check(trials, option: "--trials")
        try InputFiles.check([("--prior", prior.flatMap(PlanCreateCommand.priorFile))])
        try PlanCreateCommand.checkPrior(prior, slices: slices)
        // Checked before the simulation, which may run for minutes, rather than after it.
        if let svg {
            guard !svg.isEmpty else { throw ValidationError("--svg is empty; give the path of the chart file.") }
            // The chart replaces the file by a rename: whatever else is there (a device such as
            // /dev/null, a pipe, a link) would be replaced by it, not written to.
            var status = stat()
            if lstat(svg, &status) == 0 {
                let kind = status.st_mode & S_IFMT
                if kind == S_IFDIR { throw ValidationError("--svg \(svg): a directory is in the way; give the path of the chart file.") }
                if kind != S_IFREG {
                    let what = kind == S_IFLNK ? "a symbolic link" : FileKind.irregular(status.st_mode) ?? "not a regular file"
                    throw ValidationError("--svg \(svg): it is \(what), which the chart would replace; give the path of a "
                                          + "regular file (it is created or replaced).")
                }
            }
            let parent = URL(fileURLWithPath: svg).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) {
                throw ValidationError("--svg \(svg): there is no directory \(parent); create it, or give a path in an existing directory.")
            }
            if !isDirectory.boolValue { throw ValidationError("--svg \(svg): \(parent) is a file, not a directory.") }
        }
    }

    func run() throws {
        let requestPrior = try prior.map { try Prior.read(argument: $0, sliceCount: slices) }
        let selections: [SequenceSelection] = requestPrior == nil ? [selection] : [.cyclic, .bms]
        let maxBudget = min(max(budget, slices), SequenceSelection.permutationCount(sliceCount: slices))
        let progress = SimulationProgress(simulationCount: selections.count * (svg == nil ? 1 : 1 + maxBudget),
                                          trialCount: trials)
        defer { progress.finish() }
        var rows: [SimulationRow] = []
        for candidate in selections {
            rows.append(try simulate(candidate, budget: budget, requestPrior: requestPrior, progress: progress))
        }
        let theory = DeletionRateTheory.s3t(shardCount: shards, sliceCount: slices, budget: budget)
        let sisa = DeletionRateTheory.sisa(shardCount: shards, sliceCount: slices)
        if let svg {
            let series = try selections.map { candidate in
                (candidate, try (1...maxBudget).map {
                    try simulate(candidate, budget: $0, requestPrior: requestPrior, progress: progress)
                })
            }
            let chart = DeletionRateChart(shardCount: shards, sliceCount: slices, trialCount: trials,
                                          uniform: requestPrior == nil, series: series)
            do {
                try chart.svg().write(toFile: svg, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("--svg \(svg): cannot write the file (\(fileErrorReason(error))).")
            }
        }
        if json {
            let report = SimulationReport(shards: shards, slices: slices, budget: budget, trials: trials, seed: seed,
                                          uniformRequests: requestPrior == nil, theory: theory, sisaTheory: sisa,
                                          results: rows)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .snakeCased
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("m = \(shards) shards, L = \(slices) slices, B = \(budget) sequences, \(trials) trials, seed \(seed)"
              + (requestPrior == nil ? ", uniform requests" : ", requests by --prior"))
        for row in rows {
            print(String(format: "simulated δ (%@): %.1f  [95%% interval %.1f … %.1f]",
                         row.selection, row.mean, row.lower95, row.upper95))
        }
        print(String(format: "theory m·L·H_{m·min(B,L)}: %.1f%@", theory, requestPrior == nil ? "" : " (uniform requests)"))
        print(String(format: "SISA (B = 1) m·L·H_m: %.1f", sisa))
        if let svg { print("Wrote \(svg)") }
    }

    private func simulate(_ candidate: SequenceSelection, budget: Int, requestPrior: [Double]?,
                          progress: SimulationProgress) throws -> SimulationRow {
        let sequences = candidate.sequences(sliceCount: slices, budget: budget, prior: requestPrior, exponent: exponent)
        let simulator = DeletionSimulator(shardCount: shards, sequences: sequences, requestPrior: requestPrior)
        let immortal = simulator.immortalFirstSlices
        guard immortal.isEmpty else {
            throw ValidationError("--prior \(prior ?? ""): slice(s) \(immortal.map(String.init).joined(separator: ", ")) have "
                                  + "probability 0 and begin a sequence (\(candidate.rawValue), budget \(budget)); such a "
                                  + "sequence never dies, so δ is unbounded and cannot be simulated. Give every slice a "
                                  + "probability above 0 (1e-6 will do).")
        }
        let perTrial = simulator.requestsPerTrialBound
        if perTrial > 1e10, let rarest = simulator.firstSlices.min(by: { simulator.requestPrior[$0] < simulator.requestPrior[$1] }) {
            throw ValidationError("--prior \(prior ?? ""): slice \(rarest) has probability \(simulator.requestPrior[rarest]) and "
                                  + "begins a sequence (\(candidate.rawValue), budget \(budget)), so one trial needs about "
                                  + String(format: "%.0e", perTrial) + " requests (hours or more). Raise the smallest "
                                  + "probabilities of slices that begin a sequence.")
        }
        let estimate = simulator.estimate(trialCount: trials, seed: seed) { progress.trialDone($0) }
        progress.simulationDone()
        return SimulationRow(selection: candidate.rawValue, budget: budget, mean: estimate.mean,
                             lower95: estimate.lower95, upper95: estimate.upper95,
                             standardDeviation: estimate.standardDeviation,
                             theory: DeletionRateTheory.s3t(shardCount: shards, sliceCount: slices, budget: budget))
    }
}

/// A progress line on stderr while simulations run, when stderr is a terminal: large shapes
/// (thousands of shards, millions of requests per trial) take minutes. Drawn at most five
/// times a second and erased at the end.
final class SimulationProgress {
    private let total: Int
    private let trialCount: Int
    private var simulationsDone = 0
    private let terminal = isatty(STDERR_FILENO) == 1
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(simulationCount: Int, trialCount: Int) {
        total = simulationCount * trialCount
        self.trialCount = trialCount
    }

    func trialDone(_ trial: Int) {
        let now = Date()
        // A bar on a terminal; into a log or pipe, a line after 10 s and then each minute, so a
        // simulation that will run for hours says so early.
        let elapsed = now.timeIntervalSince(start)
        guard terminal ? now.timeIntervalSince(lastDraw) >= 0.2
                       : elapsed >= 10 && now.timeIntervalSince(lastDraw) >= 60 else { return }
        lastDraw = now
        let done = simulationsDone * trialCount + trial
        let left = elapsed / Double(done) * Double(total - done)
        if !terminal {
            StandardError.write(Data(String(format: "simulating: trial %d of %d after %.0f s, about %.0f s left\n",
                                             done, total, elapsed, left).utf8))
            return
        }
        let width = 24, filled = width * done / max(total, 1)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        StandardError.write(Data(String(format: "\r simulating %@ trial %d/%d  %.0f s left ", bar, done, total,
                                                   left).utf8))
        drawn = true
    }

    func simulationDone() { simulationsDone += 1 }

    func finish() {
        if drawn { StandardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// The JSON form of `lethe simulate`.
struct SimulationReport: Encodable {
    var shards: Int
    var slices: Int
    var budget: Int
    var trials: Int
    var seed: UInt64
    var uniformRequests: Bool
    var theory: Double
    var sisaTheory: Double
    var results: [SimulationRow]
}
