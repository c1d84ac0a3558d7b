import ArgumentParser
import Audit
import CommandSupport
import Foundation
import Support
import Planning
import Training

/// `lethe plan show`: where an example lives and which checkpoints saw it.
struct PlanShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show an example's shard, slice, slice hash and stage in every sequence of its shard.",
        discussion: """
            Without --id, prints the plan's parameters. The stage position p of a slice in a \
            sequence is 1-based: stages p, p+1, … of that sequence saw the example, and \
            forgetting it truncates the sequence to its first p−1 stages.

            Example:
              lethe plan show --run Checkpoints/runs/demo --id business/001

            \(ExitStatus.help())
            """
    )

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }

    @Option(help: "Example id to look up.")
    var id: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    func run() throws {
        // Like every command that reads a run: a forget a crash interrupted is completed first,
        // so a deleted example is never shown as live.
        let clock = ContinuousClock()
        var loadSeconds = 0.0
        func load() throws -> Plan {
            let loadStart = clock.now
            defer { loadSeconds = (clock.now - loadStart).seconds }
            return try Plan.load(from: Plan.url(inRun: URL(fileURLWithPath: runDirectory)))
        }
        let plan = FileManager.default.fileExists(atPath: RunLayout(directory: URL(fileURLWithPath: runDirectory)).ledgerURL.path)
            ? try RunAccess.inspect(URL(fileURLWithPath: runDirectory), load) : try load()
        guard let id else {
            print(json ? try PlanSummary(plan: plan, path: Plan.url(inRun: URL(fileURLWithPath: runDirectory)).path,
                                         seconds: loadSeconds).json()
                  : PlanSummary(plan: plan, path: runDirectory, seconds: loadSeconds).text
                    .replacingOccurrences(of: "Planned", with: "The plan deals")
                    .replacingOccurrences(of: "Wrote", with: "Loaded"))
            return
        }
        let lookupStart = clock.now
        let lineage = plan.lineage(of: id)
        let lookupMicroseconds = (clock.now - lookupStart).seconds * 1e6
        guard let lineage else {
            // Not a usage error (the option is well formed): refused with 1, as `audit` does.
            throw AuditError.unknownExample(id: id)
        }
        let sequences = plan.sequences(of: lineage.location.shard)
        if json {
            let report = LineageReport(id: id, shard: lineage.location.shard, slice: lineage.location.slice,
                                       sliceHash: lineage.sliceHash, sliceSize: plan.memberCount(
                                           shard: lineage.location.shard, slice: lineage.location.slice),
                                       sequences: sequences, stagePositions: lineage.stagePositions,
                                       deleted: lineage.isTombstoned, lookupMicroseconds: lookupMicroseconds,
                                       loadSeconds: loadSeconds)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .snakeCased
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("\(id): shard \(lineage.location.shard), slice \(lineage.location.slice)\(lineage.isTombstoned ? " (deleted)" : "")")
        print("slice hash: \(lineage.sliceHash)")
        for (index, sequence) in sequences.enumerated() {
            let order = sequence.map(String.init).joined(separator: " ")
            print("sequence \(index) [\(order)]: stage \(lineage.stagePositions[index]) of \(sequence.count)")
        }
        print(String(format: "lookup %.1f µs (plan loaded in %.2f s)", lookupMicroseconds, loadSeconds))
    }
}

/// The JSON form of `lethe plan show --id`.
struct LineageReport: Encodable {
    var id: String
    var shard: Int
    var slice: Int
    var sliceHash: String
    var sliceSize: Int
    var sequences: [[Int]]
    var stagePositions: [Int]
    var deleted: Bool
    var lookupMicroseconds: Double
    var loadSeconds: Double
}
