import CKernels
import Kernels
import Testing

/// Every forward kernel against Tools/make_kernel_fixtures.py (float64 numpy references).
@Suite struct ForwardReferenceTests {
    let fx: KernelFixtures
    init() throws { fx = try KernelFixtures.load() }

    @Test func matmulAllTransposes() throws {
        let a = try fx.tensor("matmul", "a"), b = try fx.tensor("matmul", "b")
        let aT = try fx.tensor("matmul", "aT"), bT = try fx.tensor("matmul", "bT")
        let expected = try fx.tensor("matmul", "c").values
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let c = Tensor(shape: [3, 5])
            MatMul.forward(ta ? aT.data : a.data, tb ? bT.data : b.data, into: c.data,
                           m: 3, n: 5, k: 4, transposeA: ta, transposeB: tb)
            expectClose(c.values, expected, tolerance: 1e-5, "transposeA \(ta) transposeB \(tb)")
        }
    }

    @Test func loraLinear() throws {
        let c = "lora_linear"
        let x = try fx.tensor(c, "x"), w = try fx.tensor(c, "weight"), b = try fx.tensor(c, "bias")
        let la = try fx.tensor(c, "loraA"), lb = try fx.tensor(c, "loraB")
        let y = Tensor(shape: [5, 4]), xa = Tensor(shape: [5, 2])
        LoRALinear.forward(x.data, rows: 5, shape: .init(inFeatures: 6, outFeatures: 4, rank: 2),
                           weight: w.data, bias: b.data, loraA: la.data, loraB: lb.data,
                           scale: Float(try fx.number(c, "scale")), xa: xa.data, into: y.data)
        expectClose(y.values, try fx.tensor(c, "y").values, tolerance: 1e-5)
    }

    @Test func layerNorm() throws {
        let x = try fx.tensor("layernorm", "x")
        let gamma = try fx.tensor("layernorm", "gamma"), beta = try fx.tensor("layernorm", "beta")
        let y = Tensor(shape: [4, 10]), mean = Tensor(shape: [4]), rstd = Tensor(shape: [4])
        LayerNorm.forward(x.data, gamma: gamma.data, beta: beta.data,
                          epsilon: Float(try fx.number("layernorm", "eps")), into: y.data,
                          mean: mean.data, rstd: rstd.data, rows: 4, columns: 10, threads: 1)
        expectClose(y.values, try fx.tensor("layernorm", "y").values, tolerance: 1e-5)
    }

    @Test func rmsNorm() throws {
        let x = try fx.tensor("rmsnorm", "x"), gamma = try fx.tensor("rmsnorm", "gamma")
        let y = Tensor(shape: [4, 10]), rstd = Tensor(shape: [4])
        RMSNorm.forward(x.data, gamma: gamma.data,
                        epsilon: Float(try fx.number("rmsnorm", "eps")), into: y.data, rstd: rstd.data,
                        rows: 4, columns: 10, threads: 1)
        expectClose(y.values, try fx.tensor("rmsnorm", "y").values, tolerance: 1e-5)
    }

    @Test func geluSiluSwiglu() throws {
        let x = try fx.tensor("gelu", "x"), y = Tensor(shape: [37])
        GELU.forward(x.data, into: y.data, count: 37, threads: 1)
        expectClose(y.values, try fx.tensor("gelu", "y").values, tolerance: 2e-6)
        SiLU.forward(x.data, into: y.data, count: 37, threads: 1)
        expectClose(y.values, try fx.tensor("silu", "y").values, tolerance: 2e-6)
        let gate = try fx.tensor("swiglu", "gate"), up = try fx.tensor("swiglu", "up")
        SwiGLU.forward(gate: gate.data, up: up.data,
                       into: y.data, count: 37, threads: 1)
        expectClose(y.values, try fx.tensor("swiglu", "y").values, tolerance: 5e-6)
    }

    @Test func softmax() throws {
        let x = try fx.tensor("softmax", "x"), y = Tensor(shape: [3, 13])
        Softmax.forward(x.data, into: y.data, rows: 3, columns: 13, threads: 1)
        expectClose(y.values, try fx.tensor("softmax", "y").values, tolerance: 1e-6)
    }

    @Test(arguments: [false, true]) func attentionMaskedGrouped(causal: Bool) throws {
        let c = "attention"
        let d = try fx.numbers(c, "dims").map { Int($0) }
        let shape = Attention.Shape(batch: d[0], tokens: d[1], heads: d[2], kvHeads: d[3],
                                    headSize: d[4], causal: causal)
        let mask = try fx.ints(c, "mask")
        let out = Tensor(shape: [d[0] * d[1], d[2] * d[4]]), p = Tensor(shape: [shape.probabilityCount])
        let q = try fx.tensor(c, "q"), k = try fx.tensor(c, "k"), v = try fx.tensor(c, "v")
        Attention.forward(q: q.data, k: k.data, v: v.data, keyMask: mask, shape: shape,
                          probabilities: p.data, into: out.data, threads: 1)
        let expected = try fx.tensor(c, causal ? "outCausal" : "out").values
        expectClose(out.values, expected, tolerance: 1e-5)
    }

    @Test func rope() throws {
        let d = try fx.numbers("rope", "dims").map { Int($0) }
        let x = try fx.tensor("rope", "x"), y = Tensor(shape: x.shape)
        let table = RoPE.Table(headSize: d[3], base: try fx.number("rope", "base"), maxPositions: 16)
        RoPE.forward(x.data, into: y.data, table: table, positions: nil, rows: d[0] * d[1],
                     tokens: d[1], heads: d[2], threads: 1)
        expectClose(y.values, try fx.tensor("rope", "y").values, tolerance: 1e-5)
    }

    @Test func meanPooling() throws {
        let x = try fx.tensor("mean_pooling", "x"), y = Tensor(shape: [2, 4])
        let mask = try fx.ints("mean_pooling", "mask")
        MeanPooling.forward(x.data, mask: mask, into: y.data, batch: 2, tokens: 3, columns: 4)
        expectClose(y.values, try fx.tensor("mean_pooling", "y").values, tolerance: 1e-6)
    }

    @Test func crossEntropyWithIgnoreIndex() throws {
        let z = try fx.tensor("cross_entropy", "logits"), lse = Tensor(shape: [5])
        let targets = try fx.ints("cross_entropy", "targets")
        let (loss, count) = CrossEntropy.forward(logits: z.data, targets: targets, logSumExp: lse.data,
                                                 rows: 5, classes: 7, threads: 1)
        #expect(count == 4)
        #expect(abs(Double(loss) - (try fx.number("cross_entropy", "loss"))) < 1e-5)
    }

    @Test func adamWThreeClippedSteps() throws {
        let c = "adamw"
        let p1 = try fx.tensor(c, "p1"), p2 = try fx.tensor(c, "p2")
        let g1 = Tensor(shape: [6]), g2 = Tensor(shape: [3])
        let m1 = Tensor(shape: [6]), v1 = Tensor(shape: [6]), m2 = Tensor(shape: [3]), v2 = Tensor(shape: [3])
        let k = try fx.numbers(c, "config").map { Float($0) }
        let config = AdamW.Configuration(learningRate: k[0], beta1: k[1], beta2: k[2], epsilon: k[3],
                                         weightDecay: k[4], maxGradientNorm: k[5])
        let grads = try #require(fx.cases[c]?["grads"] as? [[[String: Any]]])
        let slots = [AdamW.Slot(value: p1.data, gradient: g1.data, firstMoment: m1.data, secondMoment: v1.data, count: 6),
                     AdamW.Slot(value: p2.data, gradient: g2.data, firstMoment: m2.data, secondMoment: v2.data, count: 3)]
        for (i, pair) in grads.enumerated() {
            g1.copy(from: try KernelFixtures.tensor(pair[0]))
            g2.copy(from: try KernelFixtures.tensor(pair[1]))
            AdamW.step(slots, step: i + 1, configuration: config)
        }
        expectClose(p1.values, try fx.tensor(c, "p1After").values, tolerance: 2e-6)
        expectClose(p2.values, try fx.tensor(c, "p2After").values, tolerance: 2e-6)
    }

    @Test func vectorMathAccuracy() {
        for x in stride(from: Float(-20), through: 20, by: 0.37) {
            let e = VectorMath.exp(x), ref = Float(Foundation.exp(Double(x)))
            #expect(abs(e - ref) <= 4e-7 * ref, "exp(\(x)) = \(e), libm \(ref)")
            #expect(abs(VectorMath.erf(x / 4) - Float(Foundation.erf(Double(x / 4)))) < 3e-7)
        }
    }

    /// Attention's softmax (C, AVX2 intrinsics) computes e^x with the same operations as the
    /// Swift kernels, so the two agree to the bit, clamped ends and subnormal results included.
    @Test func softmaxExpMatchesSwiftExp() {
        let xs = stride(from: Float(-100), through: 100, by: 0.173).map { $0 } + [-87.3, 88.3, 0, -0, 1e-30]
        var ys = [Float](repeating: .nan, count: xs.count)
        lethe_exp(xs, &ys, xs.count)
        for (x, y) in zip(xs, ys) { #expect(y.bitPattern == VectorMath.exp(x).bitPattern, "exp(\(x))") }
        // A NaN stays NaN in both (no clamp turns it into e^-87.3).
        var nan: [Float] = [.nan, 1, .nan, -.infinity, 2, 3, 4, .nan, 5]
        var out = [Float](repeating: 0, count: nan.count)
        lethe_exp(&nan, &out, nan.count)
        for (x, y) in zip(nan, out) where x.isNaN { #expect(y.isNaN && VectorMath.exp(x).isNaN, "\(y)") }
    }

    /// A NaN score makes its softmax row NaN (a row of finite scores beside it is untouched).
    @Test func aNaNScoreMakesItsSoftmaxRowNaN() {
        var scores: [Float] = [1, 2, .nan, 0.5, 0.25, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13] + [0, 1, 2, 3, 4, 5, 6, 7, 8]
        lethe_softmax_rows(&scores, 3, 9, nil, 0)
        let nanRow = scores[0..<9].allSatisfy { $0.isNaN }, finite = scores[9..<27].allSatisfy { $0.isFinite }
        #expect(nanRow, "\(scores[0..<9])")
        #expect(abs(scores[9..<18].reduce(0, +) - 1) < 1e-5 && finite)
    }
}

import Foundation

/// Gather and bias add against the fixture (trivial math, but the indexing is what is checked).
@Test func embeddingAndBiasAddForward() throws {
    let fx = try KernelFixtures.load()
    let table = try fx.tensor("embedding", "table"), ids = try fx.ints("embedding", "ids")
    let y = Tensor(shape: [4, 4])
    Embedding.forward(ids: ids, table: table.data, into: y.data, rows: 4, vocabulary: 6, columns: 4)
    expectClose(y.values, try fx.tensor("embedding", "y").values, tolerance: 0)
    let x = try fx.tensor("bias_add", "x"), bias = try fx.tensor("bias_add", "bias"), z = Tensor(shape: [3, 4])
    BiasAdd.forward(x.data, bias: bias.data, into: z.data, rows: 3, columns: 4)
    expectClose(z.values, try fx.tensor("bias_add", "y").values, tolerance: 1e-6)
}
