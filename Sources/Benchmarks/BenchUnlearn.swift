import ArgumentParser
import Approximate
import CommandSupport
import Foundation
import Kernels
import Models
import Planning
import Store
import Support

/// `lethe bench unlearn`: the reproducible approximate-unlearning benchmark: methods × settings against a retrain oracle.
///
/// SmolLM2's pre-training data is unavailable, so the model is first made to see a corpus:
/// a LoRA fine-tune on BBC News article chunks (forget ∪ retain) until Min-K% separates seen
/// from unseen articles; the fine-tune is merged into θ0. Then each method runs over a
/// learning-rate × steps sweep, beside the retrain oracle (the same fine-tune on retain only), and
/// every membership attack's AUC is compared with the oracle's.
public struct BenchUnlearnCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "unlearn",
        abstract: "Fine-tune SmolLM2 on BBC articles, unlearn a subset with every method, compare with a retrain oracle.",
        discussion: """
            Sets: forget, retain and unseen are disjoint seeded random draws of --forget-articles, \
            --retain-articles and --unseen-articles BBC News articles (unseen are never trained on); \
            general = Rotten Tomatoes snippets. One chunk of --chunk-tokens tokens of each article body. Prints training \
            tokens/s, a table per method and the sweep summary; writes SVG charts to --out. Attacks (see \
            `lethe eval-forget --help`): loss, zlib, min-k, min-k++, and reference against the base model before the \
            fine-tune. A setting succeeds when every attack's AUC is within ±0.05 of the retrain oracle's (two-sided: \
            over-forgetting fails too) and retain perplexity within 10% of θ0's.

            Examples:
              lethe bench unlearn
              lethe bench unlearn --precision bf16 --exact

            \(BenchHelp.exitCodes)
            """)

    @OptionGroup var options: DecoderOptions

    @Option(help: "Articles to forget (members after the fine-tune), \(Self.articles.text).") var forgetArticles = 48
    @Option(help: "Seen articles to retain, \(Self.articles.text).") var retainArticles = 48
    @Option(help: "Held-out articles (non-members), \(Self.articles.text).") var unseenArticles = 48
    @Option(help: "General-domain snippets (Rotten Tomatoes), \(Self.articles.text).") var generalTexts = 32
    @Option(help: "Tokens per chunk, 2…--max-positions.") var chunkTokens = 64
    @Option(help: "Chunks per fine-tuning and evaluation batch, \(Self.batch.text).") var batchSize = 8
    @Option(help: "Retain articles whose perplexity is measured (the first ones of the retain set), \(Self.articles.text).")
    var retainEvaluated = 24
    @Option(help: "Forget chunks per unlearning step (and as many retain/general chunks), \(Self.batch.text).")
    var unlearnBatchSize = 2
    @Option(help: "Fine-tuning epochs over the seen set, \(Self.epochs.text).") var fineTuneEpochs = 2
    @Option(help: "Fine-tuning learning rate, \(Self.learningRate.text).") var fineTuneLR: Float = 1e-3
    @Option(parsing: .upToNextOption, help: "Learning rates of the sweep, each \(Self.learningRate.text).")
    var lrs: [Float] = [5e-4, 1e-3]
    @Option(parsing: .upToNextOption, help: "Step counts of the sweep (evaluated along one run), each \(Self.steps.text).")
    var stepCounts: [Int] = [12, 24]
    @Option(help: "Learning rate of the main table, \(Self.learningRate.text).") var tableLR: Float = 1e-3
    @Option(help: "Unlearning steps of the main table, \(Self.steps.text).") var tableSteps = 24
    @Option(help: "LoRA rank of fine-tune and unlearning adapters, \(Self.rank.text).") var rank = 8
    @Option(help: "Directory for the SVG charts and summary.json (what --json prints).") var out = "Checkpoints/bench-unlearn"
    @Option(help: "Seed, \(CommonBounds.seedText).") var seed: UInt64 = 0
    @Flag(help: "Also unlearn exactly: train an S3T decoder run on forget ∪ retain, forget the forget set, and add it to the table.")
    var exact = false
    @Option(help: "--exact: shards, \(Self.exactCounts.text).") var exactShards = 4
    @Option(help: "--exact: slices per shard, \(Self.exactCounts.text).") var exactSlices = 3
    @Option(help: "--exact: sequences per shard, \(Self.exactCounts.text).") var exactBudget = 2
    @Option(help: "--exact: epochs per stage, \(Self.epochs.text).") var exactEpochs = 3
    @Option(help: "--exact: layers per block, \(Self.exactCounts.text) (slices × layers ≤ the model's 30).") var exactLayersPerBlock = 2
    static let exactCounts = OptionBounds(1...30)

    static let articles = OptionBounds(1...10_000)
    static let batch = OptionBounds(UnlearningConfiguration.Limits.batchSize)
    static let epochs = OptionBounds(1...100)
    static let learningRate = OptionBounds(UnlearningConfiguration.Limits.learningRate)
    static let steps = OptionBounds(UnlearningConfiguration.Limits.steps)
    static let rank = OptionBounds(UnlearningConfiguration.Limits.rank)
    @Option(parsing: .upToNextOption, help: "Methods to run (default all; none stops after θ0 and the oracle).")
    var methods: [String] = UnlearningMethod.allCases.map(\.rawValue)
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// The methods named by `--methods`, in the canonical order.
    func selectedMethods() throws -> [UnlearningMethod] {
        let names = methods
        if names == ["none"] { return [] }
        if names.contains("none") {
            throw ValidationError("--methods: none runs no method, so it stands alone; give it without the others, or "
                                  + "leave it out.")
        }
        for name in names where UnlearningMethod(rawValue: name) == nil {
            throw ValidationError("--methods: unknown method '\(name)'; choose from \(UnlearningMethod.allCases.map(\.rawValue).joined(separator: ", ")) or none.")
        }
        return UnlearningMethod.allCases.filter { names.contains($0.rawValue) }
    }

    /// The sweep's learning rates and step counts (ascending) and the table's setting, each
    /// number checked, so a typo is an error naming the option rather than a silently smaller grid.
    func sweepGrid() throws -> (lrs: [Float], steps: [Int], tableLR: Float, tableSteps: Int) {
        guard !lrs.isEmpty, !stepCounts.isEmpty else {
            throw ValidationError("--lrs and --step-counts each need at least one value.")
        }
        // Each value under its own option (NaN equals nothing, so it cannot be looked up).
        for lr in lrs { try Self.learningRate.check(lr, option: "--lrs") }
        try Self.learningRate.check(tableLR, option: "--table-lr")
        for steps in stepCounts + [tableSteps] {
            try Self.steps.check(steps, option: stepCounts.contains(steps) ? "--step-counts" : "--table-steps")
        }
        return (lrs, stepCounts.sorted(), tableLR, tableSteps)
    }

    public func validate() throws {
        try options.checkModel()
        _ = try selectedMethods()
        _ = try sweepGrid()
        for (name, value) in [("--forget-articles", forgetArticles), ("--retain-articles", retainArticles),
                              ("--unseen-articles", unseenArticles), ("--general-texts", generalTexts),
                              ("--retain-evaluated", retainEvaluated)] {
            try Self.articles.check(value, option: name)
        }
        try Self.batch.check(batchSize, option: "--batch-size")
        try Self.batch.check(unlearnBatchSize, option: "--unlearn-batch-size")
        try Self.epochs.check(fineTuneEpochs, option: "--fine-tune-epochs")
        try Self.learningRate.check(fineTuneLR, option: "--fine-tune-lr")
        try Self.rank.check(rank, option: "--rank")
        try options.checkChunkLength(chunkTokens, option: "--chunk-tokens")
        for (name, value) in [("--exact-shards", exactShards), ("--exact-slices", exactSlices), ("--exact-budget", exactBudget),
                              ("--exact-layers-per-block", exactLayersPerBlock)] {
            try Self.exactCounts.check(value, option: name)
        }
        try Self.epochs.check(exactEpochs, option: "--exact-epochs")
        if exactSlices * exactLayersPerBlock > 30 {
            throw ValidationError("--exact-slices \(exactSlices) × --exact-layers-per-block \(exactLayersPerBlock) exceeds SmolLM2's 30 layers.")
        }
        // The exact run's plan, checked as `lethe plan` will check it (at most L! sequences).
        do {
            try PlanParameters(shardCount: exactShards, sliceCount: exactSlices, budget: exactBudget).validate()
        } catch {
            throw ValidationError("--exact-shards/--exact-slices/--exact-budget: \(error)"
                                  .replacingOccurrences(of: "--budget", with: "--exact-budget")
                                  .replacingOccurrences(of: "--slices", with: "--exact-slices"))
        }
        // The exact run's plan deals one example per forget and retain article into every slice.
        if exact, exactShards * exactSlices > forgetArticles + retainArticles {
            throw ValidationError("--exact-shards \(exactShards) × --exact-slices \(exactSlices) needs at least "
                                  + "\(exactShards * exactSlices) examples, one per slice, but --forget-articles "
                                  + "\(forgetArticles) + --retain-articles \(retainArticles) give \(forgetArticles + retainArticles); "
                                  + "give fewer shards or slices, or more articles.")
        }
    }

    public func run() throws {
        // Two runs into one --out would interleave their charts and summaries: the second is
        // refused while the first holds the directory.
        let directory = URL(fileURLWithPath: out)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ValidationError("--out \(out): cannot create the directory (\(fileErrorReason(error))).")
        }
        guard let _: Void = try FileLock.withLockIfFree(directory.appendingPathComponent(".bench-unlearn.lock"),
                                                        { try runHoldingOut() }) else {
            throw BenchUnlearnFailure(description: "--out \(out): another `lethe bench unlearn` is writing there; wait for it "
                                 + "to finish, or choose another --out.")
        }
    }

    private func runHoldingOut() throws {
        let started = Date()
        let chosen = try selectedMethods()
        let report = ResultReport(json: json)
        let load = MachineLoad()
        load.printWarning(json: report.json)
        report.say("BLAS core: \(BLASRuntime.coreName), threads \(options.threads), \(load.text)")
        let (base, tokenizer) = try options.load()
        try DecoderOptions.checkRank(rank, within: Self.rank, for: base.configuration)
        let t = options.threads, pad = tokenizer.eosID
        let (forget, retain, unseen) = try articleSets(tokenizer: tokenizer)
        let general = try TextCorpus(path: "Datasets/rotten-tomatoes/train.jsonl", tokenizer: tokenizer,
                                     chunkTokens: chunkTokens, limit: generalTexts).chunks
        // The reference attack's model is the base before the fine-tune: it never saw either set.
        let referenceScores = try ReferenceScores(model: base, forget: forget, unseen: unseen, batchSize: batchSize,
                                                  padID: pad, threads: t)
        report.say("sets: forget \(forget.count), retain \(retain.count) (perplexity on the first \(min(retainEvaluated, retain.count))), unseen \(unseen.count), general \(general.count) chunks of ≤ \(chunkTokens) tokens")

        // The sweep's criterion needs forget, unseen and retain; general perplexity only where the
        // table shows it (θ0, the oracle, the table's setting), which saves a sixth of the time.
        func evaluate(_ model: LlamaModel, _ adapter: LlamaAdapter?, general withGeneral: Bool = true) throws -> ForgetEvaluation {
            try ForgetEvaluation(model: model, adapter: adapter, forget: forget, unseen: unseen,
                                 retain: Array(retain.prefix(retainEvaluated)),
                                 general: withGeneral ? general : nil, batchSize: batchSize, padID: pad, threads: t,
                                 text: { try tokenizer.decode($0) }, reference: referenceScores)
        }
        let adapterConfig = try LlamaAdapterConfiguration(rank: rank, alpha: Float(2 * rank))
        var lastFineTune = (seconds: 0.0, tokens: 0)
        func fineTune(on data: [[Int]]) throws -> (LlamaModel, Double, Int) {
            let steps = max(1, fineTuneEpochs * data.count / batchSize)
            let config = try UnlearningConfiguration(learningRate: fineTuneLR, steps: steps, batchSize: batchSize,
                                                     seed: seed, adapter: adapterConfig)
            let u = try Unlearner(model: base, objective: .fineTune, configuration: config, forget: data, padID: pad,
                                  threads: t)
            var tokens = 0
            let clock = Date()
            let adapter = try u.run { s in tokens += s.trainedTokens }
            let seconds = Date().timeIntervalSince(clock)
            lastFineTune = (seconds, tokens)
            return (try LlamaModel(weights: base.weights.merging(adapter), precision: options.precision), Double(tokens) / seconds, steps)
        }
        let before = try evaluate(base, nil)
        report.say(String(format: "base model: Min-K%% (K=30,40,50,60,100) AUC forget vs unseen %@; attacks %@", auc(before),
                          attackAUCs(before)))
        let (tuned, tokensPerSecond, ftSteps) = try fineTune(on: forget + retain)
        let peak = PeakThroughput.measure(threads: t).ceiling(options.precision)
        let gflops = tokensPerSecond * base.configuration.frozenTrainingFLOPsPerToken(context: chunkTokens) / 1e9
        report.say(String(format: "fine-tune: %d steps of %d chunks; training %.0f tokens/s (padded tokens through forward + backward), %.1f GFLOP/s = %.0f%% of the %@ peak (%.1f GFLOP/s)%@",
                     ftSteps, batchSize, tokensPerSecond, gflops, 100 * gflops / peak, options.precision.rawValue, peak, MachineLoad.caveat(share: gflops / peak)))
        var clock = Date()
        let reference = try evaluate(tuned, nil)
        report.say("fine-tuned θ0: " + describe(reference))
        report.say(String(format: "  (one evaluation of the four sets: %.1f s; fine-tune so far %.1f s into the run)",
                     Date().timeIntervalSince(clock), clock.timeIntervalSince(started)))
        clock = Date()
        let (oracle, _, _) = try fineTune(on: retain)
        let oracleCost = lastFineTune
        let oracleEval = try evaluate(oracle, nil)
        report.say("retrain oracle: " + describe(oracleEval))
        report.say(String(format: "  (oracle fine-tune and evaluation: %.1f s)", Date().timeIntervalSince(clock)))

        let (_, _, tableLR, tableSteps) = try sweepGrid()
        let results = try sweep(methods: chosen, model: tuned, reference: reference, oracle: oracleEval,
                                sets: (forget, retain, general),
                                adapter: adapterConfig, padID: pad, report: report) { model, adapter, withGeneral in
            try evaluate(model, adapter, general: withGeneral)
        }
        let table = results.filter { $0.learningRate == tableLR && $0.steps == tableSteps }
        // A failure of the exact run is reported after everything else is written: the sweep's
        // results (tens of minutes of work) are kept.
        var exactFailure: Error?
        var exactResult: ExactUnlearning?
        if exact {
            do {
                exactResult = try exactUnlearning(tokenizer: tokenizer, forget: forget, retain: retain, report: report) { ensemble in
                    try ForgetEvaluation(forget: forget, unseen: unseen, retain: Array(retain.prefix(retainEvaluated)),
                                         general: general, text: { try tokenizer.decode($0) }, reference: referenceScores) {
                        try ensemble.scores(of: $0, batchSize: batchSize, padID: pad, threads: t)
                    }
                }
            } catch {
                exactFailure = error
                report.say("exact: failed, left out of the table: \(error)")
            }
        }
        printTable(table, reference: reference, oracle: oracleEval, lr: tableLR, steps: tableSteps,
                   parameters: base.configuration.parameterCount, exact: exactResult, report: report)
        if let exactResult {
            printExactCost(exactResult, oracleCost: oracleCost, reference: reference, parameters: base.configuration.parameterCount,
                           report: report)
            let rows = [("θ0", reference), ("oracle", oracleEval)] + table.map { ($0.method.rawValue, $0.evaluation) }
                + [("s3t-before", exactResult.before), ("s3t-exact", exactResult.after)]
            try writeExactChart(rows: rows, reference: reference, oracle: oracleEval)
            report.say("chart: \(out)/exact-vs-approximate.svg")
            try report.record("exact", encoding: ExactSummary(exactResult, oracleSeconds: oracleCost.seconds,
                                                              oracleTokens: oracleCost.tokens,
                                                              largestGapAfter: exactResult.after.largestGap(to: oracleEval)))
        }
        let summary = printSweep(results.filter(\.inSweep), oracle: oracleEval, report: report)
        try writeCharts(results.filter(\.inSweep), summary: summary, report: report)
        let wallSeconds = Date().timeIntervalSince(started)
        report.say(String(format: "wall time of lethe bench unlearn: %.1f s", wallSeconds))
        try writeSummary(before: before, reference: reference, oracle: oracleEval, points: results, summary: summary,
                         parameters: base.configuration.parameterCount, wallSeconds: wallSeconds, report: report)
        if let exactFailure {
            throw BenchUnlearnFailure(description: "\(exactFailure) The other results are written to \(out).")
        }
    }

    /// Runs every method at every learning rate of the grid (and the table's), evaluating along
    /// the way at the grid's step counts and the table's setting.
    func sweep(methods: [UnlearningMethod], model: LlamaModel, reference: ForgetEvaluation, oracle: ForgetEvaluation,
               sets: (forget: [[Int]], retain: [[Int]], general: [[Int]]), adapter: LlamaAdapterConfiguration,
               padID: Int, report: ResultReport,
               evaluate: (LlamaModel, LlamaAdapter, Bool) throws -> ForgetEvaluation) throws -> [SweepPoint] {
        let (lrValues, stepValues, tableLR, tableSteps) = try sweepGrid()
        var results: [SweepPoint] = []
        for method in methods {
            let companion = method.companion == .general ? sets.general : sets.retain
            for lr in Set(lrValues + [tableLR]).sorted() {
                let maxSteps = max(stepValues.last!, lr == tableLR ? tableSteps : 0)
                let config = try UnlearningConfiguration(learningRate: lr, steps: maxSteps, batchSize: unlearnBatchSize,
                                                         seed: seed, adapter: adapter)
                let u = try Unlearner(model: model, objective: .unlearn(method), configuration: config, forget: sets.forget,
                                      companion: method.companion == nil ? [] : companion, padID: padID, threads: options.threads)
                let optimizer = AdamW.Configuration(learningRate: lr, weightDecay: 0, maxGradientNorm: 1)
                var tokens = 0
                for k in 0 ..< maxSteps {
                    u.adapter.zeroGradients()
                    tokens += try u.accumulate(step: k).trainedTokens
                    u.adapter.step(k + 1, optimizer: optimizer)
                    let steps = k + 1, isTable = lr == tableLR && steps == tableSteps
                    guard stepValues.contains(steps) || isTable else { continue }
                    let e = try evaluate(model, u.adapter, isTable)
                    let point = SweepPoint(method: method, learningRate: lr, steps: steps, evaluation: e,
                                           trainedTokens: tokens, inSweep: lrValues.contains(lr) && stepValues.contains(steps),
                                           reference: reference, oracle: oracle)
                    results.append(point)
                    report.say(String(format: "%@ lr %.0e steps %2d: forget ppl %@ retain %@%@  AUC %@; largest |gap| to the oracle %.3f",
                                 padded(method.rawValue), lr, steps, ppl(e.forget.perplexity), ppl(e.retain!.perplexity),
                                 e.general.map { " general " + ppl($0.perplexity) } ?? "", attackAUCs(e),
                                 point.largestGap))
                }
            }
        }
        return results
    }

    /// Forget, retain and unseen sets: the first chunk of the bodies of disjoint, seeded random
    /// draws from all BBC articles (both files), so that before the fine-tune the three sets
    /// differ only by chance and the membership attack starts near 0.5.
    func articleSets(tokenizer: BPETokenizer) throws -> (forget: [[Int]], retain: [[Int]], unseen: [[Int]]) {
        let bodies = try ["train", "test"].flatMap {
            try TextCorpus.texts(path: "Datasets/bbc-news/\($0).jsonl", field: "body")
        }
        let needed = forgetArticles + retainArticles + unseenArticles
        guard needed <= bodies.count else {
            throw ValidationError("--forget-articles + --retain-articles + --unseen-articles = \(needed), but BBC News has \(bodies.count) articles.")
        }
        var order = Array(bodies.indices), rng = SplitMix64(seed: seed ^ 0xA27_1C1E5)
        rng.shuffle(&order)   // version-stable, so the draw never changes
        let chunks = order.prefix(needed).map { Array(tokenizer.encode(bodies[$0], allowSpecial: false).prefix(chunkTokens)) }
        return (Array(chunks.prefix(forgetArticles)), Array(chunks.dropFirst(forgetArticles).prefix(retainArticles)),
                Array(chunks.suffix(unseenArticles)))
    }

    /// A perplexity in 9 columns; beyond 10^6 (a destroyed model) in scientific notation.
    func ppl(_ value: Double) -> String {
        String(format: value < 1e6 ? "%9.2f" : "%9.2e", value)
    }

    func auc(_ e: ForgetEvaluation) -> String {
        e.membership.map { String(format: "%.3f", $0.rocAUC) }.joined(separator: " ")
    }

    /// "loss 0.871 zlib 0.802 …": each attack's AUC.
    func attackAUCs(_ e: ForgetEvaluation) -> String {
        e.attacks.map { String(format: "%@ %.3f", $0.attack.rawValue, $0.separation.rocAUC) }.joined(separator: " ")
    }

    func describe(_ e: ForgetEvaluation) -> String {
        String(format: "ppl forget %.2f retain %.2f unseen %.2f general %.2f; AUC forget vs unseen (K=30,40,50,60,100) %@; attacks %@",
               e.forget.perplexity, e.retain!.perplexity, e.unseen.perplexity, e.general!.perplexity, auc(e), attackAUCs(e))
    }
}
