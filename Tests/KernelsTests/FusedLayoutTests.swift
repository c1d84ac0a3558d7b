import Kernels
import Testing

/// Strided (fused [N, 3C]) layouts give the same results as contiguous buffers.
@Suite struct FusedLayoutTests {
    @Test func attentionOnAFusedQKVBuffer() {
        var rng = TestRandom(seed: 31)
        let (n, c) = (12, 8)
        let shape = Attention.Shape(batch: 2, tokens: 6, heads: 2, headSize: 4)
        let fusedShape = Attention.Shape(batch: 2, tokens: 6, heads: 2, headSize: 4,
                                         queryRowStride: 3 * c, keyValueRowStride: 3 * c)
        let qkv = rng.tensor([n, 3 * c]), dOut = rng.tensor([n, c])
        let q = Tensor(shape: [n, c]), k = Tensor(shape: [n, c]), v = Tensor(shape: [n, c])
        for r in 0..<n {
            for j in 0..<c { q[r * c + j] = qkv[r * 3 * c + j]; k[r * c + j] = qkv[r * 3 * c + c + j]; v[r * c + j] = qkv[r * 3 * c + 2 * c + j] }
        }
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
        let p = Tensor(shape: [shape.probabilityCount]), out = Tensor(shape: [n, c])
        let dQ = Tensor(shape: [n, c]), dK = Tensor(shape: [n, c]), dV = Tensor(shape: [n, c])
        Attention.forward(q: q.data, k: k.data, v: v.data, keyMask: mask, shape: shape, probabilities: p.data,
                          into: out.data, threads: 1)
        Attention.backward(dOut: dOut.data, q: q.data, k: k.data, v: v.data, probabilities: p.data, shape: shape,
                           dQ: dQ.data, dK: dK.data, dV: dV.data, threads: 1)
        let p2 = Tensor(shape: [shape.probabilityCount]), out2 = Tensor(shape: [n, c]), dQKV = Tensor(shape: [n, 3 * c])
        Attention.forward(q: qkv.data, k: qkv.data + c, v: qkv.data + 2 * c, keyMask: mask, shape: fusedShape,
                          probabilities: p2.data, into: out2.data, threads: 2)
        Attention.backward(dOut: dOut.data, q: qkv.data, k: qkv.data + c, v: qkv.data + 2 * c, probabilities: p2.data,
                           shape: fusedShape, dQ: dQKV.data, dK: dQKV.data + c, dV: dQKV.data + 2 * c, threads: 2)
        expectClose(out2.values, out.values, tolerance: 1e-6, "out")
        var fused: [Float] = []
        for r in 0..<n { for j in 0..<c { fused.append(dQ[r * c + j]) } }
        for r in 0..<n { for j in 0..<c { fused.append(dK[r * c + j]) } }
        var split: [Float] = []
        for r in 0..<n { for j in 0..<c { split.append(dQKV[r * 3 * c + j]) } }
        for r in 0..<n { for j in 0..<c { split.append(dQKV[r * 3 * c + c + j]) } }
        expectClose(split, fused, tolerance: 1e-6, "dQ, dK")
        for r in 0..<n { for j in 0..<c { #expect(abs(dQKV[r * 3 * c + 2 * c + j] - dV[r * c + j]) <= 1e-6) } }
    }

    @Test func loraAdapterIntoAColumnBlock() {
        var rng = TestRandom(seed: 32)
        let shape = LoRALinear.Shape(inFeatures: 5, outFeatures: 4, rank: 2)
        let x = rng.tensor([3, 5]), a = rng.tensor([2, 5]), b = rng.tensor([4, 2]), dY = rng.tensor([3, 12])
        let xa = Tensor(shape: [3, 2]), wide = Tensor(shape: [3, 12]), narrow = Tensor(shape: [3, 4])
        LoRALinear.addAdapter(x.data, rows: 3, shape: shape, loraA: a.data, loraB: b.data, scale: 2,
                              xa: xa.data, into: wide.data + 4, outputRowStride: 12)
        LoRALinear.addAdapter(x.data, rows: 3, shape: shape, loraA: a.data, loraB: b.data, scale: 2,
                              xa: xa.data, into: narrow.data)
        for r in 0..<3 {
            for j in 0..<12 where j < 4 || j >= 8 { #expect(wide[r * 12 + j] == 0) }
            for j in 0..<4 { #expect(abs(wide[r * 12 + 4 + j] - narrow[r * 4 + j]) <= 1e-6) }
        }
        // Backward through the column block equals backward of the contiguous slice.
        let dYSlice = Tensor(shape: [3, 4])
        for r in 0..<3 { for j in 0..<4 { dYSlice[r * 4 + j] = dY[r * 12 + 4 + j] } }
        let dA1 = Tensor(shape: a.shape), dB1 = Tensor(shape: b.shape), dX1 = Tensor(shape: x.shape)
        let dA2 = Tensor(shape: a.shape), dB2 = Tensor(shape: b.shape), dX2 = Tensor(shape: x.shape)
        let scratch = Tensor(shape: [3, 2])
        LoRALinear.adapterBackward(dY: dY.data + 4, x: x.data, rows: 3, shape: shape, loraA: a.data, loraB: b.data,
                                   scale: 2, xa: xa.data, dLoraA: dA1.data, dLoraB: dB1.data, dX: dX1.data,
                                   scratch: scratch.data, dYRowStride: 12)
        LoRALinear.adapterBackward(dY: dYSlice.data, x: x.data, rows: 3, shape: shape, loraA: a.data, loraB: b.data,
                                   scale: 2, xa: xa.data, dLoraA: dA2.data, dLoraB: dB2.data, dX: dX2.data,
                                   scratch: scratch.data)
        expectClose(dA1.values, dA2.values, tolerance: 1e-6, "dA")
        expectClose(dB1.values, dB2.values, tolerance: 1e-6, "dB")
        expectClose(dX1.values, dX2.values, tolerance: 1e-6, "dX")
    }
}
