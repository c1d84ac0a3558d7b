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

    /// Three rows in two chunks: rows 0–1 (targets 1, 0: p = ½ and ⅓) and row 2 (target 2: p = ¼).
    static func preferenceLogits() -> Tensor {
        Tensor(shape: [3, 3], values: [0, Float(log(2.0)), 0, 0, 0, 0, 0, Float(log(2.0)), 0])
    }
    static let preferenceTargets: [Int32] = [1, 0, 2]
    /// Summed NLL per chunk: S₀ = ln 2 + ln 3, S₁ = ln 4.
    static let summedNLL = [log(2.0) + log(3.0), log(4.0)]

    static func softplus(_ x: Double) -> Double { log(1 + exp(x)) }

    @Test func npoValueMatchesTheFormula() {
        let reference = [-2.0, -1.0], β = 0.5
        let value = TokenLosses.preference(.npo(beta: Float(β), reference: reference), logits: Self.preferenceLogits(),
                                           targets: Self.preferenceTargets, rowsPerChunk: [2, 1], weight: 1, dLogits: nil)
        // r_i = log π_θ(y_i) − log π_θ0(y_i) = −S_i − ref_i: r₀ = 2 − ln 6, r₁ = 1 − ln 4.
        let expected = (2 / β * Self.softplus(β * (2 - log(6.0))) + 2 / β * Self.softplus(β * (1 - log(4.0)))) / 2
        #expect(abs(Double(value) - expected) < 1e-6)
        // At θ = θ0 every chunk's log-ratio is 0 and the loss is (2/β)·ln 2.
        let atReference = TokenLosses.preference(.npo(beta: Float(β), reference: Self.summedNLL.map { -$0 }),
                                                 logits: Self.preferenceLogits(), targets: Self.preferenceTargets,
                                                 rowsPerChunk: [2, 1], weight: 1, dLogits: nil)
        #expect(abs(Double(atReference) - 2 / β * log(2.0)) < 1e-6)
    }

    @Test func simNPOValueMatchesTheFormula() {
        let β = 2.0, γ = 0.5
        let value = TokenLosses.preference(.simNPO(beta: Float(β), gamma: Float(γ)), logits: Self.preferenceLogits(),
                                           targets: Self.preferenceTargets, rowsPerChunk: [2, 1], weight: 1, dLogits: nil)
        // Length-normalised: s₀ = −(ln 2 + ln 3)/2, s₁ = −ln 4.
        let terms = [-(log(2.0) + log(3.0)) / 2, -log(4.0)].map { 2 / β * Self.softplus(β * $0 + γ) }
        #expect(abs(Double(value) - (terms[0] + terms[1]) / 2) < 1e-6)
    }

    /// The analytic gradient of both losses against central differences of their value.
    @Test func preferenceGradientsMatchFiniteDifferences() {
        for loss in [TokenLosses.Preference.npo(beta: 0.5, reference: [-2, -1]), .simNPO(beta: 2, gamma: 0.5)] {
            let d = Tensor(shape: [3, 3])
            _ = TokenLosses.preference(loss, logits: Self.preferenceLogits(), targets: Self.preferenceTargets,
                                       rowsPerChunk: [2, 1], weight: 0.7, dLogits: d)
            for j in 0 ..< 9 {
                func value(_ delta: Float) -> Double {
                    let z = Self.preferenceLogits()
                    z.data[j] += delta
                    return Double(TokenLosses.preference(loss, logits: z, targets: Self.preferenceTargets,
                                                         rowsPerChunk: [2, 1], weight: 1, dLogits: nil))
                }
                let numeric = 0.7 * (value(1e-2) - value(-1e-2)) / 2e-2
                #expect(abs(Double(d.values[j]) - numeric) < 5e-4, "\(loss) logit \(j): \(d.values[j]) vs \(numeric)")
            }
            #expect(d.values.contains { abs($0) > 1e-2 }, "\(loss): the gradient is not trivially zero")
        }
    }
}
