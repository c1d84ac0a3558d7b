import Kernels
import Testing

/// Same inputs → same bits, for 1 and 2 threads alike (the kernels' fixed partitions), and
/// repeated calls with the same thread count.
@Suite struct DeterminismTests {
    @Test func attentionForwardBackwardIndependentOfThreads() {
        var rng = TestRandom(seed: 21)
        let shape = Attention.Shape(batch: 3, tokens: 17, heads: 4, kvHeads: 2, headSize: 8, causal: true)
        let n = 51
        let q = rng.tensor([n, 32]), k = rng.tensor([n, 16]), v = rng.tensor([n, 16]), dO = rng.tensor([n, 32])
        var mask = [Int32](repeating: 1, count: n)
        mask[40] = 0; mask[50] = 0
        func run(_ threads: Int) -> [[UInt32]] {
            let out = Tensor(shape: [n, 32]), p = Tensor(shape: [shape.probabilityCount])
            let dQ = Tensor(shape: q.shape), dK = Tensor(shape: k.shape), dV = Tensor(shape: v.shape)
            Attention.forward(q: q.data, k: k.data, v: v.data, keyMask: mask, shape: shape,
                              probabilities: p.data, into: out.data, threads: threads)
            Attention.backward(dOut: dO.data, q: q.data, k: k.data, v: v.data, probabilities: p.data,
                               shape: shape, dQ: dQ.data, dK: dK.data, dV: dV.data, threads: threads)
            return [bits(out), bits(dQ), bits(dK), bits(dV)]
        }
        let one = run(1)
        #expect(run(1) == one)
        #expect(run(2) == one)
    }

    @Test func rowAndElementwiseKernelsIndependentOfThreads() {
        var rng = TestRandom(seed: 22)
        let (n, c) = (300, 40)
        let x = rng.tensor([n, c], scale: 3), dY = rng.tensor([n, c])
        let g = rng.tensor([c]), b = rng.tensor([c])
        func run(_ threads: Int) -> [[UInt32]] {
            let y = Tensor(shape: [n, c]), mean = Tensor(shape: [n]), rstd = Tensor(shape: [n])
            let dX = Tensor(shape: [n, c]), dG = Tensor(shape: [c]), dB = Tensor(shape: [c])
            LayerNorm.forward(x.data, gamma: g.data, beta: b.data, epsilon: 1e-12, into: y.data,
                              mean: mean.data, rstd: rstd.data, rows: n, columns: c, threads: threads)
            LayerNorm.backward(dY: dY.data, x: x.data, gamma: g.data, mean: mean.data, rstd: rstd.data,
                               dX: dX.data, dGamma: dG.data, dBeta: dB.data, rows: n, columns: c, threads: threads)
            let gelu = Tensor(shape: [n, c]), dGelu = Tensor(shape: [n, c])
            GELU.forward(x.data, into: gelu.data, count: n * c, threads: threads)
            GELU.backward(dY: dY.data, x: x.data, dX: dGelu.data, count: n * c, threads: threads)
            let sm = Tensor(shape: [n, c])
            Softmax.forward(x.data, into: sm.data, rows: n, columns: c, threads: threads)
            let rms = Tensor(shape: [n, c]), dRms = Tensor(shape: [n, c]), dRG = Tensor(shape: [c])
            RMSNorm.forward(x.data, gamma: g.data, epsilon: 1e-5, into: rms.data, rstd: rstd.data,
                            rows: n, columns: c, threads: threads)
            RMSNorm.backward(dY: dY.data, x: x.data, gamma: g.data, rstd: rstd.data, dX: dRms.data,
                             dGamma: dRG.data, rows: n, columns: c, threads: threads)
            let sw = Tensor(shape: [n, c])
            SwiGLU.forward(gate: x.data, up: dY.data, into: sw.data, count: n * c, threads: threads)
            return [bits(y), bits(dX), bits(dG), bits(dB), bits(gelu), bits(dGelu), bits(sm),
                    bits(rms), bits(dRms), bits(dRG), bits(sw)]
        }
        let one = run(1)
        #expect(run(1) == one)
        #expect(run(2) == one)
    }

    @Test func dropoutMaskDependsOnlyOnSeedAndIndex() {
        let d = Dropout(probability: 0.25, seed: 7)
        let factors = (0..<4000).map { d.factor(at: $0) }
        #expect(factors == (0..<4000).map { d.factor(at: $0) })
        let dropped = factors.filter { $0 == 0 }.count
        // 1000 expected; a binomial(4000, 0.25) lies within ±5σ (±137) essentially always.
        #expect(abs(dropped - 1000) < 137, "dropped \(dropped) of 4000 at p = 0.25")
        #expect(factors.allSatisfy { $0 == 0 || $0 == Float(1) / 0.75 })
        let other = Dropout(probability: 0.25, seed: 8)
        #expect((0..<4000).map { other.factor(at: $0) } != factors)
    }
}
