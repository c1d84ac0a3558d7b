import ArgumentParser
import CommandSupport
import Approximate
import Foundation
import Models
import Support

extension UnlearningMethod: ExpressibleByArgument {}

/// `lethe unlearn`: one of the approximate-unlearning methods with a LoRA adapter.
struct UnlearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlearn",
        abstract: "Make a decoder forget a text set with gradient ascent, its variants, NPO or SimNPO.",
        discussion: """
            Methods: ga, random-label, adversarial, npo, simnpo (forget data only); ga-gd-in, \
            ga-kl-in, npo-gd, simnpo-gd (also --retain, same-domain data); ga-gd-gen, ga-kl-gen \
            (also --general data). The base model stays frozen (it is θ0 for KL, adversarial labels \
            and NPO's reference); a LoRA adapter is trained and written to DIR/adapter.h5 with the \
            method, hyperparameters and data hashes. A NaN or infinite loss stops the run (exit 1) \
            before the step is applied, and nothing is written; lower --lr.

            Losses, per batch (ℓ = mean next-token NLL, λ = 1, chunk i with log π(y_i) the sum of \
            its next-token log-probabilities and |y_i| its predicted tokens, σ the logistic \
            function, means over the chunks of the batch):
              ga            −ℓ(θ; x_f)
              random-label  ℓ(θ; x_f, uniform random next tokens)
              adversarial   ℓ(θ; x_f, θ0's most likely wrong next tokens)
              ga-gd-in/gen  −ℓ(θ; x_f) + λ·ℓ(θ; x_retain/general)
              ga-kl-in/gen  −ℓ(θ; x_f) + λ·KL(p_θ0 ‖ p_θ) on x_retain/general
              npo           −(2/β)·log σ(−β·(log π_θ(y_i) − log π_θ0(y_i)))
              simnpo        −(2/β)·log σ(−(β/|y_i|)·log π_θ(y_i) − γ)
              npo-gd        npo + λ·ℓ(θ; x_retain)
              simnpo-gd     simnpo + λ·ℓ(θ; x_retain)

            Examples:
              lethe unlearn --method ga --forget Datasets/rotten-tomatoes/test.jsonl --steps 10 --out Checkpoints/unlearn/rt-ga
              lethe unlearn --method ga-gd-in --forget Datasets/rotten-tomatoes/test.jsonl --retain Datasets/rotten-tomatoes/train.jsonl --steps 20 --out Checkpoints/unlearn/rt-gd
              lethe perplexity --data Datasets/rotten-tomatoes/test.jsonl --adapter Checkpoints/unlearn/rt-gd --limit 50

            \(ExitStatus.help())
            """)

    @OptionGroup var options: DecoderOptions

    @Option(help: "\(UnlearningMethod.allCases.map(\.rawValue).joined(separator: " | "))")
    var method: UnlearningMethod

    @Option(help: "JSON Lines file of the texts to forget.")
    var forget: String

    @Option(help: "β of npo/simnpo and their -gd forms, \(Bounds.beta.text) (default 0.1 for npo, 2.5 for simnpo).")
    var beta: Float?

    @Option(help: "γ of simnpo and simnpo-gd, \(Bounds.gamma.text).")
    var gamma: Float = 0

    @Option(help: "JSON Lines file of same-domain texts to keep (ga-gd-in, ga-kl-in, npo-gd, simnpo-gd).")
    var retain: String?

    @Option(help: "JSON Lines file of general texts to keep (ga-gd-gen, ga-kl-gen).")
    var general: String?

    @Option(help: "Record field holding the text.")
    var field = "text"

    @Option(help: "Tokens per chunk, 2…--max-positions.")
    var chunkTokens = 128

    @Option(help: "Learning rate (AdamW), \(Bounds.learningRate.text).")
    var lr: Float = 1e-4

    @Option(help: "Optimisation steps, \(Bounds.steps.text).")
    var steps = 10

    @Option(help: "Chunks per batch (forget and companion batches are paired 1:1), \(Bounds.batchSize.text).")
    var batchSize = 4

    @Option(help: "LoRA rank r, \(Bounds.rank.text) and at most the model's narrowest projection (192 for SmolLM2).")
    var rank = 8

    @Option(help: "LoRA alpha, \(Bounds.alpha.text).")
    var alpha: Float = 16

    @Flag(help: "rsLoRA: scale the adapters by alpha/√r instead of alpha/r.")
    var rslora = false

    @Option(help: "Seed (adapter initialisation, random labels), \(CommonBounds.seedText).")
    var seed: UInt64 = 0

    @Option(help: "Output directory; the adapter is written to DIR/\(AdapterFile.fileName).")
    var out: String

    /// The bounds of `UnlearningConfiguration`, as options.
    enum Bounds {
        typealias Limits = UnlearningConfiguration.Limits
        static let learningRate = OptionBounds(Limits.learningRate)
        static let steps = OptionBounds(Limits.steps)
        static let batchSize = OptionBounds(Limits.batchSize)
        static let rank = OptionBounds(Limits.rank)
        static let alpha = OptionBounds(Limits.alpha)
        static let beta = OptionBounds(Limits.beta)
        static let gamma = OptionBounds(Limits.gamma)
    }

    func validate() throws {
        try options.checkModel()
        try Bounds.learningRate.check(lr, option: "--lr")
        try Bounds.steps.check(steps, option: "--steps")
        try Bounds.batchSize.check(batchSize, option: "--batch-size")
        try Bounds.rank.check(rank, option: "--rank")
        try Bounds.alpha.check(alpha, option: "--alpha")
        try Bounds.beta.check(beta, option: "--beta")
        try Bounds.gamma.check(gamma, option: "--gamma")
        if beta != nil && !method.usesPreferenceLoss {
            throw ValidationError("--beta applies to npo, simnpo, npo-gd and simnpo-gd, not to --method \(method.rawValue).")
        }
        if gamma != 0 && method.forgetTerm != .simNPO {
            throw ValidationError("--gamma applies to simnpo and simnpo-gd, not to --method \(method.rawValue).")
        }
        try options.checkChunkLength(chunkTokens, option: "--chunk-tokens")
        try InputFiles.check([("--forget", forget), ("--retain", retain), ("--general", general)])
        guard !out.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("--out is empty; give the directory the adapter goes to.")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ValidationError("--out \(out): a file is in the way; give a directory (the adapter goes to DIR/\(AdapterFile.fileName)).")
        }
        if method.companion == .inDistribution && retain == nil {
            throw ValidationError("--method \(method.rawValue) needs --retain FILE (same-domain data to keep).")
        }
        if method.companion == .general && general == nil {
            throw ValidationError("--method \(method.rawValue) needs --general FILE (general data to keep).")
        }
        // A companion set the method does not read would be ignored without a word.
        if retain != nil && method.companion != .inDistribution {
            throw ValidationError("--method \(method.rawValue) does not read --retain (ga-gd-in, ga-kl-in, npo-gd and "
                                  + "simnpo-gd do); drop it or choose one of those methods.")
        }
        if general != nil && method.companion != .general {
            throw ValidationError("--method \(method.rawValue) does not read --general (ga-gd-gen and ga-kl-gen do); drop it "
                                  + "or choose one of those methods.")
        }
    }

    @Flag(help: "JSON Lines instead of text: one {\"event\": \"step\"} object per step, then one {\"event\": \"done\"}.")
    var json = false

    func run() throws {
        let (model, tokenizer) = try options.load()
        // Before --out is made.
        try DecoderOptions.checkRank(rank, within: Bounds.rank, for: model.configuration)
        func corpus(_ path: String) throws -> TextCorpus {
            try TextCorpus(path: path, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens)
        }
        let forgetSet = try corpus(forget)
        var sets = ["forget": forgetSet]
        var companion: [[Int]] = []
        if let c = method.companion, let path = c == .inDistribution ? retain : general {   // `validate` checked it is given
            let set = try corpus(path)
            sets[c.rawValue] = set
            companion = set.chunks
        }
        try options.ensureTrainingMemory(model.configuration, chunks: forgetSet.chunks + companion, batchSize: batchSize)
        // The output directory is made before training, so a path that cannot hold it fails
        // now rather than after the steps; the adapter file is written only once they all ran.
        let dir = URL(fileURLWithPath: out)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw ValidationError("--out \(out): cannot create the directory (\(fileErrorReason(error))).")
        }
        // Two unlearns into one --out would each write the adapter, the last rename winning
        // unannounced: the second is refused while the first holds the directory.
        try OutputDirectoryLock.holding(dir, command: "unlearn", refusal: "--out \(out): another `lethe unlearn` is "
                                        + "writing its adapter there; wait for it to finish, or choose another --out") { _ in
            try unlearn(into: dir, model: model, tokenizer: tokenizer, forgetSet: forgetSet, companion: companion,
                        sets: sets)
        }
    }

    private func unlearn(into dir: URL, model: LlamaModel, tokenizer: BPETokenizer, forgetSet: TextCorpus,
                         companion: [[Int]], sets: [String: TextCorpus]) throws {
        if !companion.isEmpty {
            let shared = Set(forgetSet.chunks).intersection(companion).count
            if shared > 0 {
                StandardError.write(Data(("warning: \(shared) chunk(s) of --forget are also in the companion "
                    + "set, whose term pulls them back: the two sets should not share texts\n").utf8))
            }
        }
        // A run killed while writing the adapter left its temporary file; it is never read.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        where name.hasPrefix(".\(AdapterFile.fileName).tmp-") {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
        }
        let configuration = try UnlearningConfiguration(
            learningRate: lr, steps: steps, batchSize: batchSize, seed: seed,
            adapter: try LlamaAdapterConfiguration(rank: rank, alpha: alpha, useRSLoRA: rslora), beta: beta, gamma: gamma)
        let unlearner = try Unlearner(model: model, objective: .unlearn(method), configuration: configuration,
                                      forget: forgetSet.chunks, companion: companion, padID: tokenizer.eosID,
                                      threads: options.threads)
        var tokens = 0
        var last: (forgetTerm: Float, companionTerm: Float, gradientNorm: Float)?
        var firstForgetTerm: Float?
        let adapter = try unlearner.run { s in
            tokens += s.trainedTokens
            last = (s.forgetTerm, s.companionTerm, s.gradientNorm)
            if firstForgetTerm == nil { firstForgetTerm = s.forgetTerm }
            if json {
                writeJSONLine(["event": "step", "step": s.step, "steps": steps, "loss": Double(s.loss),
                               "forget_term": Double(s.forgetTerm), "companion_term": Double(s.companionTerm),
                               "gradient_norm": Double(s.gradientNorm), "trained_tokens": s.trainedTokens])
            } else {
                print(String(format: "step %d/%d  loss %.4f  forget %.4f  companion %.4f  |g| %.3f",
                             s.step, steps, s.loss, s.forgetTerm, s.companionTerm, s.gradientNorm))
                fflush(nil)  // each step as it ends, into a pipe or file too
            }
        }
        // A forget term at ln V with no gradient left: every next token is equally likely, the
        // model says nothing any more (not only about the forget set). Saved, but said.
        let uniform = Float(Foundation.log(Double(model.configuration.vocabularySize)))
        if let last, abs(abs(last.forgetTerm) - uniform) < 0.01 * uniform, last.gradientNorm < 1e-4 {
            StandardError.write(Data(("warning: the forget term ended at \(abs(last.forgetTerm)) ≈ ln "
                + "\(model.configuration.vocabularySize) with no gradient left: the adapted model predicts every token "
                + "alike, so it forgot everything, not only the forget set. Lower --lr or --alpha.\n").utf8))
        } else if let last, method.companionIsNextTokenLoss, last.companionTerm >= 0.99 * uniform {
            // The set the method keeps is predicted no better than by guessing every token alike.
            StandardError.write(Data(("warning: the companion term (the next-token loss on --\(method.companion?.rawValue ?? "retain")) "
                + "ended at \(last.companionTerm), at or above ln \(model.configuration.vocabularySize) = \(uniform), the loss "
                + "of guessing every token alike: the model no longer keeps what it was to keep. Lower --lr or --alpha.\n").utf8))
        } else if let last, let firstForgetTerm, method.usesPreferenceLoss, firstForgetTerm >= 1e-3,
                  last.forgetTerm < 1e-3, last.gradientNorm < 1e-4 {
            // NPO's term tends to 0 as the forget set's likelihood under the model does; reached
            // by the steps (not saturated from the first, as a large --beta can make it), it
            // usually means the model broke down on other text too.
            StandardError.write(Data(("warning: the \(method.rawValue) term fell from \(firstForgetTerm) to \(last.forgetTerm) "
                + "with no gradient left: the model gives the forget set almost no probability at all, which it "
                + "usually reaches by breaking down on other text too. Check its perplexity on data it should keep; "
                + "lower --lr or --alpha.\n").utf8))
        }
        let url = dir.appendingPathComponent(AdapterFile.fileName)
        try AdapterFile.write(adapter, to: url, method: method.rawValue, configuration: configuration,
                              threadCount: options.threads,
                              baseModelSHA256: try TextCorpus.fileSHA256(path: options.model), dataSets: sets,
                              precision: options.precision)
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
