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

    @Option(help: "Per-slice request probabilities (JSON array or {\"slice\": p}); requests follow it and BMS uses it.")
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
        try InputFiles.check([("--prior", prior)])
    }

    func run() throws {
        let requestPrior = try prior.map { try Prior.read(from: URL(fileURLWithPath: $0), sliceCount: slices, source: $0) }
        let selections: [SequenceSelection] = requestPrior == nil ? [selection] : [.cyclic, .bms]
        var rows: [SimulationRow] = []
        for candidate in selections {
            rows.append(try simulate(candidate, budget: budget, requestPrior: requestPrior))
        }
        let theory = DeletionRateTheory.s3t(shardCount: shards, sliceCount: slices, budget: budget)
        let sisa = DeletionRateTheory.sisa(shardCount: shards, sliceCount: slices)
        if let svg {
            let maxBudget = min(max(budget, slices), SequenceSelection.permutationCount(sliceCount: slices))
            let series = try selections.map { candidate in
                (candidate, try (1...maxBudget).map { try simulate(candidate, budget: $0, requestPrior: requestPrior) })
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
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
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

    private func simulate(_ candidate: SequenceSelection, budget: Int, requestPrior: [Double]?) throws -> SimulationRow {
        let sequences = candidate.sequences(sliceCount: slices, budget: budget, prior: requestPrior, exponent: exponent)
        let simulator = DeletionSimulator(shardCount: shards, sequences: sequences, requestPrior: requestPrior)
        let immortal = simulator.immortalFirstSlices
        guard immortal.isEmpty else {
            throw ValidationError("--prior \(prior ?? ""): slice(s) \(immortal.map(String.init).joined(separator: ", ")) have "
                                  + "probability 0 and begin a sequence (\(candidate.rawValue), budget \(budget)); such a "
                                  + "sequence never dies, so δ is unbounded and cannot be simulated. Give every slice a "
                                  + "probability above 0 (1e-6 will do).")
        }
        let estimate = simulator.estimate(trialCount: trials, seed: seed)
        return SimulationRow(selection: candidate.rawValue, budget: budget, mean: estimate.mean,
                             lower95: estimate.lower95, upper95: estimate.upper95,
                             standardDeviation: estimate.standardDeviation,
                             theory: DeletionRateTheory.s3t(shardCount: shards, sliceCount: slices, budget: budget))
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
