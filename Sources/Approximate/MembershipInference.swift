import CZlib
import Foundation
import Models

/// Membership-inference scores of a text under a model, and the threshold-free metrics of a
/// member/non-member score separation. Higher scores mean "more likely seen in training".
///
/// With log p_t = log p(x_t | x_<t) over the n predicted tokens of a text:
///   LOSS       (1/n)·Σ log p_t (Yeom et al. 2018)
///   zlib       (1/n)·Σ log p_t ÷ the zlib-compressed size of the text in bytes (Carlini et al.
///              2021): a text the model finds easy only because it is repetitive scores lower
///   Min-K%     mean of the ⌊n·K/100⌋ (≥ 1) smallest log p_t (Shi et al. 2024); K = 100 is LOSS
///   Min-K%++   the same over (log p_t − μ_t)/σ_t, μ_t and σ_t the mean and standard deviation
///              of log p(z | x_<t) for z drawn from the model's next-token distribution
///              (Zhang et al. 2024): a token is judged against what the model expected there
///   reference  (1/n)·Σ log p_t − (1/n)·Σ log p⁰_t, p⁰ a reference model that never saw the
///              members (Carlini et al. 2022's calibration by a reference model)
public enum MembershipInference {
    /// The attacks `ForgetEvaluation` runs, in report order.
    public enum Attack: String, CaseIterable, Codable, Sendable {
        case loss = "loss"
        case zlib = "zlib"
        case minK = "min-k"
        case minKPlusPlus = "min-k++"
        case reference = "reference"
    }

    /// K of the Min-K% and Min-K%++ attacks in the attack list (the papers' usual 20%).
    public static let attackPercent = 20.0

    /// LOSS: the mean log-probability; nil for a text with no predicted token.
    public static func lossScore(_ s: TokenScores) -> Double? {
        s.logProbabilities.isEmpty ? nil : s.logProbabilities.reduce(0.0) { $0 + Double($1) } / Double(s.logProbabilities.count)
    }

    /// zlib: the mean log-probability divided by `compressedBytes`.
    public static func zlibScore(_ s: TokenScores, compressedBytes: Int) -> Double? {
        lossScore(s).map { $0 / Double(max(compressedBytes, 1)) }
    }

    /// Min-K%++ at `k` percent; nil without the distribution statistics or tokens. A position
    /// whose next-token distribution is a point mass (σ = 0) contributes 0.
    public static func minKPlusPlusScore(_ s: TokenScores, percent k: Double) -> Double? {
        guard !s.logProbabilities.isEmpty, s.expectedLogProbabilities.count == s.logProbabilities.count,
              s.logProbabilityDeviations.count == s.logProbabilities.count else { return nil }
        let standardised = s.logProbabilities.indices.map { t -> Float in
            let σ = s.logProbabilityDeviations[t]
            return σ > 0 ? (s.logProbabilities[t] - s.expectedLogProbabilities[t]) / σ : 0
        }
        return minKScore(standardised, percent: k)
    }

    /// reference: LOSS under the model minus LOSS under the reference model.
    public static func referenceScore(_ s: TokenScores, reference: TokenScores) -> Double? {
        guard let own = lossScore(s), let other = lossScore(reference) else { return nil }
        return own - other
    }

    /// The size of `text`'s UTF-8 bytes after zlib compression at the highest level.
    public static func zlibSize(_ text: String) -> Int {
        var bytes = Array(text.utf8)
        var capacity = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(capacity))
        let status = bytes.withUnsafeMutableBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                compress2(output.baseAddress, &capacity, input.baseAddress, uLong(input.count), 9)
            }
        }
        // compress2 cannot fail with a buffer of compressBound's size; fall back to the raw size.
        return status == Z_OK ? Int(capacity) : bytes.count
    }

    /// Mean of the ⌊n·K/100⌋ (≥ 1) smallest log-probabilities; nil for an empty list.
    public static func minKScore(_ logProbabilities: [Float], percent k: Double) -> Double? {
        guard !logProbabilities.isEmpty else { return nil }
        let count = max(1, Int(Double(logProbabilities.count) * k / 100))
        let lowest = logProbabilities.sorted().prefix(count)
        return lowest.reduce(0.0) { $0 + Double($1) } / Double(count)
    }

    /// The separation of member scores from non-member scores.
    public struct Separation: Sendable, Equatable, Codable {
        /// P(member score > non-member score) + ½·P(equal) (Mann–Whitney); 0.5 = chance.
        public var rocAUC: Double
        /// max(AUC, 1 − AUC): what the official code reports; hides over-unlearning (AUC < 0.5).
        public var foldedAUC: Double
        /// Best (TPR + TNR)/2 over thresholds "member iff score ≥ τ".
        public var bestBalancedAccuracy: Double
        /// Highest TPR among thresholds with FPR ≤ 5%.
        public var tprAt5PercentFPR: Double

        /// JSON keys in snake_case, as every report of Lethe writes them (and reads an oracle's).
        public enum CodingKeys: String, CodingKey {
            case rocAUC = "roc_auc", foldedAUC = "folded_auc", bestBalancedAccuracy = "best_balanced_accuracy"
            case tprAt5PercentFPR = "tpr_at_5_percent_fpr"
        }
    }

    /// Metrics of `members` vs `nonMembers`; throws if either is empty.
    public static func separation(members: [Double], nonMembers: [Double]) throws -> Separation {
        guard !members.isEmpty, !nonMembers.isEmpty else {
            throw ApproximateError.needsBothClasses(members: members.count, nonMembers: nonMembers.count)
        }
        let auc = rocAUC(members: members, nonMembers: nonMembers)
        // Sweep thresholds at every distinct score, descending: members predicted iff score ≥ τ.
        let thresholds = Set(members + nonMembers).sorted(by: >)
        let p = Double(members.count), n = Double(nonMembers.count)
        var best = 0.5, tpr5 = 0.0
        for τ in thresholds {
            let tpr = Double(members.filter { $0 >= τ }.count) / p
            let fpr = Double(nonMembers.filter { $0 >= τ }.count) / n
            best = max(best, (tpr + 1 - fpr) / 2)
            if fpr <= 0.05 { tpr5 = max(tpr5, tpr) }
        }
        return Separation(rocAUC: auc, foldedAUC: max(auc, 1 - auc), bestBalancedAccuracy: best,
                          tprAt5PercentFPR: tpr5)
    }

    /// Mann–Whitney AUC with average ranks for ties.
    static func rocAUC(members: [Double], nonMembers: [Double]) -> Double {
        let all = (members.map { ($0, true) } + nonMembers.map { ($0, false) }).sorted { $0.0 < $1.0 }
        var rankSum = 0.0
        var i = 0
        while i < all.count {
            var j = i
            while j + 1 < all.count && all[j + 1].0 == all[i].0 { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for k in i ... j where all[k].1 { rankSum += averageRank }
            i = j + 1
        }
        let p = Double(members.count), n = Double(nonMembers.count)
        return (rankSum - p * (p + 1) / 2) / (p * n)
    }
}
