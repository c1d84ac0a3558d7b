/// Min-K% Prob membership inference (Shi et al. 2024) and the threshold-free metrics of a
/// member/non-member score separation.
///
/// Score of a text = mean of its lowest K% token log-probabilities (at least one token);
/// K = 100 is the LOSS attack. Higher scores mean "more likely seen in training".
public enum MembershipInference {
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
