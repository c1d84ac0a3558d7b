import Foundation
import Support
import Testing
import Kernels
@testable import Models

/// Finite-difference checks of the decoder's backward pass on a tiny random Llama.
@Suite struct LlamaGradientTests {
    static func tiny() throws -> LlamaModel {
        let c = try LlamaConfiguration(vocabularySize: 13, hiddenSize: 16, intermediateSize: 24, layerCount: 2,
                                       headCount: 4, kvHeadCount: 2, ropeBase: 100000, rmsEpsilon: 1e-5,
                                       maxPositions: 8)
        return try LlamaModel(weights: LlamaWeights(randomWith: c, seed: 7, scale: 0.3), precision: .fp32)
    }

    /// L = Σ_m Σ_v logits[m, v]·R[m, v] for a fixed random R, so dL/dlogits = R.
    static func loss(_ model: LlamaModel, _ adapter: LlamaAdapter, ids: [Int32], rows: [Int], r: Tensor) throws -> Double {
        let pass = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: rows, adapter: adapter)
        var total = 0.0
        for j in 0 ..< r.count { total += Double(pass.logits[j]) * Double(r[j]) }
        return total
    }

    @Test func loraAndFullWeightGradientsMatchFiniteDifferences() throws {
        let model = try Self.tiny()
        let config = try LlamaAdapterConfiguration(rank: 2, alpha: 4, targets: [.query, .key, .value, .output, .gate, .down],
                                                   fullTargets: [.up])
        let adapter = LlamaAdapter(configuration: config, weights: model.weights, seed: 3)
        var rng = SplitMix64(seed: 11)
        // Non-zero B so that the A gradients are exercised too.
        for p in adapter.parameters where p.name.hasSuffix("lora_B") {
            for j in 0 ..< p.value.count { p.value[j] = 0.3 * rng.nextGaussian() }
        }
        let ids: [Int32] = [1, 5, 9, 2, 12, 0, 3, 3, 7, 11]
        let rows = [0, 2, 4, 6, 7, 9]
        let r = Tensor(shape: [rows.count, 13])
        for j in 0 ..< r.count { r[j] = rng.nextGaussian() }
        let pass = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: rows, adapter: adapter)
        adapter.zeroGradients()
        model.backward(pass, dLogits: r, adapter: adapter)
        var checked = 0
        for p in adapter.parameters {
            for k in 0 ..< 3 {
                let j = (k * 7919 + p.name.count * 31) % p.value.count
                let saved = p.value[j]
                let h: Float = 1e-2
                p.value[j] = saved + h
                let plus = try Self.loss(model, adapter, ids: ids, rows: rows, r: r)
                p.value[j] = saved - h
                let minus = try Self.loss(model, adapter, ids: ids, rows: rows, r: r)
                p.value[j] = saved
                let numeric = (plus - minus) / (2 * Double(h))
                let analytic = Double(p.gradient[j])
                #expect(abs(numeric - analytic) <= 2e-2 * max(abs(numeric), abs(analytic)) + 2e-3,
                        "\(p.name)[\(j)]: numeric \(numeric) analytic \(analytic)")
                checked += 1
            }
        }
        #expect(checked == 3 * adapter.parameters.count && adapter.parameters.count == 2 * (12 + 1))
    }

    /// Starting at the adapter's lowest layer from the base's residual stream gives the full
    /// forward's logits and the same gradients, bit for bit; an adapter below the start is refused
    /// by backward (it would miss gradients).
    @Test func aPassFromTheSharedBaseStreamEqualsTheFullPass() throws {
        let model = try Self.tiny()
        let adapter = LlamaAdapter(configuration: try LlamaAdapterConfiguration(rank: 2, alpha: 4, layers: [1]),
                                   weights: model.weights, seed: 3)
        var rng = SplitMix64(seed: 5)
        for p in adapter.parameters where p.name.hasSuffix("lora_B") {
            for j in 0 ..< p.value.count { p.value[j] = 0.3 * rng.nextGaussian() }
        }
        #expect(adapter.lowestLayer == 1)
        let ids: [Int32] = [1, 5, 9, 2, 12, 0, 3, 3, 7, 11], rows = [0, 3, 4, 6, 9]
        let full = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: rows, adapter: adapter)
        let stream = model.baseHidden(try model.embed(ids: ids, batch: 2, tokens: 5), layers: 0 ..< 1, batch: 2, tokens: 5)
        let upper = model.forward(hidden: stream, fromLayer: 1, batch: 2, tokens: 5, logitRows: rows, adapter: adapter)
        #expect(full.logits.values == upper.logits.values)
        let r = Tensor(shape: [rows.count, 13])
        for j in 0 ..< r.count { r[j] = rng.nextGaussian() }
        adapter.zeroGradients()
        model.backward(full, dLogits: r, adapter: adapter)
        let fromFull = adapter.parameters.map(\.gradient.values)
        adapter.zeroGradients()
        model.backward(upper, dLogits: r, adapter: adapter)
        #expect(adapter.parameters.map(\.gradient.values) == fromFull)
        #expect(fromFull.contains { $0.contains { $0 != 0 } })
    }

    /// A fresh adapter (B = 0) leaves the logits bit-for-bit unchanged.
    /// The forward's saved activations are not zero-filled; filled with NaN instead, a forward
    /// and backward give the same logits and gradients bit for bit.
    @Test func unfilledActivationsAreNeverReadBeforeWritten() throws {
        let model = try Self.tiny()
        let config = try LlamaAdapterConfiguration(rank: 2, alpha: 4, targets: [.query, .value, .down], fullTargets: [.up])
        let adapter = LlamaAdapter(configuration: config, weights: model.weights, seed: 5)
        var rng = SplitMix64(seed: 13)
        for p in adapter.parameters where p.name.hasSuffix("lora_B") {
            for j in 0 ..< p.value.count { p.value[j] = 0.3 * rng.nextGaussian() }
        }
        let ids: [Int32] = [4, 1, 8, 2, 12, 6, 3, 0, 7, 10]
        let rows = [1, 3, 4, 8, 9]
        let r = Tensor(shape: [rows.count, 13])
        for j in 0 ..< r.count { r[j] = rng.nextGaussian() }
        func run() throws -> [[UInt32]] {
            let pass = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: rows, adapter: adapter)
            adapter.zeroGradients()
            model.backward(pass, dLogits: r, adapter: adapter)
            return [pass.logits.values.map(\.bitPattern)] + adapter.parameters.map { $0.gradient.values.map(\.bitPattern) }
        }
        let plain = try run()
        Tensor.scratchPoison = .nan
        defer { Tensor.scratchPoison = nil }
        #expect(try run() == plain, "an activation was read before it was written")
    }

    @Test func freshAdapterIsIdentity() throws {
        let model = try Self.tiny()
        let adapter = LlamaAdapter(configuration: try LlamaAdapterConfiguration(rank: 4, alpha: 8),
                                   weights: model.weights, seed: 1)
        let ids: [Int32] = [1, 5, 9, 2, 12, 0, 3, 3, 7, 11]
        let a = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: Array(0 ..< 10)).logits.values
        let b = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: Array(0 ..< 10), adapter: adapter).logits.values
        #expect(a == b)
    }

    /// Scoring batches on several threads gives the scores of one thread, bit for bit, in order.
    @Test func scoresDoNotDependOnTheThreadCount() throws {
        let model = try Self.tiny()
        let sequences = [[1, 5, 9, 2], [12, 0, 3], [3, 7, 11, 4, 4, 8], [6], [2, 2, 10, 1, 0], [9, 8, 7, 6, 5]]
        let one = try model.scores(of: sequences, batchSize: 2, threads: 1)
        #expect(one.map(\.logProbabilities.count) == [3, 2, 5, 0, 4, 4])
        for threads in [2, 3, 5] {
            #expect(try model.scores(of: sequences, batchSize: 2, threads: threads) == one, "\(threads) threads")
        }
    }

    @Test func rejectsBadConfigurations() {
        #expect(throws: ModelsError.self) {
            try LlamaConfiguration(vocabularySize: 10, hiddenSize: 16, intermediateSize: 8, layerCount: 1,
                                   headCount: 3, kvHeadCount: 1, ropeBase: 1e4, rmsEpsilon: 1e-5, maxPositions: 4)
        }
        #expect(throws: ModelsError.self) { try LlamaAdapterConfiguration(rank: 2, targets: [.up], fullTargets: [.up]) }
    }
}

@Suite struct LlamaMergingTests {
    /// Folding a trained adapter into the weights gives the same logits as applying it.
    @Test func mergedWeightsMatchAdapter() throws {
        let model = try LlamaGradientTests.tiny()
        let adapter = LlamaAdapter(configuration: try LlamaAdapterConfiguration(rank: 2, alpha: 4, targets: [.query, .down, .gate],
                                                                                fullTargets: [.up]),
                                   weights: model.weights, seed: 2)
        var rng = SplitMix64(seed: 4)
        for p in adapter.parameters { for j in 0 ..< p.value.count { p.value[j] += 0.2 * rng.nextGaussian() } }
        let ids: [Int32] = [1, 5, 9, 2, 12]
        let a = try model.forward(ids: ids, batch: 1, tokens: 5, logitRows: Array(0 ..< 5), adapter: adapter).logits.values
        let merged = try LlamaModel(weights: model.weights.merging(adapter), precision: .fp32)
        let b = try merged.forward(ids: ids, batch: 1, tokens: 5, logitRows: Array(0 ..< 5)).logits.values
        #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-4)
        #expect(a != (try model.forward(ids: ids, batch: 1, tokens: 5, logitRows: Array(0 ..< 5)).logits.values))
    }
}

/// The decoder in bf16: logits and adapter gradients follow float32's within bfloat16's
/// rounding, the same inputs give the same bits, and fully trained matrices stay float32.
@Suite struct LlamaBFloat16Tests {
    @Test func bf16FollowsFloat32AndIsDeterministic() throws {
        let fp32 = try LlamaGradientTests.tiny()
        let bf16 = try LlamaModel(weights: fp32.weights, precision: .bf16)
        #expect(bf16.precision == .bf16 && fp32.precision == .fp32)
        let config = try LlamaAdapterConfiguration(rank: 2, alpha: 4, targets: [.query, .value, .gate, .down],
                                                   fullTargets: [.up])
        var rng = SplitMix64(seed: 5)
        let ids: [Int32] = [1, 5, 9, 2, 12, 0, 3, 3, 7, 11], rows = [0, 2, 4, 6, 7, 9]
        let r = Tensor(shape: [rows.count, 13])
        for j in 0 ..< r.count { r[j] = rng.nextGaussian() }
        func run(_ model: LlamaModel) throws -> (logits: [Float], gradients: [Float]) {
            let adapter = LlamaAdapter(configuration: config, weights: model.weights, seed: 3)
            var start = SplitMix64(seed: 11)
            for p in adapter.parameters where p.name.hasSuffix("lora_B") {
                for j in 0 ..< p.value.count { p.value[j] = 0.3 * start.nextGaussian() }
            }
            let pass = try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: rows, adapter: adapter)
            adapter.zeroGradients()
            model.backward(pass, dLogits: r, adapter: adapter)
            return (pass.logits.values, adapter.parameters.flatMap(\.gradient.values))
        }
        let a = try run(bf16), b = try run(bf16), reference = try run(fp32)
        #expect(a.logits == b.logits && a.gradients == b.gradients)
        #expect(a.logits != reference.logits, "bf16 gave float32's bits: the precision is not used")
        func relative(_ x: [Float], _ y: [Float]) -> Double {
            let d = zip(x, y).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
            return d / max(y.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot(), 1e-30)
        }
        #expect(relative(a.logits, reference.logits) < 2e-2, "logits \(relative(a.logits, reference.logits))")
        #expect(relative(a.gradients, reference.gradients) < 5e-2, "gradients \(relative(a.gradients, reference.gradients))")
    }
}
