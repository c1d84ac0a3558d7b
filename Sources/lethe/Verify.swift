import ArgumentParser
import Audit
import Foundation

/// `lethe verify`: integrity of a run's ledger, checkpoints and served composition.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the ledger chain, every checkpoint's tensor hash, and that nothing served saw a deleted example.",
        discussion: """
            Reports each problem with what and where: a broken ledger chain (edited, deleted or \
            reordered rows), a receipt quoting a head the ledger lacks, a stage file whose tensors \
            do not match their recorded hash, a served stage whose prefix holds a deleted example, \
            a served stage file that is missing, a stage that saw a deleted example still on disk, \
            a deleted example without its tombstone, and requests left pending by an interrupted \
            forget.

            Exit codes: 0 clean; 3 problems found.

            Example:
              lethe verify --run Checkpoints/runs/demo
            """
    )

    @Option(name: .customLong("run"), help: "Run directory.")
    var runDirectory: String

    @Option(help: "Retrain N randomly chosen served stages from their lineage and compare bit for bit.")
    var replay: Int?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        if replay != nil {
            throw AuditError.unavailable(feature: "--replay",
                                         reason: "it needs the S3T stage trainer (issue 5), not merged into this build yet")
        }
        let report = try RunVerifier.verify(run: URL(fileURLWithPath: runDirectory))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("Checked \(report.ledgerEntryCount) ledger entries, \(report.stageFileCount) stage files, "
                  + "\(report.servedStageCount) served stages, \(report.deletedExampleCount) deleted examples.")
            print(report.isClean ? "OK: no problems." : report.problems.map(\.description).joined(separator: "\n"))
        }
        if !report.isClean { throw ExitCode(3) }
    }
}
