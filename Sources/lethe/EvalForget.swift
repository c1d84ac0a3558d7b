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
            every gap is within ±0.05 and retain perplexity within 10% of the original model's. \
            An oracle file that shares no attack with this evaluation gives no gap: the results \
            are printed, then the command says so and exits 1.

            The sets are scored in turn (progress on stderr when it is a terminal); --limit keeps the first N records of \
            each, for a quick look. `lethe bench unlearn` builds disjoint forget, unseen and retain \
            splits from one dataset, trains every method and the retrain oracle on them and prints this \
            evaluation for each.

            Examples (the base model saw neither set, so every AUC is near 0.5; then the adapter of the \
            `lethe unlearn --help` example, whose forget set is Rotten Tomatoes' test split):
              lethe eval-forget --forget Datasets/rotten-tomatoes/test.jsonl --unseen Datasets/rotten-tomatoes/train.jsonl --limit 100
              lethe eval-forget --adapter Checkpoints/unlearn/rt-gd --forget Datasets/rotten-tomatoes/test.jsonl --unseen Datasets/rotten-tomatoes/train.jsonl --limit 100

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

    @Option(help: "Read only the first N records of each set, \(Self.limitBounds.text). Default: every record.")
    var limit: Int?

    @Option(help: "Trained tokens of the unlearning run, for the FLOP cost ratio, \(Self.tokenBounds.text).")
    var trainedTokens: Int?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// `--trained-tokens`: 10¹⁵ tokens is far beyond any run on this model.
    /// At least one token: a run that trained none has no cost ratio.
    static let tokenBounds = OptionBounds(1...1_000_000_000_000_000)
    static let limitBounds = OptionBounds(1...100_000_000)

    struct Report: Codable {
        let evaluation: ForgetEvaluation
        let cost: UnlearningCost?
        let percents: [Double]
        var oracleGaps: [String: Double]? = nil
        /// Set name → SHA-256 of its token chunks: an oracle is compared only on the same sets.
        var sets: [String: String]? = nil
        enum CodingKeys: String, CodingKey { case evaluation, cost, percents, oracleGaps = "oracle_gaps", sets }
    }

    /// A value of the oracle's file that no evaluation prints: the file was edited or damaged.
    struct OracleError: Error, CustomStringConvertible {
        let path: String, field: String, reason: String
        var description: String {
            "--oracle \(path): \(field) \(reason). Evaluate the oracle again with `lethe eval-forget --json > FILE`."
        }
    }

    /// The oracle's evaluation from the JSON `eval-forget --json` printed, refused (naming the
    /// field) when a value is one no evaluation gives: gaps and ratios computed from it would
    /// look like results.
    static func readOracle(_ path: String) throws -> Report {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("--oracle \(path): cannot read it (\(fileErrorReason(error))).")
        }
        let report: Report
        do { report = try JSONDecoder().decode(Report.self, from: data) } catch {
            throw OracleError(path: path, field: "is not the JSON of `lethe eval-forget --json` from this version:",
                              reason: DecodingError.fieldDescription(error, data: data))
        }
        try checkOracle(report, path: path)
        return report
    }

    /// Refuses an oracle evaluated on other sets (other texts, chunk size or --limit) than
    /// `sets`: a gap between evaluations of different data means nothing. An oracle file from
    /// before sets were recorded gets a warning.
    static func requireSameSets(_ oracle: Report, _ sets: [String: String], path: String) throws {
        guard let recorded = oracle.sets else {
            StandardError.write(Data(("warning: --oracle \(path) does not record the sets it was evaluated on; "
                + "the gaps assume they are these\n").utf8))
            return
        }
        for name in ["forget", "unseen"] where recorded[name] != sets[name] {
            throw OracleError(path: path, field: "was evaluated on another \(name) set", reason: "(its token chunks hash to "
                + "\(recorded[name] ?? "nothing"), these to \(sets[name] ?? "nothing")); evaluate the oracle on the same "
                + "--forget and --unseen files with the same --chunk-tokens and --limit")
        }
    }

    /// Refuses values outside what an evaluation gives: perplexities finite and positive,
    /// accuracies, AUCs and rates in [0, 1], token counts not negative, Min-K% rows for the
    /// percents listed, and at least one attack, each once.
    static func checkOracle(_ report: Report, path: String) throws {
        func refuse(_ field: String, _ reason: String) -> OracleError {
            OracleError(path: path, field: "field \"\(field)\"", reason: reason)
        }
        func rate(_ value: Double, _ field: String) throws {
            guard value >= 0 && value <= 1 else { throw refuse(field, "is \(value), outside 0…1") }
        }
        let e = report.evaluation
        for (name, quality) in [("forget", e.forget), ("unseen", e.unseen), ("retain", e.retain), ("general", e.general)] {
            guard let quality else { continue }
            guard quality.perplexity.isFinite && quality.perplexity > 0 else {
                throw refuse("evaluation.\(name).perplexity", "is \(quality.perplexity), not a finite positive number")
            }
            try rate(quality.accuracy, "evaluation.\(name).accuracy")
            guard quality.tokenCount >= 0 else { throw refuse("evaluation.\(name)." + LanguageModelQuality.CodingKeys.tokenCount.rawValue, "is negative") }
        }
        guard !report.percents.isEmpty else { throw refuse("percents", "is empty") }
        guard e.membership.count == report.percents.count else {
            throw refuse("evaluation.membership", "has \(e.membership.count) rows for \(report.percents.count) percents")
        }
        guard !e.attacks.isEmpty else { throw refuse("evaluation.attacks", "is empty") }
        var seen: Set<MembershipInference.Attack> = []
        for (i, a) in e.attacks.enumerated() where !seen.insert(a.attack).inserted {
            throw refuse("evaluation.attacks[\(i)].attack", "repeats '\(a.attack.rawValue)'")
        }
        let separations = e.membership.enumerated().map { ("evaluation.membership[\($0)]", $1) }
            + e.attacks.enumerated().map { ("evaluation.attacks[\($0)].separation", $1.separation) }
        for (field, s) in separations {
            typealias Key = MembershipInference.Separation.CodingKeys
            try rate(s.rocAUC, field + "." + Key.rocAUC.rawValue)
            try rate(s.foldedAUC, field + "." + Key.foldedAUC.rawValue)
            try rate(s.bestBalancedAccuracy, field + "." + Key.bestBalancedAccuracy.rawValue)
            try rate(s.tprAt5PercentFPR, field + "." + Key.tprAt5PercentFPR.rawValue)
        }
    }

    func validate() throws {
        try options.checkModel()
        try DecoderOptions.checkAdapterPath(adapter)
        try options.checkChunkLength(chunkTokens, option: "--chunk-tokens")
        try Self.tokenBounds.check(trainedTokens, option: "--trained-tokens")
        try Self.limitBounds.check(limit, option: "--limit")
        try InputFiles.check([("--forget", forget), ("--unseen", unseen), ("--retain", retain),
                              ("--general", general), ("--oracle", oracle)])
    }

    func run() throws {
        let (model, tokenizer) = try options.load()
        func chunks(_ path: String) throws -> [[Int]] {
            try TextCorpus(path: path, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens, limit: limit).chunks
        }
        // Progress for a person watching (stderr a terminal); scripts get only the results.
        let watched = isatty(STDERR_FILENO) == 1
        func progress(_ line: String) {
            if watched { StandardError.write(Data("eval-forget: \(line)\n".utf8)) }
        }
        let forgetChunks = try chunks(forget), unseenChunks = try chunks(unseen)
        let retainChunks = try retain.map(chunks), generalChunks = try general.map(chunks)
        for set in [forgetChunks, unseenChunks, retainChunks ?? [], generalChunks ?? []] {
            try options.ensureScoringMemory(model.configuration, chunks: set, batchSize: ForgetEvaluation.batchSize)
        }
        let members = Set(forgetChunks), nonMembers = Set(unseenChunks)
        let sharedChunks = members.intersection(nonMembers).count
        // With no chunk apart, every attack reads 0.5: it would look like perfect forgetting.
        if sharedChunks == members.count || sharedChunks == nonMembers.count {
            throw ValidationError("--forget \(forget) and --unseen \(unseen): every chunk of one is also in the other, so "
                                  + "no attack can tell members from non-members and every score would read 0.5. Give "
                                  + "texts the model never saw as --unseen.")
        }
        if sharedChunks > 0 {
            StandardError.write(Data(("warning: \(sharedChunks) chunk(s) are in both --forget (members) and "
                + "--unseen (non-members); the attacks cannot separate those\n").utf8))
        }
        var sets = ["forget": TextCorpus.chunksSHA256(forgetChunks), "unseen": TextCorpus.chunksSHA256(unseenChunks)]
        if let retainChunks { sets["retain"] = TextCorpus.chunksSHA256(retainChunks) }
        let oracleReport = try oracle.map(Self.readOracle)
        if let oracleReport, let oracle { try Self.requireSameSets(oracleReport, sets, path: oracle) }
        let oracleEvaluation = oracleReport?.evaluation
        let loaded = try adapter.map { try options.loadAdapter($0, for: model) }
        // The reference attack compares the adapted model with the base it was trained from.
        let counts = [("forget", forgetChunks), ("unseen", unseenChunks), ("retain", retainChunks ?? []),
                      ("general", generalChunks ?? [])].filter { !$0.1.isEmpty }.map { "\($0.0) \($0.1.count)" }
        progress("scoring chunks of \(chunkTokens) tokens: " + counts.joined(separator: ", ")
                 + (loaded == nil ? "" : "; the forget and unseen sets twice (with the adapter, and with the base model "
                    + "for the reference attack)"))
        if loaded != nil { progress("the base model on the forget and unseen sets (reference attack)…") }
        let reference = try loaded.map { _ in
            try ReferenceScores(model: model, forget: forgetChunks, unseen: unseenChunks, padID: tokenizer.eosID,
                                threads: options.threads)
        }
        progress("the \(loaded == nil ? "base model" : "adapted model") on every set…")
        let e = try ForgetEvaluation(model: model, adapter: loaded, forget: forgetChunks, unseen: unseenChunks,
                                     retain: retainChunks, general: generalChunks,
                                     padID: tokenizer.eosID, threads: options.threads,
                                     text: { try tokenizer.decode($0) }, reference: reference)
        try NonFiniteResult.check(e, files: [options.model] + (adapter.map { [$0] } ?? []))
        let cost = trainedTokens.map { UnlearningCost(parameterCount: model.configuration.parameterCount, trainedTokens: $0) }
        if json {
            let encoder = JSONEncoder.report()
            let gaps = oracleEvaluation.map { o in
                Dictionary(uniqueKeysWithValues: e.gaps(to: o).map { ($0.attack.rawValue, $0.gap) })
            }
            print(String(decoding: try encoder.encode(Report(evaluation: e, cost: cost, percents: ForgetEvaluation.percents,
                                                             oracleGaps: gaps, sets: sets)),
                         as: UTF8.self))
            try requireComparable(e, oracleEvaluation)
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
            // Perplexities of different retain sets are not comparable.
            let sameRetain = oracleReport?.sets?["retain"] == sets["retain"]
            let retainRatio = e.retain.flatMap { mine in o.retain.map { mine.perplexity / $0.perplexity } }
            let ratio = retainRatio.map {
                sameRetain ? String(format: "; retain perplexity %.2f× the oracle's", $0)
                    : "; retain perplexity not compared (the oracle's file records another retain set, or none)"
            } ?? ""
            if e.gaps(to: o).isEmpty {
                print("no attack is in both this evaluation and the oracle's file: no gap was compared" + ratio)
            } else {
                let largest = e.largestGap(to: o)
                print(String(format: "largest |gap| to the oracle %.3f (%@ ±0.05)", largest, largest <= 0.05 ? "within" : "outside")
                      + ratio)
            }
        }
        if let cost {
            print(String(format: "cost: %.3g FLOPs; pre-training (2T tokens) %.3g FLOPs; ratio %.3g",
                         cost.runFLOPs, cost.pretrainingFLOPs, cost.ratio))
        }
        try requireComparable(e, oracleEvaluation)
    }

    /// After the results are printed, fails when an oracle was given but shares no attack with
    /// this evaluation: no gap was computed, so the run cannot say whether forgetting held.
    func requireComparable(_ e: ForgetEvaluation, _ oracleEvaluation: ForgetEvaluation?) throws {
        guard let o = oracleEvaluation, let oracle, e.gaps(to: o).isEmpty else { return }
        func names(_ x: ForgetEvaluation) -> String { x.attacks.map(\.attack.rawValue).joined(separator: ", ") }
        throw OracleError(path: oracle, field: "shares no attack with this evaluation",
                          reason: "(this one ran \(names(e)); the oracle's file has \(names(o))), so no gap was compared. "
                              + "The reference attack runs only with --adapter")
    }
}
