import ArgumentParser
import CommandSupport
import Audit
import Forgetting
import Training
import Foundation

/// `lethe verify`: integrity of a run's ledger, checkpoints and served composition.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the ledger chain, every checkpoint's tensor hash, and that nothing served saw a deleted example.",
        discussion: """
            Reports each problem with what and where: a broken ledger chain (edited, deleted or \
            reordered rows); a ledger that is missing, cut short or replaced (served.json and \
            receipts quote its head; every tombstone needs its request); a served.json that fails \
            its content hash; a stage file whose tensors do not match their recorded hash or hold \
            NaN/Inf; a served stage whose prefix holds a deleted example; a served stage file that \
            is missing; served stage keys that are not those of the plan's current slices; a stage \
            that saw a deleted example still on disk; a deleted example without its tombstone; \
            requests left pending by an interrupted forget (verify first completes them when it can); a \
            stage trained with other settings or precision than train.json records; and, once a stage \
            is trained, a missing train.json or served.json and a base model whose weights are not \
            those the run was trained on.

            What verify cannot see: a ledger, its receipts, served.json and the tombstone log \
            rewritten together and consistently. Keep the ledger head (`lethe status --json`, \
            ledger_head) outside the run and compare it later.

            --replay N retrains N randomly chosen served stages (drawn with --seed) from their \
            recorded lineage — prefix slices and their content hashes, seed, settings, parent \
            stages — and compares every tensor bit for bit with the stored file; a mismatch \
            names the file, the tensor and the first differing value. This catches a tensor \
            altered together with its recorded hash. It costs one stage of training per replay \
            (a few seconds per stage at the demo's settings).

            Examples:
              lethe verify --run Checkpoints/runs/demo
              lethe verify --run Checkpoints/runs/demo --replay 3 --seed 7

            \(ExitStatus.help(.verificationProblems))
            """
    )

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }

    @Option(help: "Retrain N randomly chosen served stages from their lineage and compare bit for bit, \(Self.replayBounds.text).")
    var replay: Int?

    @Option(help: "Seed that picks the stages to replay, \(CommonBounds.seedText).")
    var seed: UInt64 = 0

    @Option(help: "Dataset the plan was made from, for --replay (default: the path recorded in the plan).")
    var data: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// `--replay`: at most every stage of the largest plan would be far more; this bounds the work.
    static let replayBounds = OptionBounds(1...10_000)

    func validate() throws {
        try Self.replayBounds.check(replay, option: "--replay")
        try InputFiles.check([("--data", data)])
    }

    func run() throws {
        let run = URL(fileURLWithPath: runDirectory)
        func verifyFiles() throws -> VerificationReport {
            var report = try RunVerifier.verify(run: run)
            report.problems += RunVerifier.checkTrainedRunFiles(run: run)
            return report
        }
        // Under the run lock, after an interrupted forget is completed. What stops recovery (a
        // ledger that lost history, a damaged served.json) is not an error here but a finding:
        // the files are checked as they are, and the report names it.
        // Not a run at all is the answer, not a finding: said once, as every command says it.
        try RunGuard.requireRun(RunLayout(directory: run))
        var report: VerificationReport
        // Recovery that cannot run is a finding too: the run refuses every deletion until it can.
        func stopped(_ reason: String) -> VerificationProblem {
            VerificationProblem(kind: .recoveryStopped, location: run.path,
                                detail: "recovery cannot run, so every forget is refused until this is fixed: \(reason)")
        }
        do {
            report = try RunAccess.inspect(run) { inspection in
                var found = try verifyFiles()
                if let reason = inspection.recoveryStopped { found.problems.append(stopped(reason)) }
                return found
            }
        } catch ForgettingError.ledgerTampered {
            report = try verifyFiles()
        } catch {
            StandardError.write(Data("verify: the run could not be recovered first (\(error)); its files are checked as they are.\n".utf8))
            report = try verifyFiles()
            report.problems.append(stopped("\(error)"))
        }
        if let replay {
            let trainer = try RunTrainer(run: run, data: data, threads: nil, forTraining: false, clock: { 0 })
            let (outcomes, problems) = try StageReplay.replay(run: run, count: replay, seed: seed, runner: trainer.runner) {
                outcome in
                if !json {
                    print("replayed shard \(outcome.shard) stage \(outcome.stage): "
                          + (outcome.identical ? "bit-identical (\(outcome.tensorCount) tensors)" : "DIFFERS"))
                }
            }
            report.replayedStageCount = outcomes.count
            report.problems += problems
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("Checked \(report.ledgerEntryCount) ledger entries, \(report.stageFileCount) stage files, "
                  + "\(report.servedStageCount) served stages, \(report.deletedExampleCount) deleted examples.")
            print(report.isClean ? "OK: no problems." : report.problems.map(\.description).joined(separator: "\n"))
        }
        if !report.isClean { throw ExitStatus.verificationProblems.exitCode }
    }
}
