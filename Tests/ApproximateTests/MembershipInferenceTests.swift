import Testing
@testable import Approximate

@Suite struct MembershipInferenceTests {
    @Test func minKScore() {
        let lp: [Float] = [-1, -5, -2, -3]
        #expect(MembershipInference.minKScore(lp, percent: 50) == -4)      // lowest two: −5, −3
        #expect(MembershipInference.minKScore(lp, percent: 30) == -5)      // ⌊1.2⌋ = 1 token
        #expect(MembershipInference.minKScore(lp, percent: 100) == -2.75)  // LOSS attack: the mean
        #expect(MembershipInference.minKScore([], percent: 50) == nil)
    }

    @Test func aucWithTiesBalancedAccuracyAndTPR() throws {
        // Pairs: 0.9 beats both; each 0.5 ties 0.5 (½) and beats 0.1 → (2 + 1.5 + 1.5)/6 = 5/6.
        let s = try MembershipInference.separation(members: [0.9, 0.5, 0.5], nonMembers: [0.5, 0.1])
        #expect(abs(s.rocAUC - 5.0 / 6) < 1e-12 && abs(s.foldedAUC - 5.0 / 6) < 1e-12)
        // τ = 0.5: TPR 1, FPR ½ → ¾ (τ = 0.9 gives ⅔).
        #expect(abs(s.bestBalancedAccuracy - 0.75) < 1e-12)
        #expect(abs(s.tprAt5PercentFPR - 1.0 / 3) < 1e-12)
        // Swapped roles: raw AUC 1/6 shows over-unlearning; folded hides it.
        let r = try MembershipInference.separation(members: [0.5, 0.1], nonMembers: [0.9, 0.5, 0.5])
        #expect(abs(r.rocAUC - 1.0 / 6) < 1e-12 && abs(r.foldedAUC - 5.0 / 6) < 1e-12)
        // Identical scores: chance.
        let c = try MembershipInference.separation(members: [1, 1], nonMembers: [1])
        #expect(c.rocAUC == 0.5 && c.bestBalancedAccuracy == 0.5)
        #expect(throws: ApproximateError.needsBothClasses(members: 0, nonMembers: 1)) {
            try MembershipInference.separation(members: [], nonMembers: [1])
        }
    }

    @Test func costRatio() {
        let c = UnlearningCost(parameterCount: 100, trainedTokens: 1000, pretrainingTokens: 1e9)
        #expect(c.runFLOPs == 600_000 && c.pretrainingFLOPs == 6e11 && c.ratio == 1e6)
    }
}
