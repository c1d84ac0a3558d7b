import Foundation
import Testing
import Kernels
@testable import Approximate

/// Each loss term against values computed by hand on a toy batch (V = 3).
@Suite struct TokenLossesTests {
    // Row 0: p = (1/4, 1/2, 1/4); row 1: p = (1/3, 1/3, 1/3).
    static func toyLogits() -> Tensor { Tensor(shape: [2, 3], values: [0, Float(log(2.0)), 0, 0, 0, 0]) }

    @Test func negativeLogLikelihoodAndAscentGradient() {
        let d = Tensor(shape: [2, 3])
        let nll = TokenLosses.negativeLogLikelihood(logits: Self.toyLogits(), targets: [1, 0], weight: -1, dLogits: d)
        // ℓ = (−ln ½ − ln ⅓)/2
        #expect(abs(Double(nll) - (log(2.0) + log(3.0)) / 2) < 1e-6)
        // Ascent (w = −1): dz = −(p − onehot)/M.
        let expected: [Float] = [-0.125, 0.25, -0.125, 1.0 / 3, -1.0 / 6, -1.0 / 6]
        for (a, b) in zip(d.values, expected) { #expect(abs(a - b) < 1e-6) }
    }

    @Test func klDivergenceValueAndGradient() {
        let reference = Tensor(shape: [1, 3], values: [0, Float(log(2.0)), 0])   // p0 = (¼, ½, ¼)
        let logits = Tensor(shape: [1, 3], values: [0, 0, 0])                    // p = (⅓, ⅓, ⅓)
        let d = Tensor(shape: [1, 3])
        let kl = TokenLosses.klDivergence(reference: reference, logits: logits, rows: 1, weight: 2, dLogits: d)
        let expected = 0.25 * log(0.75) + 0.5 * log(1.5) + 0.25 * log(0.75)
        #expect(abs(Double(kl) - expected) < 1e-6)
        // dz = λ·(p − p0) = 2·(1/12, −1/6, 1/12)
        for (a, b) in zip(d.values, [Float(1.0 / 6), Float(-1.0 / 3), Float(1.0 / 6)]) { #expect(abs(a - b) < 1e-6) }
        // KL of a distribution with itself is zero.
        #expect(abs(TokenLosses.klDivergence(reference: logits, logits: logits, rows: 1, weight: 1, dLogits: nil)) < 1e-7)
    }

    @Test func adversarialLabelIsTheMostLikelyWrongToken() {
        let z = Tensor(shape: [2, 3], values: [3, 5, 1, 3, 5, 1])
        #expect(TokenLosses.adversarialLabels(referenceLogits: z, targets: [1, 0]) == [0, 1])
    }
}
