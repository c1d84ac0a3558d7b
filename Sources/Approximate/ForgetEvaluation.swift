import Foundation
import Models

/// Perplexity and next-token accuracy of a model on a set of chunks.
public struct LanguageModelQuality: Sendable, Equatable, Codable {
    /// exp of the token-weighted mean NLL over all chunks.
    public var perplexity: Double
    /// Share of next-token predictions (argmax) that are right.
    public var accuracy: Double
    public var tokenCount: Int

    /// JSON keys in snake_case, as every report of Lethe writes them.
    public enum CodingKeys: String, CodingKey { case perplexity, accuracy, tokenCount = "token_count" }

    /// Aggregates per-chunk scores (token-weighted).
    public init(_ scores: [TokenScores]) {
        let lp = scores.flatMap(\.logProbabilities), ok = scores.flatMap(\.correct)
        tokenCount = lp.count
        perplexity = lp.isEmpty ? .nan : exp(-lp.reduce(0.0) { $0 + Double($1) } / Double(lp.count))
        accuracy = ok.isEmpty ? .nan : Double(ok.filter { $0 }.count) / Double(ok.count)
    }
}

/// The token scores of the forget and unseen sets under a reference model, for the reference attack.
public struct ReferenceScores: Sendable {
    public var forget: [TokenScores]
    public var unseen: [TokenScores]

    public init(forget: [TokenScores], unseen: [TokenScores]) { self.forget = forget; self.unseen = unseen }

    /// Scores both sets under `model` (no adapter).
    public init(model: LlamaModel, forget: [[Int]], unseen: [[Int]], batchSize: Int = ForgetEvaluation.batchSize,
                padID: Int = 2, threads: Int = 1) throws {
        self.forget = try model.scores(of: forget, batchSize: batchSize, padID: padID, threads: threads)
        self.unseen = try model.scores(of: unseen, batchSize: batchSize, padID: padID, threads: threads)
    }
}

/// One membership attack's separation of forget (members) from unseen (non-members).
public struct AttackSeparation: Sendable, Codable, Equatable {
    public var attack: MembershipInference.Attack
    public var separation: MembershipInference.Separation
}

/// The evaluation of an unlearning run (Yao et al. §4): quality on forget, retain and general
/// data; membership inference of forget (members) vs unseen (non-members) by Min-K% over K and
/// by each attack of `MembershipInference.Attack`; cost.
public struct ForgetEvaluation: Sendable, Codable {
    public static let percents: [Double] = [30, 40, 50, 60, 100]
    /// Chunks scored per batch unless the caller says otherwise.
    public static let batchSize = 8

    public var forget: LanguageModelQuality
    public var retain: LanguageModelQuality?
    public var general: LanguageModelQuality?
    public var unseen: LanguageModelQuality
    /// Min-K% separation per K (same order as `percents`).
    public var membership: [MembershipInference.Separation]
    /// Each attack's separation: LOSS, Min-K% and Min-K%++ always; zlib when the texts are known
    /// (`text` given); reference when reference scores are given.
    public var attacks: [AttackSeparation]

    /// Scores every set under `model` (+ `adapter`) and computes the metrics. `text` turns a
    /// chunk back into its text (for the zlib attack); `reference` holds the forget and unseen
    /// scores under the reference model.
    public init(model: LlamaModel, adapter: LlamaAdapter?, forget: [[Int]], unseen: [[Int]],
                retain: [[Int]]? = nil, general: [[Int]]? = nil, batchSize: Int = Self.batchSize, padID: Int = 2,
                threads: Int = 1, text: (([Int]) throws -> String)? = nil, reference: ReferenceScores? = nil) throws {
        try self.init(forget: forget, unseen: unseen, retain: retain, general: general, text: text, reference: reference) {
            try model.scores(of: $0, adapter: adapter, batchSize: batchSize, padID: padID, threads: threads)
        }
    }

    /// The same metrics with any scorer of chunks (e.g. the served ensemble of a decoder run).
    public init(forget: [[Int]], unseen: [[Int]], retain: [[Int]]? = nil, general: [[Int]]? = nil,
                text: (([Int]) throws -> String)? = nil, reference: ReferenceScores? = nil,
                score: ([[Int]]) throws -> [TokenScores]) throws {
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
        let zlibSizes = try text.map { decode in
            (try forget.map { MembershipInference.zlibSize(try decode($0)) },
             try unseen.map { MembershipInference.zlibSize(try decode($0)) })
        }
        if let reference, reference.forget.count != f.count || reference.unseen.count != u.count {
            throw ApproximateError.invalidValue(field: "reference scores", value: "\(reference.forget.count)/\(reference.unseen.count)",
                                                reason: "must score the same \(f.count) forget and \(u.count) unseen chunks")
        }
        attacks = try MembershipInference.Attack.allCases.compactMap { attack in
            let score: (TokenScores, Int, Bool) -> Double?
            let k = MembershipInference.attackPercent
            switch attack {
            case .loss: score = { s, _, _ in MembershipInference.lossScore(s) }
            case .minK: score = { s, _, _ in MembershipInference.minKScore(s.logProbabilities, percent: k) }
            case .minKPlusPlus: score = { s, _, _ in MembershipInference.minKPlusPlusScore(s, percent: k) }
            case .zlib:
                guard let zlibSizes else { return nil }
                score = { s, i, member in
                    MembershipInference.zlibScore(s, compressedBytes: member ? zlibSizes.0[i] : zlibSizes.1[i])
                }
            case .reference:
                guard let reference else { return nil }
                score = { s, i, member in
                    MembershipInference.referenceScore(s, reference: member ? reference.forget[i] : reference.unseen[i])
                }
            }
            let members = f.enumerated().compactMap { score($1, $0, true) }
            let nonMembers = u.enumerated().compactMap { score($1, $0, false) }
            // Scores without what an attack needs (Min-K%++ without the distribution's statistics) skip it.
            guard !members.isEmpty, !nonMembers.isEmpty else { return nil }
            return AttackSeparation(attack: attack, separation: try MembershipInference.separation(members: members,
                                                                                                    nonMembers: nonMembers))
        }
    }

    /// The AUC of `attack`, if it ran.
    public func auc(_ attack: MembershipInference.Attack) -> Double? {
        attacks.first { $0.attack == attack }?.separation.rocAUC
    }

    /// AUC − the oracle's AUC for every attack both evaluations ran, in attack order. Two-sided:
    /// a negative gap (forget texts now look less familiar than never-seen ones) is over-forgetting.
    public func gaps(to oracle: ForgetEvaluation) -> [(attack: MembershipInference.Attack, gap: Double)] {
        attacks.compactMap { a in oracle.auc(a.attack).map { (a.attack, a.separation.rocAUC - $0) } }
    }

    /// The largest |AUC − oracle AUC| over the attacks (0 when none is shared).
    public func largestGap(to oracle: ForgetEvaluation) -> Double {
        gaps(to: oracle).map { abs($0.gap) }.max() ?? 0
    }
}

/// Training compute of a run against pre-training from scratch (FLOPs ≈ 6·parameters·tokens).
public struct UnlearningCost: Sendable, Equatable, Codable {
    public var parameterCount: Int
    public var trainedTokens: Int
    public var pretrainingTokens: Double

    /// JSON keys in snake_case, as every report of Lethe writes them.
    public enum CodingKeys: String, CodingKey {
        case parameterCount = "parameter_count", trainedTokens = "trained_tokens", pretrainingTokens = "pretraining_tokens"
    }

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
