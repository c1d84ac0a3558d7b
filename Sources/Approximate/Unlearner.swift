import Foundation
import Kernels
import Models
import Support

/// Hyperparameters of one unlearning (or fine-tuning) run; recorded in the output file.
public struct UnlearningConfiguration: Sendable, Equatable {
    public var learningRate: Float
    public var steps: Int
    /// Chunks per batch (forget and companion batches have the same size: 1:1 pairing).
    public var batchSize: Int
    /// Weight λ of the retain/general term.
    public var lambda: Float
    public var seed: UInt64
    public var maxGradientNorm: Float?
    public var adapter: LlamaAdapterConfiguration
    /// β of NPO and SimNPO (nil: the method's default, `UnlearningMethod.defaultBeta`).
    public var beta: Float?
    /// γ of SimNPO, the margin added to the length-normalised log-probability.
    public var gamma: Float

    /// The documented bounds (`lethe unlearn --help` prints them; its `validate()` checks them).
    public enum Limits {
        public static let learningRate: ClosedRange<Float> = 1e-8...1
        public static let steps = 1...100_000
        public static let batchSize = 1...1_024
        public static let rank = 1...256
        public static let alpha: ClosedRange<Float> = 1e-3...1e4
        public static let lambda: ClosedRange<Float> = 0...1e4
        public static let beta: ClosedRange<Float> = 1e-4...1e3
        public static let gamma: ClosedRange<Float> = 0...1e3
    }

    /// Rejects values outside `Limits` (a NaN is outside every range), naming the option.
    public init(learningRate: Float, steps: Int, batchSize: Int = 4, lambda: Float = 1, seed: UInt64 = 0,
                maxGradientNorm: Float? = 1, adapter: LlamaAdapterConfiguration, beta: Float? = nil,
                gamma: Float = 0) throws {
        func within<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ option: String) throws {
            try requireWithin(value, range) { ApproximateError.invalidValue(field: option, value: "\($0)", reason: "must be in \($1)") }
        }
        try within(learningRate, Limits.learningRate, "--lr")
        try within(steps, Limits.steps, "--steps")
        try within(batchSize, Limits.batchSize, "--batch-size")
        try within(lambda, Limits.lambda, "lambda")
        if let beta { try within(beta, Limits.beta, "--beta") }
        try within(gamma, Limits.gamma, "--gamma")
        try within(adapter.rank, Limits.rank, "--rank")
        if let lora = adapter.lora { try within(lora.alpha, Limits.alpha, "--alpha") }
        if let maxGradientNorm, !(maxGradientNorm.isFinite && maxGradientNorm > 0) {
            throw ApproximateError.invalidValue(field: "maxGradientNorm", value: "\(maxGradientNorm)",
                                                reason: "must be a positive finite number")
        }
        self.learningRate = learningRate; self.steps = steps; self.batchSize = batchSize; self.lambda = lambda
        self.seed = seed; self.maxGradientNorm = maxGradientNorm; self.adapter = adapter
        self.beta = beta; self.gamma = gamma
    }

    /// β as `method` uses it.
    public func beta(for method: UnlearningMethod) -> Float { beta ?? method.defaultBeta }
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

/// Runs one of the unlearning methods (or plain fine-tuning) with a LoRA adapter on a frozen model.
///
/// θ0 is the frozen model itself (the adapter starts as the identity), so the KL reference, the
/// adversarial labels and NPO's reference log-probabilities come from forward passes without the
/// adapter.
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
    /// NPO: log π_θ0 of each forget chunk (the sum of its next-token log-probabilities).
    var referenceLogProbabilities: [Double] = []
    /// Gradient replicas of `adapter` for the second and later thread groups of `descend`.
    var replicas: [LlamaAdapter] = []
    /// The frozen base's residual stream entering `streamLayer`, per distinct forget chunk
    /// (`cacheBaseStreams`); empty when not cached.
    var baseStreams: [[Int]: Tensor] = [:]
    var streamLayer = 0

    public init(model: LlamaModel, objective: Objective, configuration: UnlearningConfiguration,
                forget: [[Int]], companion: [[Int]] = [], padID: Int = 2, threads: Int = 1) throws {
        if case let .unlearn(method) = objective, method.companion != nil, companion.isEmpty {
            throw ApproximateError.missingData(method: method.rawValue, needs: "\(method.companion!.rawValue) data")
        }
        guard !forget.isEmpty else { throw ApproximateError.emptyData(name: "forget", path: "<chunks>") }
        let narrowest = model.configuration.narrowestProjection
        if !configuration.adapter.targets.isEmpty, configuration.adapter.rank > narrowest {
            throw ApproximateError.invalidValue(field: "--rank", value: "\(configuration.adapter.rank)",
                                                reason: "the model's narrowest adapted projection is \(narrowest) wide; "
                                                    + "give at most \(narrowest)")
        }
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
        case .npo, .npoDescentInDistribution:
            referenceLogProbabilities = try model.scores(of: forget, padID: padID, threads: threads).map {
                $0.logProbabilities.reduce(0.0) { $0 + Double($1) }
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
        let chunks = forgetIndex.map { forget[$0] }
        var forgetWeight: Float = -1
        var term = Term.nll(weight: -1, labels: nil)
        switch objective {
        case .fineTune:
            forgetWeight = 1
            term = .nll(weight: 1, labels: nil)
        case let .unlearn(method):
            let beta = configuration.beta(for: method)
            switch method.forgetTerm {
            case .ascent: break
            case .replacedLabels:
                forgetWeight = 1
                term = .nll(weight: 1, labels: forgetIndex.map { replacedLabels[$0] })
            case .npo:
                forgetWeight = 1
                term = .preference(weight: 1, loss: .npo(beta: beta, reference: forgetIndex.map { referenceLogProbabilities[$0] }))
            case .simNPO:
                forgetWeight = 1
                term = .preference(weight: 1, loss: .simNPO(beta: beta, gamma: configuration.gamma))
            }
        }
        /// Tokens through forward and backward: the batch padded to its longest chunk.
        func paddedTokens(_ batch: [[Int]]) -> Int { batch.count * (batch.map(\.count).max() ?? 0) }
        let forgetTerm = try descend(chunks, term: term)
        var loss = forgetWeight * forgetTerm, companionTerm: Float = 0
        var tokens = paddedTokens(chunks)
        if case let .unlearn(method) = objective, method.companion != nil {
            let pairs = indices(step: k, count: companion.count).map { companion[$0] }
            tokens += paddedTokens(pairs)
            let λ = configuration.lambda
            // KL over every real token of the companion chunks (padding rows excluded).
            companionTerm = try descend(pairs, term: method.usesKL ? .kl(weight: λ) : .nll(weight: λ, labels: nil))
            loss += λ * companionTerm
        }
        // A diverged step poisons the adapter: stop before the optimiser applies it.
        guard loss.isFinite else { throw ApproximateError.nonFiniteLoss(step: k + 1, loss: loss) }
        return UnlearningStep(step: k + 1, loss: loss, forgetTerm: forgetTerm, companionTerm: companionTerm,
                              gradientNorm: 0, trainedTokens: tokens)
    }

    /// One loss term over a batch of chunks: the mean NLL of the next tokens (or of `labels`,
    /// per chunk, aligned with its prediction rows), the mean KL(θ0 ‖ θ) over real tokens, or a
    /// preference loss averaged over the chunks; `weight` multiplies its gradient.
    enum Term {
        case nll(weight: Float, labels: [[Int32]]?)
        case kl(weight: Float)
        case preference(weight: Float, loss: TokenLosses.Preference)

        /// The units the term averages over in a chunk of `length` tokens: rows, or the chunk.
        func rows(length: Int) -> Int {
            switch self {
            case .kl: return length
            case .nll: return max(length - 1, 0)
            case .preference: return 1
            }
        }

        /// The term on chunks `range` of its batch (replaced labels and references follow their chunks).
        func restricted(to range: Range<Int>) -> Term {
            switch self {
            case let .nll(weight, labels?): return .nll(weight: weight, labels: Array(labels[range]))
            case let .preference(weight, loss): return .preference(weight: weight, loss: loss.restricted(to: range))
            default: return self
            }
        }
    }

    /// How many groups of sequences, one thread each, a batch of `chunkCount` chunks is cut into.
    public func threadGroups(chunkCount: Int) -> Int { max(1, min(threads, chunkCount)) }

    /// Forward, `term` and backward over `chunks`; returns the term's value (its mean over every
    /// row of the batch) and adds its gradient to the adapter's.
    ///
    /// With several threads the sequences are cut into `threads` contiguous groups, each run
    /// end to end on one thread (OpenBLAS single-threaded) into a gradient replica: no thread
    /// waits for another inside a step, and the products keep their single-threaded speed. A
    /// group's term is weighted by its share of the rows, and the replicas are added in group
    /// order, so the same thread count gives the same bits (another count changes only the
    /// order in which the rows' gradients are summed). One thread, or one chunk, runs the whole
    /// batch as one pass, with OpenBLAS on the configured threads.
    func descend(_ chunks: [[Int]], term: Term) throws -> Float {
        let groups = threadGroups(chunkCount: chunks.count)
        guard groups > 1 else {
            return try descend(chunks, term: term, share: 1, adapter: adapter, threads: threads)
        }
        while replicas.count < groups - 1 { replicas.append(adapter.gradientReplica()) }
        let ranges = (0 ..< groups).map { g in g * chunks.count / groups ..< (g + 1) * chunks.count / groups }
        let rows = ranges.map { r in chunks[r].reduce(0) { $0 + term.rows(length: $1.count) } }
        let totalRows = rows.reduce(0, +)
        let values = try Parallel.mapSingleThreaded(count: groups, threads: groups) { g in
            let target = g == 0 ? adapter : replicas[g - 1]
            if g > 0 { target.zeroGradients() }
            let share = totalRows == 0 ? 0 : Float(rows[g]) / Float(totalRows)
            return try descend(Array(chunks[ranges[g]]), term: term.restricted(to: ranges[g]), share: share,
                               adapter: target, threads: 1)
        }
        for replica in replicas.prefix(groups - 1) { adapter.addGradients(of: replica) }
        return values.reduce(0, +)
    }

    /// `term` on one group of chunks, its gradient weighted by `share` (the group's part of the
    /// batch's rows) into `adapter`; returns share × the group's mean.
    func descend(_ chunks: [[Int]], term: Term, share: Float, adapter: LlamaAdapter, threads: Int) throws -> Float {
        let b = ChunkBatch(chunks, padID: padID)
        switch term {
        case let .nll(weight, labels):
            let pass = try adapterPass(b, chunks, rows: b.predictionRows, adapter: adapter, threads: threads)
            let dLogits = Tensor(shape: pass.logits.shape)
            let mean = TokenLosses.negativeLogLikelihood(logits: pass.logits, targets: labels?.flatMap { $0 } ?? b.nextTokens,
                                                         weight: weight * share, dLogits: dLogits, threads: threads)
            model.backward(pass, dLogits: dLogits, adapter: adapter, threads: threads)
            return share * mean
        case let .preference(weight, loss):
            let pass = try adapterPass(b, chunks, rows: b.predictionRows, adapter: adapter, threads: threads)
            let dLogits = Tensor(shape: pass.logits.shape)
            let mean = TokenLosses.preference(loss, logits: pass.logits, targets: b.nextTokens,
                                              rowsPerChunk: chunks.map { max($0.count - 1, 0) },
                                              weight: weight * share, dLogits: dLogits, threads: threads)
            model.backward(pass, dLogits: dLogits, adapter: adapter, threads: threads)
            return share * mean
        case let .kl(weight):
            let pass = try adapterPass(b, chunks, rows: b.realRows, adapter: adapter, threads: threads)
            let reference = try model.forward(ids: b.ids, batch: b.batch, tokens: b.tokens, logitRows: b.realRows,
                                              threads: threads).logits
            let dLogits = Tensor(shape: pass.logits.shape)
            let mean = TokenLosses.klDivergence(reference: reference, logits: pass.logits, rows: b.realRows.count,
                                                weight: weight * share, dLogits: dLogits)
            model.backward(pass, dLogits: dLogits, adapter: adapter, threads: threads)
            return share * mean
        }
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
