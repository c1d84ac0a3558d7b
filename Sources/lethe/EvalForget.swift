import ArgumentParser
import CommandSupport
import Approximate
import Foundation
import Models
import Support
import Training

/// `lethe eval-forget`: did forgetting work? Quality on forget/retain/general data, membership
/// inference of forget (members) vs unseen (non-members), and the gap to a retrain oracle.
struct EvalForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-forget",
        abstract: "Evaluate an unlearned decoder: perplexity, accuracy, membership inference, gap to an oracle.",
        discussion: """
            Reports perplexity and next-token accuracy on each set; for K in 30, 40, 50, 60, 100 \
            the ROC-AUC (raw and folded), best balanced accuracy and TPR at 5% FPR of the Min-K% \
            Prob score separating --forget (members) from --unseen (non-members); and the same \
            for each attack (higher score = "seen"; n predicted tokens, log p_t their log-probabilities):
              loss       mean log p_t
              zlib       mean log p_t ÷ zlib-compressed size of the text in bytes
              min-k      mean of the lowest 20% of log p_t
              min-k++    mean of the lowest 20% of (log p_t − μ_t)/σ_t, μ_t and σ_t the mean and \
            standard deviation of log p(z) for z drawn from the model's next-token distribution
              reference  mean log p_t minus the same under the base model (with --adapter only)
            The goal is not AUC 0.5 but the AUC of a model retrained without the forget set: \
            evaluate that oracle once with --json > FILE, then pass --oracle FILE to print each \
            attack's gap (AUC − oracle AUC; negative = over-forgetting). Forgetting holds when \
            every gap is within ±0.05 and retain perplexity within 10% of the original model's.

            Example (the adapter of the `lethe unlearn --help` example):
              lethe eval-forget --adapter Checkpoints/unlearn/rt-gd --forget Datasets/rotten-tomatoes/test.jsonl --unseen Datasets/bbc-news/test.jsonl --retain Datasets/rotten-tomatoes/train.jsonl

            \(ExitStatus.help())
            """)

    @OptionGroup var options: DecoderOptions

    @Option(help: "Adapter to apply: the directory `lethe unlearn --out` wrote, or the \(AdapterFile.fileName) in it; omit to evaluate the base model.")
    var adapter: String?

    @Option(help: "JSON Lines: the forgotten texts (members).")
    var forget: String

    @Option(help: "JSON Lines: same-domain texts never trained on (non-members).")
    var unseen: String

    @Option(help: "JSON Lines: same-domain texts that should be kept.")
    var retain: String?

    @Option(help: "JSON Lines: general texts.")
    var general: String?

    @Option(help: "Record field holding the text.")
    var field = "text"

    @Option(help: "Tokens per chunk, 2…--max-positions.")
    var chunkTokens = 128

    @Option(help: "JSON that `lethe eval-forget --json` printed for the retrain oracle on the same sets: print each attack's gap to it.")
    var oracle: String?

    @Option(help: "Trained tokens of the unlearning run, for the FLOP cost ratio, \(Self.tokenBounds.text).")
    var trainedTokens: Int?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// `--trained-tokens`: 10¹⁵ tokens is far beyond any run on this model.
    static let tokenBounds = OptionBounds(0...1_000_000_000_000_000)

    struct Report: Codable {
        let evaluation: ForgetEvaluation
        let cost: UnlearningCost?
        let percents: [Double]
        var oracleGaps: [String: Double]? = nil
        enum CodingKeys: String, CodingKey { case evaluation, cost, percents, oracleGaps = "oracle_gaps" }
    }

    /// The oracle's evaluation from the JSON `eval-forget --json` printed.
    static func readOracle(_ path: String) throws -> ForgetEvaluation {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("--oracle \(path): cannot read it (\(fileErrorReason(error))).")
        }
        do { return try JSONDecoder().decode(Report.self, from: data).evaluation } catch {
            throw ValidationError("--oracle \(path): not the JSON of `lethe eval-forget --json` from this version "
                                  + "(\(DecodingError.fieldDescription(error))); evaluate the oracle again with --json > FILE.")
        }
    }

    func validate() throws {
        try options.chunkBounds.check(chunkTokens, option: "--chunk-tokens")
        try Self.tokenBounds.check(trainedTokens, option: "--trained-tokens")
        try InputFiles.check([("--forget", forget), ("--unseen", unseen), ("--retain", retain),
                              ("--general", general), ("--oracle", oracle)])
    }

    func run() throws {
        let (model, tokenizer) = try options.load()
        func chunks(_ path: String) throws -> [[Int]] {
            try TextCorpus(path: path, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens).chunks
        }
        let forgetChunks = try chunks(forget), unseenChunks = try chunks(unseen)
        let retainChunks = try retain.map(chunks), generalChunks = try general.map(chunks)
        for set in [forgetChunks, unseenChunks, retainChunks ?? [], generalChunks ?? []] {
            try options.ensureScoringMemory(model.configuration, chunks: set, batchSize: ForgetEvaluation.batchSize)
        }
        let oracleEvaluation = try oracle.map(Self.readOracle)
        let loaded = try adapter.map { try AdapterFile.read(try AdapterFile.locate($0), weights: model.weights).adapter }
        // The reference attack compares the adapted model with the base it was trained from.
        let reference = try loaded.map { _ in
            try ReferenceScores(model: model, forget: forgetChunks, unseen: unseenChunks, padID: tokenizer.eosID,
                                threads: options.threads)
        }
        let e = try ForgetEvaluation(model: model, adapter: loaded, forget: forgetChunks, unseen: unseenChunks,
                                     retain: retainChunks, general: generalChunks,
                                     padID: tokenizer.eosID, threads: options.threads,
                                     text: { try tokenizer.decode($0) }, reference: reference)
        try NonFiniteResult.check(e, files: [options.model] + (adapter.map { [$0] } ?? []))
        let cost = trainedTokens.map { UnlearningCost(parameterCount: model.configuration.parameterCount, trainedTokens: $0) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let gaps = oracleEvaluation.map { o in
                Dictionary(uniqueKeysWithValues: e.gaps(to: o).map { ($0.attack.rawValue, $0.gap) })
            }
            print(String(decoding: try encoder.encode(Report(evaluation: e, cost: cost, percents: ForgetEvaluation.percents,
                                                             oracleGaps: gaps)),
                         as: UTF8.self))
            return
        }
        for (name, q) in [("forget", e.forget), ("unseen", e.unseen), ("retain", e.retain), ("general", e.general)] {
            guard let q else { continue }
            print(String(format: "%-8@ perplexity %8.3f  accuracy %6.2f%%  (%d tokens)", name, q.perplexity,
                         100 * q.accuracy, q.tokenCount))
        }
        print("Min-K%   AUC    folded  best-bal-acc  TPR@5%FPR")
        for (k, s) in zip(ForgetEvaluation.percents, e.membership) {
            print(String(format: "K=%-4.0f  %.3f  %.3f   %.3f         %.3f", k, s.rocAUC, s.foldedAUC,
                         s.bestBalancedAccuracy, s.tprAt5PercentFPR))
        }
        print("attack     AUC    folded  best-bal-acc  TPR@5%FPR" + (oracleEvaluation == nil ? "" : "  oracle AUC   gap"))
        for a in e.attacks {
            let s = a.separation
            var line = String(format: "%@ %.3f  %.3f   %.3f         %.3f", a.attack.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0),
                              s.rocAUC, s.foldedAUC, s.bestBalancedAccuracy, s.tprAt5PercentFPR)
            if let o = oracleEvaluation {
                line += o.auc(a.attack).map { String(format: "      %.3f     %+.3f", $0, s.rocAUC - $0) } ?? "      (not in the oracle's file)"
            }
            print(line)
        }
        if let o = oracleEvaluation {
            let largest = e.largestGap(to: o)
            let retainRatio = e.retain.flatMap { mine in o.retain.map { mine.perplexity / $0.perplexity } }
            print(String(format: "largest |gap| to the oracle %.3f (%@ ±0.05)", largest, largest <= 0.05 ? "within" : "outside")
                  + (retainRatio.map { String(format: "; retain perplexity %.2f× the oracle's", $0) } ?? ""))
        }
        if let cost {
            print(String(format: "cost: %.3g FLOPs; pre-training (2T tokens) %.3g FLOPs; ratio %.3g",
                         cost.runFLOPs, cost.pretrainingFLOPs, cost.ratio))
        }
    }
}
