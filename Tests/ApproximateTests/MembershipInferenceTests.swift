import Testing
import Models
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

    @Test func attackScoresByHand() {
        let s = TokenScores(logProbabilities: [-1, -3, -2], correct: [true, false, false],
                            expectedLogProbabilities: [-2, -2, -2], logProbabilityDeviations: [1, 2, 0])
        #expect(MembershipInference.lossScore(s) == -2)
        #expect(MembershipInference.zlibScore(s, compressedBytes: 4) == -0.5)
        // Standardised: (−1 + 2)/1 = 1, (−3 + 2)/2 = −½, σ = 0 → 0; lowest ⌊3·0.34⌋ = 1 and ⌊3·0.67⌋ = 2.
        #expect(MembershipInference.minKPlusPlusScore(s, percent: 34) == -0.5)
        #expect(MembershipInference.minKPlusPlusScore(s, percent: 67) == -0.25)
        let reference = TokenScores(logProbabilities: [-3, -3], correct: [false, false])
        #expect(MembershipInference.referenceScore(s, reference: reference) == 1)
        // Without the distribution's statistics there is no Min-K%++ score.
        #expect(MembershipInference.minKPlusPlusScore(reference, percent: 50) == nil)
        #expect(MembershipInference.lossScore(TokenScores(logProbabilities: [], correct: [])) == nil)
    }

    @Test func zlibSizesMatchPythonsZlib() {
        // len(zlib.compress(x, 9)) in Python 3 for the same bytes.
        #expect(MembershipInference.zlibSize("hello") == 13)
        #expect(MembershipInference.zlibSize(String(repeating: "a", count: 1000)) == 17)
        #expect(MembershipInference.zlibSize("Shares in the bank fell after profits missed forecasts") == 57)
    }

    @Test func costRatio() {
        let c = UnlearningCost(parameterCount: 100, trainedTokens: 1000, pretrainingTokens: 1e9)
        #expect(c.runFLOPs == 600_000 && c.pretrainingFLOPs == 6e11 && c.ratio == 1e6)
    }
}
