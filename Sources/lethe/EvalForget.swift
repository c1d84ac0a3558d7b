import ArgumentParser
import CommandSupport
import Approximate
import Foundation
import Models

/// `lethe eval-forget`: did forgetting work? Quality on forget/retain/general data and
/// Min-K% Prob membership inference of forget (members) vs unseen (non-members).
struct EvalForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-forget",
        abstract: "Evaluate an unlearned decoder: perplexity, accuracy, Min-K% membership inference.",
        discussion: """
            Reports perplexity and next-token accuracy on each set, and for K in 30, 40, 50, 60, \
            100 the ROC-AUC (raw and folded), best balanced accuracy and TPR at 5% FPR of the \
            Min-K% Prob score separating --forget (members) from --unseen (non-members). \
            Target: AUC near 0.5 with retain/general perplexity near the original model's.

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

    @Option(help: "Trained tokens of the unlearning run, for the FLOP cost ratio, \(Self.tokenBounds.text).")
    var trainedTokens: Int?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// `--trained-tokens`: 10¹⁵ tokens is far beyond any run on this model.
    static let tokenBounds = OptionBounds(0...1_000_000_000_000_000)

    func validate() throws {
        try options.chunkBounds.check(chunkTokens, option: "--chunk-tokens")
        try Self.tokenBounds.check(trainedTokens, option: "--trained-tokens")
        try InputFiles.check([("--forget", forget), ("--unseen", unseen), ("--retain", retain),
                              ("--general", general)])
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
        let loaded = try adapter.map { try AdapterFile.read(try AdapterFile.locate($0), weights: model.weights).adapter }
        let e = try ForgetEvaluation(model: model, adapter: loaded, forget: forgetChunks, unseen: unseenChunks,
                                     retain: retainChunks, general: generalChunks,
                                     padID: tokenizer.eosID, threads: options.threads)
        let cost = trainedTokens.map { UnlearningCost(parameterCount: model.configuration.parameterCount, trainedTokens: $0) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            struct Report: Encodable { let evaluation: ForgetEvaluation; let cost: UnlearningCost?; let percents: [Double] }
            print(String(decoding: try encoder.encode(Report(evaluation: e, cost: cost, percents: ForgetEvaluation.percents)),
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
        if let cost {
            print(String(format: "cost: %.3g FLOPs; pre-training (2T tokens) %.3g FLOPs; ratio %.3g",
                         cost.runFLOPs, cost.pretrainingFLOPs, cost.ratio))
        }
    }
}
