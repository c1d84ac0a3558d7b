import Kernels
import Testing

/// Every backward against central finite differences of L = Σ w·y (float32 forward, Double
/// loss; step 1e-2; |a − n| ≤ 2e-3 + 2e-2·max(|a|, |n|)) on small random shapes.
@Suite struct GradientTests {
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matmul(transposeA: Bool, transposeB: Bool) {
        var rng = TestRandom(seed: 1)
        let (m, n, k) = (3, 4, 5)
        let a = rng.tensor(transposeA ? [k, m] : [m, k]), b = rng.tensor(transposeB ? [n, k] : [k, n])
        let w = rng.tensor([m, n]), c = Tensor(shape: [m, n])
        func loss() -> Double {
            MatMul.forward(a.data, b.data, into: c.data, m: m, n: n, k: k,
                           transposeA: transposeA, transposeB: transposeB)
            return weightedSum(c, w)
        }
        let dA = Tensor(shape: a.shape), dB = Tensor(shape: b.shape)
        MatMul.backward(dC: w.data, a.data, b.data, dA: dA.data, dB: dB.data, m: m, n: n, k: k,
                        transposeA: transposeA, transposeB: transposeB)
        expectGradient("dA", parameter: a, analytic: dA, loss: loss)
        expectGradient("dB", parameter: b, analytic: dB, loss: loss)
    }

    @Test func linearWithBias() {
        var rng = TestRandom(seed: 2)
        let x = rng.tensor([4, 5]), wt = rng.tensor([3, 5]), b = rng.tensor([3])
        let w = rng.tensor([4, 3]), y = Tensor(shape: [4, 3])
        func loss() -> Double {
            Linear.forward(x.data, weight: wt.data, bias: b.data, into: y.data, rows: 4, inFeatures: 5, outFeatures: 3)
            return weightedSum(y, w)
        }
        let dX = Tensor(shape: x.shape), dW = Tensor(shape: wt.shape), dB = Tensor(shape: b.shape)
        Linear.backward(dY: w.data, x: x.data, weight: wt.data, dX: dX.data, dWeight: dW.data,
                        dBias: dB.data, rows: 4, inFeatures: 5, outFeatures: 3)
        expectGradient("dX", parameter: x, analytic: dX, loss: loss)
        expectGradient("dW", parameter: wt, analytic: dW, loss: loss)
        expectGradient("db", parameter: b, analytic: dB, loss: loss)
    }

    /// Ranks 8 and 16 are those of the decoder's and the encoder's default adapters.
    @Test(arguments: [0.0 as Float, 0.3], [2, 8, 16])
    func loraLinear(dropoutProbability: Float, rank r: Int) {
        var rng = TestRandom(seed: 3)
        let shape = LoRALinear.Shape(inFeatures: 6, outFeatures: 5, rank: r)
        let n = 14
        let x = rng.tensor([n, 6]), wt = rng.tensor([5, 6]), b = rng.tensor([5])
        let la = rng.tensor([r, 6]), lb = rng.tensor([5, r]), w = rng.tensor([n, 5])
        let y = Tensor(shape: [n, 5]), xa = Tensor(shape: [n, r]), xd = Tensor(shape: [n, 6])
        let dropout = dropoutProbability > 0 ? Dropout(probability: dropoutProbability, seed: 99) : nil
        func loss() -> Double {
            LoRALinear.forward(x.data, rows: n, shape: shape, weight: wt.data, bias: b.data,
                               loraA: la.data, loraB: lb.data, scale: 1.5, dropout: dropout,
                               xDropped: xd.data, xa: xa.data, into: y.data)
            return weightedSum(y, w)
        }
        _ = loss()
        let dX = Tensor(shape: x.shape), dA = Tensor(shape: la.shape), dB = Tensor(shape: lb.shape)
        let scratch = Tensor(shape: [n, r])
        LoRALinear.backward(dY: w.data, x: x.data, rows: n, shape: shape, weight: wt.data,
                            loraA: la.data, loraB: lb.data, scale: 1.5, dropout: dropout,
                            xDropped: xd.data, xa: xa.data, dLoraA: dA.data, dLoraB: dB.data,
                            dX: dX.data, scratch: scratch.data)
        expectGradient("dX", parameter: x, analytic: dX, loss: loss)
        expectGradient("dA", parameter: la, analytic: dA, loss: loss)
        expectGradient("dB", parameter: lb, analytic: dB, loss: loss)
    }

    @Test func biasAdd() {
        var rng = TestRandom(seed: 4)
        let x = rng.tensor([70, 3]), b = rng.tensor([3]), w = rng.tensor([70, 3]), y = Tensor(shape: [70, 3])
        func loss() -> Double {
            BiasAdd.forward(x.data, bias: b.data, into: y.data, rows: 70, columns: 3)
            return weightedSum(y, w)
        }
        let dB = Tensor(shape: [3])
        BiasAdd.backward(dY: w.data, dBias: dB.data, rows: 70, columns: 3)
        expectGradient("db", parameter: b, analytic: dB, loss: loss)
    }

    @Test func layerNorm() {
        var rng = TestRandom(seed: 5)
        let (n, c) = (5, 11)
        let x = rng.tensor([n, c], scale: 2), g = rng.tensor([c]), be = rng.tensor([c]), w = rng.tensor([n, c])
        let y = Tensor(shape: [n, c]), mean = Tensor(shape: [n]), rstd = Tensor(shape: [n])
        func loss() -> Double {
            LayerNorm.forward(x.data, gamma: g.data, beta: be.data, epsilon: 1e-5, into: y.data,
                              mean: mean.data, rstd: rstd.data, rows: n, columns: c, threads: 1)
            return weightedSum(y, w)
        }
        _ = loss()
        let dX = Tensor(shape: x.shape), dG = Tensor(shape: [c]), dBe = Tensor(shape: [c])
        LayerNorm.backward(dY: w.data, x: x.data, gamma: g.data, mean: mean.data, rstd: rstd.data,
                           dX: dX.data, dGamma: dG.data, dBeta: dBe.data, rows: n, columns: c, threads: 1)
        expectGradient("dX", parameter: x, analytic: dX, step: 3e-3, loss: loss)
        expectGradient("dGamma", parameter: g, analytic: dG, loss: loss)
        expectGradient("dBeta", parameter: be, analytic: dBe, loss: loss)
    }

    @Test func rmsNorm() {
        var rng = TestRandom(seed: 6)
        let (n, c) = (5, 11)
        let x = rng.tensor([n, c], scale: 2), g = rng.tensor([c]), w = rng.tensor([n, c])
        let y = Tensor(shape: [n, c]), rstd = Tensor(shape: [n])
        func loss() -> Double {
            RMSNorm.forward(x.data, gamma: g.data, epsilon: 1e-5, into: y.data, rstd: rstd.data,
                            rows: n, columns: c, threads: 1)
            return weightedSum(y, w)
        }
        _ = loss()
        let dX = Tensor(shape: x.shape), dG = Tensor(shape: [c])
        RMSNorm.backward(dY: w.data, x: x.data, gamma: g.data, rstd: rstd.data, dX: dX.data,
                         dGamma: dG.data, rows: n, columns: c, threads: 1)
        expectGradient("dX", parameter: x, analytic: dX, step: 3e-3, loss: loss)
        expectGradient("dGamma", parameter: g, analytic: dG, loss: loss)
    }

    @Test func geluSiluSwiglu() {
        var rng = TestRandom(seed: 7)
        let count = 29
        let x = rng.tensor([count], scale: 2), u = rng.tensor([count]), w = rng.tensor([count])
        let y = Tensor(shape: [count])
        let dX = Tensor(shape: [count])
        GELU.backward(dY: w.data, x: x.data, dX: dX.data, count: count, threads: 1)
        expectGradient("GELU", parameter: x, analytic: dX) {
            GELU.forward(x.data, into: y.data, count: count, threads: 1); return weightedSum(y, w)
        }
        dX.zero()
        SiLU.backward(dY: w.data, x: x.data, dX: dX.data, count: count, threads: 1)
        expectGradient("SiLU", parameter: x, analytic: dX) {
            SiLU.forward(x.data, into: y.data, count: count, threads: 1); return weightedSum(y, w)
        }
        let dG = Tensor(shape: [count]), dU = Tensor(shape: [count])
        SwiGLU.backward(dY: w.data, gate: x.data, up: u.data, dGate: dG.data, dUp: dU.data, count: count, threads: 1)
        func swiglu() -> Double {
            SwiGLU.forward(gate: x.data, up: u.data, into: y.data, count: count, threads: 1)
            return weightedSum(y, w)
        }
        expectGradient("SwiGLU gate", parameter: x, analytic: dG, loss: swiglu)
        expectGradient("SwiGLU up", parameter: u, analytic: dU, loss: swiglu)
    }

    @Test func softmax() {
        var rng = TestRandom(seed: 8)
        let x = rng.tensor([3, 10], scale: 2), w = rng.tensor([3, 10]), y = Tensor(shape: [3, 10])
        func loss() -> Double {
            Softmax.forward(x.data, into: y.data, rows: 3, columns: 10, threads: 1); return weightedSum(y, w)
        }
        _ = loss()
        let dX = Tensor(shape: x.shape)
        Softmax.backward(dY: w.data, y: y.data, dX: dX.data, rows: 3, columns: 10, threads: 1)
        expectGradient("dX", parameter: x, analytic: dX, step: 3e-3, loss: loss)
    }

    @Test(arguments: [false, true])
    func attentionGroupedMasked(causal: Bool) {
        var rng = TestRandom(seed: causal ? 9 : 10)
        let shape = Attention.Shape(batch: 2, tokens: 5, heads: 4, kvHeads: 2, headSize: 3, causal: causal)
        let n = 10
        let q = rng.tensor([n, 12]), k = rng.tensor([n, 6]), v = rng.tensor([n, 6]), w = rng.tensor([n, 12])
        let mask: [Int32] = [1, 1, 1, 0, 1, 1, 1, 1, 0, 0]
        let out = Tensor(shape: [n, 12]), p = Tensor(shape: [shape.probabilityCount])
        func loss() -> Double {
            Attention.forward(q: q.data, k: k.data, v: v.data, keyMask: mask, shape: shape,
                              probabilities: p.data, into: out.data, threads: 1)
            return weightedSum(out, w)
        }
        _ = loss()
        let dQ = Tensor(shape: q.shape), dK = Tensor(shape: k.shape), dV = Tensor(shape: v.shape)
        Attention.backward(dOut: w.data, q: q.data, k: k.data, v: v.data, probabilities: p.data,
                           shape: shape, dQ: dQ.data, dK: dK.data, dV: dV.data, threads: 1)
        expectGradient("dQ", parameter: q, analytic: dQ, step: 3e-3, loss: loss)
        expectGradient("dK", parameter: k, analytic: dK, step: 3e-3, loss: loss)
        expectGradient("dV", parameter: v, analytic: dV, step: 3e-3, loss: loss)
    }

    @Test func rope() {
        var rng = TestRandom(seed: 11)
        let table = RoPE.Table(headSize: 4, base: 100, maxPositions: 8)
        let x = rng.tensor([6, 8]), w = rng.tensor([6, 8]), y = Tensor(shape: [6, 8])
        let dX = Tensor(shape: x.shape)
        RoPE.backward(dY: w.data, dX: dX.data, table: table, positions: nil, rows: 6, tokens: 3, heads: 2, threads: 1)
        expectGradient("dX", parameter: x, analytic: dX) {
            RoPE.forward(x.data, into: y.data, table: table, positions: nil, rows: 6, tokens: 3, heads: 2, threads: 1)
            return weightedSum(y, w)
        }
    }

    @Test func embeddingScatter() {
        var rng = TestRandom(seed: 12)
        let table = rng.tensor([5, 3]), w = rng.tensor([4, 3]), y = Tensor(shape: [4, 3])
        let ids: [Int32] = [2, 0, 2, 4]
        let dT = Tensor(shape: table.shape)
        Embedding.backward(dY: w.data, ids: ids, dTable: dT.data, rows: 4, vocabulary: 5, columns: 3)
        expectGradient("dTable", parameter: table, analytic: dT) {
            Embedding.forward(ids: ids, table: table.data, into: y.data, rows: 4, vocabulary: 5, columns: 3)
            return weightedSum(y, w)
        }
    }

    @Test func meanPooling() {
        var rng = TestRandom(seed: 13)
        let x = rng.tensor([8, 3]), w = rng.tensor([2, 3]), y = Tensor(shape: [2, 3])
        let mask: [Int32] = [1, 1, 1, 0, 0, 1, 0, 0]
        let dX = Tensor(shape: x.shape)
        MeanPooling.backward(dY: w.data, mask: mask, dX: dX.data, batch: 2, tokens: 4, columns: 3)
        expectGradient("dX", parameter: x, analytic: dX) {
            MeanPooling.forward(x.data, mask: mask, into: y.data, batch: 2, tokens: 4, columns: 3)
            return weightedSum(y, w)
        }
    }

    @Test func crossEntropy() {
        var rng = TestRandom(seed: 14)
        let z = rng.tensor([4, 9], scale: 2), lse = Tensor(shape: [4])
        let targets: [Int32] = [3, -100, 8, 0]
        func loss() -> Double {
            Double(CrossEntropy.forward(logits: z.data, targets: targets, logSumExp: lse.data,
                                        rows: 4, classes: 9, threads: 1).loss) * 2.5
        }
        _ = loss()
        let dZ = Tensor(shape: z.shape)
        CrossEntropy.backward(dLoss: 2.5, logits: z.data, targets: targets, logSumExp: lse.data,
                              dLogits: dZ.data, rows: 4, classes: 9, threads: 1)
        for j in 0..<9 { #expect(dZ[9 + j] == 0, "ignored row gets no gradient") }
        expectGradient("dLogits", parameter: z, analytic: dZ, loss: loss)
    }
}

/// The GELU form that saves its derivative agrees with the plain one and with finite differences.
@Test func geluWithSavedDerivative() {
    var rng = TestRandom(seed: 15)
    let count = 45
    let x = rng.tensor([count], scale: 3), w = rng.tensor([count])
    let y = Tensor(shape: [count]), y2 = Tensor(shape: [count]), d = Tensor(shape: [count])
    GELU.forward(x.data, into: y.data, count: count, threads: 1)
    GELU.forward(x.data, into: y2.data, derivative: d.data, count: count, threads: 2)
    #expect(bits(y) == bits(y2))
    let dX = Tensor(shape: [count]), dX2 = Tensor(shape: [count])
    GELU.backward(dY: w.data, derivative: d.data, dX: dX.data, count: count, threads: 1)
    GELU.backward(dY: w.data, x: x.data, dX: dX2.data, count: count, threads: 1)
    expectClose(dX.values, dX2.values, tolerance: 1e-6)
    expectGradient("GELU saved derivative", parameter: x, analytic: dX) {
        GELU.forward(x.data, into: y.data, count: count, threads: 1); return weightedSum(y, w)
    }
}
