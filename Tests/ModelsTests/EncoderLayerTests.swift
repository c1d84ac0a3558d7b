import Kernels
import Models
import Testing

/// The LoRA BERT layer: adapter gradients and dInput against central finite differences
/// (float32 forward, Double loss L = Σ w·y), identity of fresh adapters, and stopping.
@Suite struct EncoderLayerTests {
    static let config = EncoderLayerConfiguration(hiddenSize: 8, headCount: 2, intermediateSize: 12,
                                                  layerNormEpsilon: 1e-12)

    static func normal(_ state: inout UInt64) -> Float {
        func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        let u1 = max(next(), 1e-300), u2 = next()
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2))
    }

    static func random(_ shape: [Int], _ state: inout UInt64, scale: Float = 0.5, offset: Float = 0) -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = offset + scale * normal(&state) }
        return t
    }

    static func weights(_ s: inout UInt64) -> EncoderLayerWeights {
        let h = config.hiddenSize, f = config.intermediateSize
        func lin(_ o: Int, _ i: Int) -> LinearWeights {
            LinearWeights(weight: random([o, i], &s, scale: 1 / Float(i).squareRoot()), bias: random([o], &s, scale: 0.1))
        }
        func ln() -> LayerNormWeights { LayerNormWeights(gamma: random([h], &s, scale: 0.2, offset: 1), beta: random([h], &s, scale: 0.1)) }
        return EncoderLayerWeights(query: lin(h, h), key: lin(h, h), value: lin(h, h), attentionOutput: lin(h, h),
                                   attentionLayerNorm: ln(), intermediate: lin(f, h), output: lin(h, f),
                                   outputLayerNorm: ln())
    }

    @Test(arguments: [0.0 as Float, 0.25])
    func gradientsOfAllSixTargets(dropout: Float) throws {
        var s: UInt64 = 42
        let lora = try LoRAConfiguration(rank: 2, alpha: 4, dropout: dropout, targets: LoRATarget.allCases)
        let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 7)
        for a in adapters.values {
            // Non-zero B, so that dA is not trivially zero.
            for i in 0..<a.loraB.count { a.loraB[i] = 0.5 * Self.normal(&s) }
        }
        let layer = EncoderLayer(configuration: Self.config, weights: Self.weights(&s), lora: lora, adapters: adapters)
        let (b, t, c) = (2, 3, Self.config.hiddenSize)
        let x = Self.random([b * t, c], &s, scale: 1), w = Self.random([b * t, c], &s, scale: 1)
        let mask: [Int32] = [1, 1, 1, 1, 1, 0]
        let act = EncoderLayer.Activations(for: layer, batch: b, tokens: t)
        let y = Tensor(shape: [b * t, c])
        func loss() -> Double {
            layer.forward(x.data, mask: mask, activations: act, into: y.data, dropoutSeed: 5, threads: 1)
            var l = 0.0
            for i in 0..<y.count { l += Double(y[i]) * Double(w[i]) }
            return l
        }
        _ = loss()
        let dX = Tensor(shape: x.shape)
        layer.backward(dY: w.data, x: x.data, activations: act, dInput: dX.data, threads: 1)
        // Step 5e-3: the softmax and LayerNorm paths are curved enough that 1e-2 leaves a
        // truncation error at the edge of the tolerance for a few elements.
        for target in LoRATarget.allCases {
            let a = try #require(adapters[target])
            expectGradient("\(target) dA", parameter: a.loraA, analytic: a.gradA, step: 5e-3, loss: loss)
            expectGradient("\(target) dB", parameter: a.loraB, analytic: a.gradB, step: 5e-3, loss: loss)
        }
        expectGradient("dInput", parameter: x, analytic: dX, step: 5e-3, loss: loss)
    }

    @Test func freshAdaptersAreTheIdentityAndStoppingKeepsAdapterGradients() throws {
        var s: UInt64 = 43
        let weights = Self.weights(&s)
        let lora = try LoRAConfiguration<LoRATarget>(rank: 4, alpha: 8, targets: [.query, .value, .output])
        let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 1)
        let frozen = EncoderLayer(configuration: Self.config, weights: weights)
        let tuned = EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters)
        let x = Self.random([6, 8], &s, scale: 1), w = Self.random([6, 8], &s, scale: 1)
        let y0 = Tensor(shape: [6, 8]), y1 = Tensor(shape: [6, 8])
        let a0 = EncoderLayer.Activations(for: frozen, batch: 2, tokens: 3)
        let a1 = EncoderLayer.Activations(for: tuned, batch: 2, tokens: 3)
        frozen.forward(x.data, mask: nil, activations: a0, into: y0.data, threads: 1)
        tuned.forward(x.data, mask: nil, activations: a1, into: y1.data, threads: 1)
        #expect(y0.values == y1.values, "B = 0 adds exactly nothing")

        let dX = Tensor(shape: x.shape)
        tuned.backward(dY: w.data, x: x.data, activations: a1, dInput: dX.data, threads: 1)
        let withInput = LoRATarget.allCases.compactMap { adapters[$0] }.map { $0.gradA.values + $0.gradB.values }
        #expect(withInput.contains { g in g.contains { $0 != 0 } }, "fresh adapters get a gradient")
        for a in adapters.values { a.zeroGradients() }
        tuned.backward(dY: w.data, x: x.data, activations: a1, dInput: nil, threads: 1)
        let stopped = LoRATarget.allCases.compactMap { adapters[$0] }.map { $0.gradA.values + $0.gradB.values }
        #expect(stopped == withInput, "dInput = nil changes nothing for the adapters")
    }

    @Test func layerStepIsBitReproducible() throws {
        var s: UInt64 = 44
        let weights = Self.weights(&s)
        let lora = try LoRAConfiguration(rank: 2, alpha: 4, dropout: 0.1, targets: LoRATarget.allCases)
        let x = Self.random([20, 8], &s, scale: 1), w = Self.random([20, 8], &s, scale: 1)
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        func run(threads: Int) -> [[UInt32]] {
            let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 9)
            for a in adapters.values { for i in 0..<a.loraB.count { a.loraB[i] = 0.01 * Float(i % 7) } }
            let layer = EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters)
            let act = EncoderLayer.Activations(for: layer, batch: 2, tokens: 10)
            let y = Tensor(shape: [20, 8]), dX = Tensor(shape: [20, 8])
            layer.forward(x.data, mask: mask, activations: act, into: y.data, dropoutSeed: 77, threads: threads)
            layer.backward(dY: w.data, x: x.data, activations: act, dInput: dX.data, threads: threads)
            return [y, dX].map { $0.values.map(\.bitPattern) }
                + LoRATarget.allCases.compactMap { adapters[$0] }.map { ($0.gradA.values + $0.gradB.values).map(\.bitPattern) }
        }
        let first = run(threads: 1)
        #expect(run(threads: 1) == first, "same input, seed and threads: same bits")
        #expect(run(threads: 2) == first, "the layer's own loops do not depend on the thread count")
        // The saved activations and backward's scratch are not zero-filled: filled with NaN
        // instead, they must still give the same bits (no element is read before it is written).
        Tensor.scratchPoison = .nan
        defer { Tensor.scratchPoison = nil }
        #expect(run(threads: 2) == first, "an element of the layer's scratch was read unwritten")
    }

    @Test func foldedAdaptersGiveTheSameFunction() throws {
        var s: UInt64 = 47
        let weights = Self.weights(&s)
        let lora = try LoRAConfiguration(rank: 2, alpha: 4, targets: LoRATarget.allCases)
        let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 8)
        for a in adapters.values { for i in 0..<a.loraB.count { a.loraB[i] = 0.2 * Self.normal(&s) } }
        let layer = EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters)
        let folded = try #require(layer.foldingAdapters())
        #expect(folded.adapters.isEmpty)
        let x = Self.random([20, 8], &s, scale: 1), w = Self.random([20, 8], &s, scale: 1)
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        func run(_ l: EncoderLayer) -> (y: [Float], dX: [Float]) {
            let act = EncoderLayer.Activations(for: l, batch: 2, tokens: 10)
            let y = Tensor(shape: [20, 8]), dX = Tensor(shape: [20, 8])
            l.forward(x.data, mask: mask, activations: act, into: y.data, threads: 1)
            l.backward(dY: w.data, x: x.data, activations: act, dInput: dX.data, adapterGradients: false, threads: 1)
            return (y.values, dX.values)
        }
        let (want, got) = (run(layer), run(folded))
        let plain = run(EncoderLayer(configuration: Self.config, weights: weights))
        for (a, b, name) in [(got.y, want.y, "output"), (got.dX, want.dX, "input gradient")] {
            let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            #expect(worst < 1e-5, "\(name) differs by \(worst)")
        }
        #expect(plain.y != want.y, "the adapters change nothing, so the test shows nothing")
        // Dropout on the adapters, or no adapters at all: nothing to fold.
        let dropped = try LoRAConfiguration(rank: 2, alpha: 4, dropout: 0.1, targets: [LoRATarget.query])
        let withDropout = EncoderLayer(configuration: Self.config, weights: weights, lora: dropped,
                                       adapters: EncoderLayer.freshAdapters(configuration: Self.config, lora: dropped, seed: 1))
        #expect(withDropout.foldingAdapters() == nil)
        #expect(EncoderLayer(configuration: Self.config, weights: weights).foldingAdapters() == nil)
        // Nor in bfloat16 (where the CPU has it): W + s·B·A would lose the adapter to rounding.
        if let bf16 = try? EncoderLayerProducts(weights: weights, precision: .bf16) {
            let rounded = EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters,
                                       products: bf16)
            #expect(rounded.foldingAdapters() == nil)
        }
    }

    @Test func frozenAdaptersPassTheGradientWithoutComputingTheirOwn() throws {
        var s: UInt64 = 46
        let weights = Self.weights(&s)
        let lora = try LoRAConfiguration(rank: 2, alpha: 4, dropout: 0.1, targets: LoRATarget.allCases)
        let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 5)
        for a in adapters.values { for i in 0..<a.loraB.count { a.loraB[i] = 0.03 * Float(i % 5) - 0.05 } }
        let layer = EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters)
        let x = Self.random([20, 8], &s, scale: 1), w = Self.random([20, 8], &s, scale: 1)
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        func dInput(adapterGradients: Bool) -> [UInt32] {
            let act = EncoderLayer.Activations(for: layer, batch: 2, tokens: 10)
            let y = Tensor(shape: [20, 8]), dX = Tensor(shape: [20, 8])
            layer.forward(x.data, mask: mask, activations: act, into: y.data, dropoutSeed: 3, threads: 1)
            layer.backward(dY: w.data, x: x.data, activations: act, dInput: dX.data,
                           adapterGradients: adapterGradients, threads: 1)
            return dX.values.map(\.bitPattern)
        }
        let trained = dInput(adapterGradients: true)
        #expect(adapters.values.contains { a in a.gradA.values.contains { $0 != 0 } })
        for a in adapters.values { a.zeroGradients() }
        #expect(dInput(adapterGradients: false) == trained, "the gradient through frozen adapters changed")
        #expect(adapters.values.allSatisfy { a in (a.gradA.values + a.gradB.values).allSatisfy { $0 == 0 } },
                "a frozen adapter got a gradient")
    }

    @Test func aForwardPassAloneGivesTheTrainingForwardsBits() throws {
        var s: UInt64 = 45
        let weights = Self.weights(&s)
        let lora = try LoRAConfiguration<LoRATarget>(rank: 2, alpha: 4, targets: LoRATarget.allCases)
        let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 3)
        for a in adapters.values { for i in 0..<a.loraB.count { a.loraB[i] = 0.02 * Float(i % 5) - 0.03 } }
        let layer = EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters)
        let x = Self.random([20, 8], &s, scale: 2)
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        let training = Tensor(shape: [20, 8]), alone = Tensor(shape: [20, 8])
        layer.forward(x.data, mask: mask, activations: EncoderLayer.Activations(for: layer, batch: 2, tokens: 10),
                      into: training.data, threads: 2)
        layer.forward(x.data, mask: mask,
                      activations: EncoderLayer.Activations(for: layer, batch: 2, tokens: 10, training: false),
                      into: alone.data, threads: 2)
        #expect(alone.values.map(\.bitPattern) == training.values.map(\.bitPattern))
        #expect(alone.values.contains { $0 != 0 })
    }

    /// Packed sequences (how the trainer runs its batches) against the padded, masked layout:
    /// the same bits for every real row's output and input gradient, and the same adapter
    /// gradients up to the order of their sums over rows.
    @Test func packedSequencesMatchThePaddedLayout() throws {
        var s: UInt64 = 46
        let weights = Self.weights(&s)
        let lora = try LoRAConfiguration<LoRATarget>(rank: 2, alpha: 4, targets: LoRATarget.allCases)
        func layer() -> EncoderLayer {
            var seed: UInt64 = 9
            let adapters = EncoderLayer.freshAdapters(configuration: Self.config, lora: lora, seed: 3)
            for t in LoRATarget.allCases { for i in 0..<adapters[t]!.loraB.count { adapters[t]!.loraB[i] = 0.3 * Self.normal(&seed) } }
            return EncoderLayer(configuration: Self.config, weights: weights, lora: lora, adapters: adapters)
        }
        let padded = layer(), packed = layer()
        let lengths = [4, 10, 1, 7], t = 10, c = Self.config.hiddenSize, n = lengths.reduce(0, +)
        let rows = lengths.enumerated().flatMap { b, length in (0..<length).map { b * t + $0 } }
        let xPadded = Self.random([lengths.count * t, c], &s, scale: 2)
        let dYPadded = Tensor(shape: xPadded.shape), dYPacked = Self.random([n, c], &s)
        let xPacked = Tensor(shape: [n, c])
        var mask = [Int32](repeating: 0, count: lengths.count * t)
        for (i, r) in rows.enumerated() {
            mask[r] = 1
            for j in 0..<c { xPacked[i * c + j] = xPadded[r * c + j]; dYPadded[r * c + j] = dYPacked[i * c + j] }
        }
        let yPadded = Tensor(shape: xPadded.shape), yPacked = Tensor(shape: [n, c])
        let dXPadded = Tensor(shape: xPadded.shape), dXPacked = Tensor(shape: [n, c])
        let aPadded = EncoderLayer.Activations(for: padded, batch: lengths.count, tokens: t)
        let aPacked = EncoderLayer.Activations(for: packed, lengths: lengths)
        #expect(aPacked.rows == n && aPacked.batch == lengths.count && aPacked.tokens == t)
        padded.forward(xPadded.data, mask: mask, activations: aPadded, into: yPadded.data, threads: 2)
        packed.forward(xPacked.data, mask: nil, activations: aPacked, into: yPacked.data, threads: 2)
        padded.backward(dY: dYPadded.data, x: xPadded.data, activations: aPadded, dInput: dXPadded.data, threads: 2)
        packed.backward(dY: dYPacked.data, x: xPacked.data, activations: aPacked, dInput: dXPacked.data, threads: 2)
        var differ = 0
        for (i, r) in rows.enumerated() {
            for j in 0..<c where yPacked[i * c + j].bitPattern != yPadded[r * c + j].bitPattern
                || dXPacked[i * c + j].bitPattern != dXPadded[r * c + j].bitPattern { differ += 1 }
        }
        #expect(differ == 0, "\(differ) real-row outputs or input gradients differ")
        for t in LoRATarget.allCases {
            let p = try #require(packed.adapters[t]), q = try #require(padded.adapters[t])
            let scale = (q.gradA.values + q.gradB.values).map(abs).max() ?? 0
            #expect(scale > 0, "\(t): no gradient")
            for (a, e) in zip(p.gradA.values + p.gradB.values, q.gradA.values + q.gradB.values) {
                #expect(abs(a - e) <= 1e-5 * scale, "\(t): adapter gradient \(a) against \(e)")
            }
        }
    }

    @Test func configurationUsesPEFTKeys() throws {
        let json = #"{"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["attention.self.value", "attention.self.query"]}"#
        let c = try JSONDecoder().decode(LoRAConfiguration<LoRATarget>.self, from: Data(json.utf8))
        #expect(c.rank == 8 && c.alpha == 16 && c.dropout == 0.05 && !c.useRSLoRA)
        #expect(c.targets == [.query, .value])
        #expect(c.scale == 2)
        let bad = #"{"r": 8, "lora_alpha": 16, "target_modules": []}"#
        #expect(throws: ModelsError.self) { try JSONDecoder().decode(LoRAConfiguration<LoRATarget>.self, from: Data(bad.utf8)) }
    }

    @Test func configurationRejectsBadValues() {
        #expect(throws: ModelsError.self) { try LoRAConfiguration<LoRATarget>(rank: 0, alpha: 1, targets: [.query]) }
        #expect(throws: ModelsError.self) { try LoRAConfiguration<LoRATarget>(rank: 8, alpha: 16, dropout: 1, targets: [.query]) }
        #expect(throws: ModelsError.self) { try LoRAConfiguration<LoRATarget>(rank: 8, alpha: 16, targets: []) }
        let ok = try? LoRAConfiguration<LoRATarget>(rank: 16, alpha: 32, targets: [.value, .query, .query], useRSLoRA: true)
        #expect(ok?.targets == [.query, .value])
        #expect(ok?.scale == 8)
    }
}

/// Central finite differences of `loss` w.r.t. every element of `parameter` against
/// `analytic`: |a − n| ≤ atol + rtol·max(|a|, |n|), step 1e-2.
func expectGradient(_ name: String, parameter: Tensor, analytic: Tensor, step h: Float = 1e-2,
                    rtol: Double = 2e-2, atol: Double = 2e-3, loss: () -> Double,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    var failures = 0, worst = 0.0
    for i in 0..<parameter.count {
        let saved = parameter[i]
        parameter[i] = saved + h
        let plus = loss()
        parameter[i] = saved - h
        let minus = loss()
        parameter[i] = saved
        let numeric = (plus - minus) / (Double(saved + h) - Double(saved - h))
        let a = Double(analytic[i])
        let bound = atol + rtol * max(abs(a), abs(numeric))
        if abs(a - numeric) > bound { failures += 1 }
        worst = max(worst, abs(a - numeric) / bound)
    }
    #expect(failures == 0, "\(name): \(failures) of \(parameter.count) elements off, worst \(worst)× tolerance",
            sourceLocation: sourceLocation)
}

import Foundation
private func _log(_ x: Double) -> Double { Foundation.log(x) }
private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
