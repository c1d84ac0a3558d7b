import Kernels
import Testing

/// Packed sequences (rows back to back, no padding) give every real row the bits the padded,
/// masked layout gives it: attention forward and backward, and mean pooling.
@Suite struct PackedSequenceTests {
    /// Rows of the padded layout [B·T] that hold the packed rows, in order.
    static func paddedRows(_ lengths: [Int], tokens: Int) -> [Int] {
        lengths.enumerated().flatMap { b, length in (0..<length).map { b * tokens + $0 } }
    }

    @Test(arguments: [false, true])
    func attentionMatchesThePaddedLayoutBitForBit(causal: Bool) {
        var rng = TestRandom(seed: causal ? 71 : 72)
        let lengths = [5, 1, 9, 7, 16, 3], (heads, kvHeads, d) = (4, 2, 8)
        let t = lengths.max()!, b = lengths.count, n = lengths.reduce(0, +)
        let (qc, kc) = (heads * d, kvHeads * d), width = qc + 2 * kc
        let padded = Attention.Shape(batch: b, tokens: t, heads: heads, kvHeads: kvHeads, headSize: d, causal: causal,
                                     queryRowStride: width, keyValueRowStride: width)
        let packed = Attention.Shape(lengths: lengths, heads: heads, kvHeads: kvHeads, headSize: d, causal: causal,
                                     queryRowStride: width, keyValueRowStride: width)
        #expect(packed.rows == n && packed.tokens == t && packed.batch == b)
        #expect(packed.probabilityCount == lengths.reduce(0) { $0 + heads * $1 * $1 })
        let rows = Self.paddedRows(lengths, tokens: t)
        // Padded inputs: real rows random, padding rows random too (the mask must hide them);
        // dOut is zero on padding rows, as it is in training (nothing above reads them).
        let qkvPadded = rng.tensor([b * t, width]), dOutPadded = Tensor(shape: [b * t, qc])
        let qkvPacked = Tensor(shape: [n, width]), dOutPacked = rng.tensor([n, qc])
        var mask = [Int32](repeating: 0, count: b * t)
        for (i, r) in rows.enumerated() {
            mask[r] = 1
            for j in 0..<width { qkvPacked[i * width + j] = qkvPadded[r * width + j] }
            for j in 0..<qc { dOutPadded[r * qc + j] = dOutPacked[i * qc + j] }
        }
        let pPadded = Tensor(shape: [padded.probabilityCount]), outPadded = Tensor(shape: [b * t, qc])
        let pPacked = Tensor(shape: [packed.probabilityCount]), outPacked = Tensor(shape: [n, qc])
        let dPadded = Tensor(shape: [b * t, width]), dPacked = Tensor(shape: [n, width])
        Attention.forward(q: qkvPadded.data, k: qkvPadded.data + qc, v: qkvPadded.data + qc + kc, keyMask: mask,
                          shape: padded, probabilities: pPadded.data, into: outPadded.data, threads: 2)
        Attention.backward(dOut: dOutPadded.data, q: qkvPadded.data, k: qkvPadded.data + qc, v: qkvPadded.data + qc + kc,
                           probabilities: pPadded.data, shape: padded, dQ: dPadded.data, dK: dPadded.data + qc,
                           dV: dPadded.data + qc + kc, accumulate: false, threads: 2)
        Attention.forward(q: qkvPacked.data, k: qkvPacked.data + qc, v: qkvPacked.data + qc + kc, keyMask: nil,
                          shape: packed, probabilities: pPacked.data, into: outPacked.data, threads: 3)
        Attention.backward(dOut: dOutPacked.data, q: qkvPacked.data, k: qkvPacked.data + qc, v: qkvPacked.data + qc + kc,
                           probabilities: pPacked.data, shape: packed, dQ: dPacked.data, dK: dPacked.data + qc,
                           dV: dPacked.data + qc + kc, accumulate: false, threads: 3)
        var outDiffer = 0, gradientsDiffer = 0, probabilitiesDiffer = 0
        for (i, r) in rows.enumerated() {
            for j in 0..<qc where outPacked[i * qc + j].bitPattern != outPadded[r * qc + j].bitPattern { outDiffer += 1 }
            for j in 0..<width where dPacked[i * width + j].bitPattern != dPadded[r * width + j].bitPattern {
                gradientsDiffer += 1
            }
        }
        // Sequence s's probabilities [H, T_s, T_s] against the top-left corner of the padded [H, T, T].
        var offset = 0
        for (s, length) in lengths.enumerated() {
            for h in 0..<heads {
                for i in 0..<length {
                    for j in 0..<length {
                        let a = pPacked[offset + (h * length + i) * length + j]
                        let e = pPadded[((s * heads + h) * t + i) * t + j]
                        if a.bitPattern != e.bitPattern { probabilitiesDiffer += 1 }
                    }
                }
            }
            offset += heads * length * length
        }
        #expect(outDiffer == 0 && gradientsDiffer == 0 && probabilitiesDiffer == 0,
                "packed differs: \(outDiffer) outputs, \(gradientsDiffer) gradients, \(probabilitiesDiffer) probabilities")
        // The gradients are not all zero (a vacuous comparison would pass too).
        #expect(dPacked.values.contains { $0 != 0 })
    }

    @Test func meanPoolingMatchesTheMaskedLayoutBitForBit() {
        var rng = TestRandom(seed: 73)
        let lengths = [3, 1, 6, 2], c = 5, t = 6, b = lengths.count, n = lengths.reduce(0, +)
        let rows = Self.paddedRows(lengths, tokens: t)
        let xPadded = rng.tensor([b * t, c]), dY = rng.tensor([b, c])
        let xPacked = Tensor(shape: [n, c])
        var mask = [Int32](repeating: 0, count: b * t)
        for (i, r) in rows.enumerated() {
            mask[r] = 1
            for j in 0..<c { xPacked[i * c + j] = xPadded[r * c + j] }
        }
        let yPadded = Tensor(shape: [b, c]), yPacked = Tensor(shape: [b, c])
        MeanPooling.forward(xPadded.data, mask: mask, into: yPadded.data, batch: b, tokens: t, columns: c)
        MeanPooling.forward(xPacked.data, lengths: lengths, into: yPacked.data, columns: c)
        #expect(yPacked.values.map(\.bitPattern) == yPadded.values.map(\.bitPattern))
        let dPadded = Tensor(shape: [b * t, c]), dPacked = Tensor(shape: [n, c])
        MeanPooling.backward(dY: dY.data, mask: mask, dX: dPadded.data, batch: b, tokens: t, columns: c)
        MeanPooling.backward(dY: dY.data, lengths: lengths, dX: dPacked.data, columns: c)
        for (i, r) in rows.enumerated() {
            for j in 0..<c { #expect(dPacked[i * c + j].bitPattern == dPadded[r * c + j].bitPattern) }
        }
        // The mean itself: sequence 2 is the average of its six rows.
        for j in 0..<c {
            let sum = (4..<10).reduce(Float(0)) { $0 + xPacked[$1 * c + j] }
            #expect(abs(yPacked[2 * c + j] - sum / 6) <= 1e-6)
        }
    }
}
