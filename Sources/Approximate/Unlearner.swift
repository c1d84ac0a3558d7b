import Foundation
import Kernels
import Models

/// Hyperparameters of one unlearning (or fine-tuning) run; recorded in the output file.
public struct UnlearningConfiguration: Sendable, Equatable, Codable {
    public var learningRate: Float
    public var steps: Int
    /// Chunks per batch (forget and companion batches have the same size: 1:1 pairing).
    public var batchSize: Int
    /// Weight λ of the retain/general term.
    public var lambda: Float
    public var seed: UInt64
    public var maxGradientNorm: Float?
    public var adapter: LlamaAdapterConfiguration

    /// Rejects non-positive learning rate, steps or batch size.
    public init(learningRate: Float, steps: Int, batchSize: Int = 4, lambda: Float = 1, seed: UInt64 = 0,
                maxGradientNorm: Float? = 1, adapter: LlamaAdapterConfiguration) throws {
        guard learningRate > 0, learningRate.isFinite else {
            throw ApproximateError.invalidValue(field: "learning rate", value: "\(learningRate)", reason: "must be positive")
        }
        guard steps > 0 else { throw ApproximateError.invalidValue(field: "steps", value: "\(steps)", reason: "must be positive") }
        guard batchSize > 0 else {
            throw ApproximateError.invalidValue(field: "batch size", value: "\(batchSize)", reason: "must be positive")
        }
        self.learningRate = learningRate; self.steps = steps; self.batchSize = batchSize; self.lambda = lambda
        self.seed = seed; self.maxGradientNorm = maxGradientNorm; self.adapter = adapter
    }
}

/// What one optimisation step reports through the progress callback.
public struct UnlearningStep: Sendable {
    public var step: Int
    /// The total objective minimised at this step (before the update).
    public var loss: Float
    /// Mean NLL of the forget batch under the true tokens (or the replaced labels).
    public var forgetTerm: Float
    /// The companion term (NLL or KL; 0 for forget-only methods).
    public var companionTerm: Float
    public var gradientNorm: Float
    /// Tokens that went through forward and backward in this step.
    public var trainedTokens: Int
}

/// Runs one of the seven methods (or plain fine-tuning) with a LoRA adapter on a frozen model.
///
/// θ0 is the frozen model itself (the adapter starts as the identity), so the KL reference and
/// the adversarial labels come from forward passes without the adapter.
public final class Unlearner {
    /// What is being optimised: an unlearning method, or next-token descent (fine-tuning).
    public enum Objective: Sendable, Equatable {
        case unlearn(UnlearningMethod)
        case fineTune
    }

    public let model: LlamaModel
    public let objective: Objective
    public let configuration: UnlearningConfiguration
    public let adapter: LlamaAdapter
    let forget: [[Int]]
    let companion: [[Int]]
    let threads: Int
    let padID: Int
    /// Replaced labels per forget chunk (random-label and adversarial), aligned with its prediction rows.
    var replacedLabels: [[Int32]] = []

    public init(model: LlamaModel, objective: Objective, configuration: UnlearningConfiguration,
                forget: [[Int]], companion: [[Int]] = [], padID: Int = 2, threads: Int = 1) throws {
        if case let .unlearn(method) = objective, method.companion != nil, companion.isEmpty {
            throw ApproximateError.missingData(method: method.rawValue, needs: "\(method.companion!.rawValue) data")
        }
        guard !forget.isEmpty else { throw ApproximateError.emptyData(name: "forget", path: "<chunks>") }
        self.model = model; self.objective = objective; self.configuration = configuration
        self.forget = forget; self.companion = companion; self.threads = threads; self.padID = padID
        adapter = LlamaAdapter(configuration: configuration.adapter, weights: model.weights, seed: configuration.seed)
        if case let .unlearn(method) = objective { try prepareLabels(method) }
    }

    /// Random labels: uniform draws from the seed. Adversarial: argmax over wrong tokens under θ0,
    /// computed once. Both replace the target of the row that predicts token t + 1.
    func prepareLabels(_ method: UnlearningMethod) throws {
        let v = model.configuration.vocabularySize
        switch method {
        case .randomLabel:
            var rng = SplitMix64(seed: configuration.seed ^ 0x5EED)
            replacedLabels = forget.map { c in (0 ..< max(c.count - 1, 0)).map { _ in Int32(rng.next() % UInt64(v)) } }
        case .adversarial:
            replacedLabels = try forget.map { c in
                let b = ChunkBatch([c], padID: padID)
                let pass = try model.forward(ids: b.ids, batch: 1, tokens: b.tokens, logitRows: b.predictionRows,
                                             threads: threads)
                return TokenLosses.adversarialLabels(referenceLogits: pass.logits, targets: b.nextTokens)
            }
        default:
            replacedLabels = []
        }
    }

    /// The forget (and companion) chunk indices of 0-based step `k`: batches cycle through
    /// their lists, and companion batch k pairs with forget batch k.
    func indices(step k: Int, count: Int) -> [Int] {
        (0 ..< configuration.batchSize).map { (k * configuration.batchSize + $0) % count }
    }

    /// Computes the objective of 0-based step `k` and accumulates its gradients (callers zero them).
    public func accumulate(step k: Int) throws -> UnlearningStep {
        let forgetIndex = indices(step: k, count: forget.count)
        let f = ChunkBatch(forgetIndex.map { forget[$0] }, padID: padID)
        var forgetTerm: Float = 0, companionTerm: Float = 0, loss: Float = 0
        var tokens = f.batch * f.tokens
        let pass = try model.forward(ids: f.ids, batch: f.batch, tokens: f.tokens, logitRows: f.predictionRows,
                                     adapter: adapter, threads: threads)
        let dLogits = Tensor(shape: pass.logits.shape)
        var targets = f.nextTokens
        var forgetWeight: Float = -1
        switch objective {
        case .fineTune:
            forgetWeight = 1
        case let .unlearn(method):
            if !method.ascendsOnForget {
                targets = forgetIndex.flatMap { replacedLabels[$0] }
                forgetWeight = 1
            }
        }
        forgetTerm = TokenLosses.negativeLogLikelihood(logits: pass.logits, targets: targets, weight: forgetWeight,
                                                       dLogits: dLogits, threads: threads)
        loss = forgetWeight * forgetTerm
        model.backward(pass, dLogits: dLogits, adapter: adapter, threads: threads)
        if case let .unlearn(method) = objective, method.companion != nil {
            let r = ChunkBatch(indices(step: k, count: companion.count).map { companion[$0] }, padID: padID)
            tokens += r.batch * r.tokens
            let λ = configuration.lambda
            if method.usesKL {
                // KL over every real token of the companion chunks (padding rows excluded).
                let rp = try model.forward(ids: r.ids, batch: r.batch, tokens: r.tokens, logitRows: r.realRows,
                                           adapter: adapter, threads: threads)
                let reference = try model.forward(ids: r.ids, batch: r.batch, tokens: r.tokens, logitRows: r.realRows,
                                                  threads: threads).logits
                let dr = Tensor(shape: rp.logits.shape)
                companionTerm = TokenLosses.klDivergence(reference: reference, logits: rp.logits, rows: r.realRows.count,
                                                         weight: λ, dLogits: dr)
                model.backward(rp, dLogits: dr, adapter: adapter, threads: threads)
            } else {
                let rp = try model.forward(ids: r.ids, batch: r.batch, tokens: r.tokens, logitRows: r.predictionRows,
                                           adapter: adapter, threads: threads)
                let dr = Tensor(shape: rp.logits.shape)
                companionTerm = TokenLosses.negativeLogLikelihood(logits: rp.logits, targets: r.nextTokens, weight: λ,
                                                                  dLogits: dr, threads: threads)
                model.backward(rp, dLogits: dr, adapter: adapter, threads: threads)
            }
            loss += λ * companionTerm
        }
        return UnlearningStep(step: k + 1, loss: loss, forgetTerm: forgetTerm, companionTerm: companionTerm,
                              gradientNorm: 0, trainedTokens: tokens)
    }

    /// Runs `configuration.steps` AdamW steps (no weight decay: the adapter should move only
    /// as the objective asks), reporting each through `progress`.
    @discardableResult
    public func run(progress: (UnlearningStep) -> Void = { _ in }) throws -> LlamaAdapter {
        let optimizer = AdamW.Configuration(learningRate: configuration.learningRate, weightDecay: 0,
                                            maxGradientNorm: configuration.maxGradientNorm)
        for k in 0 ..< configuration.steps {
            adapter.zeroGradients()
            var report = try accumulate(step: k)
            report.gradientNorm = adapter.step(k + 1, optimizer: optimizer)
            progress(report)
        }
        return adapter
    }
}
