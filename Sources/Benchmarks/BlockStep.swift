import CommandSupport
import Dispatch
import Kernels
import Models

/// One LoRA training step of one MiniLM-sized encoder block, for `lethe bench kernels`:
/// forward, loss Σ y·w (so dY = w), backward without input gradient, AdamW on the adapters.
final class BlockStep {
    let layer: EncoderLayer
    let activations: EncoderLayer.Activations
    let x, y, w: Tensor
    let mask: [Int32]
    let adapters: [LoRAAdapter]
    let moments: [(Tensor, Tensor)]
    let optimizer = AdamW.Configuration(learningRate: 1e-4, weightDecay: 0.01, maxGradientNorm: 1.0)
    let threads: Int
    var stepCount = 0
    /// Multiply-add FLOPs of the step's matrix products (2 per multiply-add).
    let flops: Double
    /// Summed wall and process CPU milliseconds per operation, in the order they first ran.
    var phases: [KernelBenchReport.Phase] = []

    init(batch b: Int, tokens t: Int, rank r: Int, threads: Int) throws {
        let config = EncoderLayerConfiguration.miniLM
        let (c, f) = (config.hiddenSize, config.intermediateSize)
        var seed: UInt64 = 10
        func lin(_ o: Int, _ i: Int) -> LinearWeights {
            let wt = Tensor(shape: [o, i]), bias = Tensor(shape: [o])
            seed += 1; fill(wt, seed: seed, scale: 2 / Float(i).squareRoot())
            seed += 1; fill(bias, seed: seed, scale: 0.1)
            return LinearWeights(weight: wt, bias: bias)
        }
        func ln() -> LayerNormWeights {
            let g = Tensor(shape: [c], values: [Float](repeating: 1, count: c))
            return LayerNormWeights(gamma: g, beta: Tensor(shape: [c]))
        }
        let weights = EncoderLayerWeights(query: lin(c, c), key: lin(c, c), value: lin(c, c),
                                          attentionOutput: lin(c, c), attentionLayerNorm: ln(),
                                          intermediate: lin(f, c), output: lin(c, f), outputLayerNorm: ln())
        let lora = try LoRAConfiguration(rank: r, alpha: 16, targets: LoRATarget.allCases)
        let adapterMap = EncoderLayer.freshAdapters(configuration: config, lora: lora, seed: 3)
        layer = EncoderLayer(configuration: config, weights: weights, lora: lora, adapters: adapterMap)
        activations = EncoderLayer.Activations(for: layer, batch: b, tokens: t)
        let n = b * t
        x = Tensor(shape: [n, c]); y = Tensor(shape: [n, c]); w = Tensor(shape: [n, c])
        fill(x, seed: 100, scale: 2); fill(w, seed: 101, scale: 1e-3)
        mask = [Int32](repeating: 1, count: n)
        adapters = LoRATarget.allCases.compactMap { adapterMap[$0] }
        moments = adapters.flatMap { a in
            [(Tensor(shape: a.loraA.shape), Tensor(shape: a.loraA.shape)),
             (Tensor(shape: a.loraB.shape), Tensor(shape: a.loraB.shape))]
        }
        self.threads = threads
        flops = Self.flops(n: n, batch: b, tokens: t, c: c, f: f, heads: 12, rank: r)
    }

    /// FLOPs (2 per multiply-add) of the step's matrix products: forward six linears, QKᵀ and
    /// PV, LoRA x·Aᵀ and xa·Bᵀ; backward dX of attention output, intermediate and output (the
    /// q, k, v inputs need none), four attention products, LoRA dB, dY·B, dA, and g·A where dX
    /// flows. Elementwise work is not counted.
    static func flops(n: Int, batch b: Int, tokens t: Int, c: Int, f: Int, heads h: Int, rank r: Int) -> Double {
        let linears: [(inF: Int, outF: Int, needsDX: Bool)] =
            [(c, c, false), (c, c, false), (c, c, false), (c, c, true), (c, f, true), (f, c, true)]
        var total = 0.0
        for l in linears {
            total += 2 * Double(n * l.inF * l.outF)                      // forward
            total += 2 * Double(n * r * (l.inF + l.outF))                // LoRA forward
            if l.needsDX { total += 2 * Double(n * l.inF * l.outF) }     // dX = dY·W
            total += 2 * Double(n * r * (2 * l.outF + l.inF))            // dB, dY·B, dA
            if l.needsDX { total += 2 * Double(n * r * l.inF) }          // g·A
        }
        let attentionProduct = 2 * Double(b * h * t * t * (c / h))
        total += 2 * attentionProduct + 4 * attentionProduct
        return total
    }

    func run(timed: Bool = false) {
        var mark = DispatchTime.now().uptimeNanoseconds, markCPU = processCPUSeconds()
        func lap(_ name: String) {
            guard timed else { return }
            let now = DispatchTime.now().uptimeNanoseconds, nowCPU = processCPUSeconds()
            let wall = Double(now - mark) / 1e6, cpu = (nowCPU - markCPU) * 1e3
            if let i = phases.firstIndex(where: { $0.name == name }) {
                phases[i].milliseconds += wall; phases[i].cpuMilliseconds += cpu
            } else {
                phases.append(.init(name: name, milliseconds: wall, cpuMilliseconds: cpu))
            }
            mark = now; markCPU = nowCPU
        }
        for a in adapters { a.zeroGradients() }
        lap("zero gradients")
        layer.forward(x.data, mask: mask, activations: activations, into: y.data, threads: threads,
                      observer: timed ? { lap("forward: \($0)") } : nil)
        layer.backward(dY: w.data, x: x.data, activations: activations, dInput: nil, threads: threads,
                       observer: timed ? { lap("backward: \($0)") } : nil)
        stepCount += 1
        var slots: [AdamW.Slot] = []
        for (i, a) in adapters.enumerated() {
            let (mA, vA) = moments[2 * i], (mB, vB) = moments[2 * i + 1]
            slots.append(.init(value: a.loraA.data, gradient: a.gradA.data, firstMoment: mA.data, secondMoment: vA.data, count: a.loraA.count))
            slots.append(.init(value: a.loraB.data, gradient: a.gradB.data, firstMoment: mB.data, secondMoment: vB.data, count: a.loraB.count))
        }
        AdamW.step(slots, step: stepCount, configuration: optimizer)
        lap("AdamW")
    }
}
