import Kernels
import Testing
@testable import Models

@Suite struct ClassificationHeadTests {
    /// dp of the normalised head against central differences of L = Σ logits·r.
    @Test func normalisedInputGradientMatchesFiniteDifferences() {
        let head = ClassificationHead(classCount: 3, inputSize: 5, normalizesInput: true, seed: 3)
        let p: [Float] = [0.3, -1.2, 0.8, 2.0, -0.4, 1.1, 0.2, -0.7, 0.5, 0.9]
        let r: [Float] = [0.5, -1, 2, 1, 0.25, -0.5]
        func loss(_ values: [Float]) -> Double {
            let logits = head.forward(Tensor(shape: [2, 5], values: values), batch: 2).logits.values
            return zip(logits, r).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        let (_, saved) = head.forward(Tensor(shape: [2, 5], values: p), batch: 2)
        let dP = head.backward(dLogits: Tensor(shape: [2, 3], values: r), saved: saved, batch: 2, trainable: true).values
        for i in 0..<p.count {
            var plus = p, minus = p
            plus[i] += 1e-2; minus[i] -= 1e-2
            let numeric = (loss(plus) - loss(minus)) / 2e-2
            #expect(abs(Double(dP[i]) - numeric) < 2e-3, "dp[\(i)] = \(dP[i]), numeric \(numeric)")
        }
        #expect(head.gradBias.values == [r[0] + r[3], r[1] + r[4], r[2] + r[5]])
    }
}
