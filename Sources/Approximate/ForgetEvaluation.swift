import Foundation
import Models

/// Perplexity and next-token accuracy of a model on a set of chunks.
public struct LanguageModelQuality: Sendable, Equatable, Codable {
    /// exp of the token-weighted mean NLL over all chunks.
    public var perplexity: Double
    /// Share of next-token predictions (argmax) that are right.
    public var accuracy: Double
    public var tokenCount: Int

    /// Aggregates per-chunk scores (token-weighted).
    public init(_ scores: [TokenScores]) {
        let lp = scores.flatMap(\.logProbabilities), ok = scores.flatMap(\.correct)
        tokenCount = lp.count
        perplexity = lp.isEmpty ? .nan : exp(-lp.reduce(0.0) { $0 + Double($1) } / Double(lp.count))
        accuracy = ok.isEmpty ? .nan : Double(ok.filter { $0 }.count) / Double(ok.count)
    }
}

/// The evaluation of an unlearning run (Yao et al. §4): quality on forget, retain and general
/// data; Min-K% membership inference of forget (members) vs unseen (non-members); cost.
public struct ForgetEvaluation: Sendable, Codable {
    public static let percents: [Double] = [30, 40, 50, 60, 100]
    /// Chunks scored per batch unless the caller says otherwise.
    public static let batchSize = 8

    public var forget: LanguageModelQuality
    public var retain: LanguageModelQuality?
    public var general: LanguageModelQuality?
    public var unseen: LanguageModelQuality
    /// Separation per K (same order as `percents`).
    public var membership: [MembershipInference.Separation]

    /// Scores every set under `model` (+ `adapter`) and computes the metrics.
    public init(model: LlamaModel, adapter: LlamaAdapter?, forget: [[Int]], unseen: [[Int]],
                retain: [[Int]]? = nil, general: [[Int]]? = nil, batchSize: Int = Self.batchSize, padID: Int = 2,
                threads: Int = 1) throws {
        func score(_ s: [[Int]]) throws -> [TokenScores] {
            try model.scores(of: s, adapter: adapter, batchSize: batchSize, padID: padID, threads: threads)
        }
        let f = try score(forget), u = try score(unseen)
        self.forget = LanguageModelQuality(f)
        self.unseen = LanguageModelQuality(u)
        self.retain = try retain.map { LanguageModelQuality(try score($0)) }
        self.general = try general.map { LanguageModelQuality(try score($0)) }
        membership = try Self.percents.map { k in
            try MembershipInference.separation(
                members: f.compactMap { MembershipInference.minKScore($0.logProbabilities, percent: k) },
                nonMembers: u.compactMap { MembershipInference.minKScore($0.logProbabilities, percent: k) })
        }
    }
}

/// Training compute of a run against pre-training from scratch (FLOPs ≈ 6·parameters·tokens).
public struct UnlearningCost: Sendable, Equatable, Codable {
    public var parameterCount: Int
    public var trainedTokens: Int
    public var pretrainingTokens: Double
    public var runFLOPs: Double { 6 * Double(parameterCount) * Double(trainedTokens) }
    public var pretrainingFLOPs: Double { 6 * Double(parameterCount) * pretrainingTokens }
    /// Pre-training FLOPs divided by the run's FLOPs (Yao et al. report above 10^5).
    public var ratio: Double { pretrainingFLOPs / max(runFLOPs, 1) }

    /// SmolLM2-135M was pre-trained on about 2 trillion tokens.
    public init(parameterCount: Int, trainedTokens: Int, pretrainingTokens: Double = 2e12) {
        self.parameterCount = parameterCount; self.trainedTokens = trainedTokens
        self.pretrainingTokens = pretrainingTokens
    }
}
