import ArgumentParser
import CommandSupport
import Approximate
import Foundation
import Models

extension UnlearningMethod: ExpressibleByArgument {}

/// `lethe unlearn`: one of the seven approximate-unlearning methods with a LoRA adapter.
struct UnlearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlearn",
        abstract: "Make a decoder forget a text set with one of Yao et al.'s seven methods.",
        discussion: """
            Methods: ga, random-label, adversarial (forget data only); ga-gd-in, ga-kl-in (also \
            --retain, same-domain data); ga-gd-gen, ga-kl-gen (also --general data). The base \
            model stays frozen (it is θ0 for KL and adversarial labels); a LoRA adapter is trained \
            and written to DIR/adapter.h5 with the method, hyperparameters and data hashes.
            Example: lethe unlearn --method ga-gd-in --forget f.jsonl --retain r.jsonl --steps 20 --out runs/u1
            """)

    @OptionGroup var options: DecoderOptions

    @Option(help: "ga | random-label | adversarial | ga-gd-in | ga-gd-gen | ga-kl-in | ga-kl-gen")
    var method: UnlearningMethod

    @Option(help: "JSON Lines file of the texts to forget.")
    var forget: String

    @Option(help: "JSON Lines file of same-domain texts to keep (ga-gd-in, ga-kl-in).")
    var retain: String?

    @Option(help: "JSON Lines file of general texts to keep (ga-gd-gen, ga-kl-gen).")
    var general: String?

    @Option(help: "Record field holding the text.")
    var field = "text"

    @Option(help: "Tokens per chunk, 2…--max-positions.")
    var chunkTokens = 128

    @Option(help: "Learning rate (AdamW), 1e-8…1.")
    var lr: Float = 1e-4

    @Option(help: "Optimisation steps, 1…100000.")
    var steps = 10

    @Option(help: "Chunks per batch (forget and companion batches are paired 1:1), 1…1024.")
    var batchSize = 4

    @Option(help: "LoRA rank r, 1…256.")
    var rank = 8

    @Option(help: "LoRA alpha, 0.001…10000.")
    var alpha: Float = 16

    @Option(help: "Seed (adapter initialisation, random labels).")
    var seed: UInt64 = 0

    @Option(help: "Output directory.")
    var out: String

    func validate() throws {
        func within<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ flag: String) throws {
            guard range.contains(value) else {
                throw ValidationError("--\(flag) \(value): give \(range.lowerBound)…\(range.upperBound).")
            }
        }
        guard lr.isFinite, alpha.isFinite else { throw ValidationError("--lr and --alpha must be finite numbers.") }
        try within(lr, 1e-8...1, "lr")
        try within(steps, 1...100_000, "steps")
        try within(batchSize, 1...1_024, "batch-size")
        try within(rank, 1...256, "rank")
        try within(alpha, 1e-3...1e4, "alpha")
        try within(chunkTokens, 2...options.maxPositions, "chunk-tokens")
        if method.companion == .inDistribution && retain == nil {
            throw ValidationError("--method \(method.rawValue) needs --retain FILE (same-domain data to keep).")
        }
        if method.companion == .general && general == nil {
            throw ValidationError("--method \(method.rawValue) needs --general FILE (general data to keep).")
        }
    }

    @Flag(help: "JSON Lines instead of text: one {\"event\": \"step\"} object per step, then one {\"event\": \"done\"}.")
    var json = false

    func run() throws {
        let (model, tokenizer) = try options.load()
        func corpus(_ path: String) throws -> TextCorpus {
            try TextCorpus(path: path, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens)
        }
        let forgetSet = try corpus(forget)
        var sets = ["forget": forgetSet]
        var companion: [[Int]] = []
        if let c = method.companion {
            let set = try corpus(c == .inDistribution ? retain! : general!)
            sets[c.rawValue] = set
            companion = set.chunks
        }
        let configuration = try UnlearningConfiguration(
            learningRate: lr, steps: steps, batchSize: batchSize, seed: seed,
            adapter: try LlamaAdapterConfiguration(rank: rank, alpha: alpha))
        let unlearner = try Unlearner(model: model, objective: .unlearn(method), configuration: configuration,
                                      forget: forgetSet.chunks, companion: companion, padID: tokenizer.eosID,
                                      threads: options.threads)
        var tokens = 0
        let adapter = try unlearner.run { s in
            tokens += s.trainedTokens
            if json {
                writeJSONLine(["event": "step", "step": s.step, "steps": steps, "loss": Double(s.loss),
                               "forget_term": Double(s.forgetTerm), "companion_term": Double(s.companionTerm),
                               "gradient_norm": Double(s.gradientNorm), "trained_tokens": s.trainedTokens])
            } else {
                print(String(format: "step %d/%d  loss %.4f  forget %.4f  companion %.4f  |g| %.3f",
                             s.step, steps, s.loss, s.forgetTerm, s.companionTerm, s.gradientNorm))
            }
        }
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(AdapterFile.fileName)
        try AdapterFile.write(adapter, to: url, method: method.rawValue, configuration: configuration,
                              threadCount: options.threads,
                              baseModelSHA256: try TextCorpus.fileSHA256(path: options.model), dataSets: sets)
        let cost = UnlearningCost(parameterCount: model.configuration.parameterCount, trainedTokens: tokens)
        if json {
            writeJSONLine(["event": "done", "adapter": url.path, "trainable_floats": adapter.parameterCount,
                           "trained_tokens": tokens, "flops": cost.runFLOPs, "pretraining_ratio": cost.ratio])
            return
        }
        print(String(format: "wrote %@ (%d trainable floats); %d trained tokens, %.3g FLOPs, pre-training / run = %.3g",
                     url.path, adapter.parameterCount, tokens, cost.runFLOPs, cost.ratio))
    }
}
