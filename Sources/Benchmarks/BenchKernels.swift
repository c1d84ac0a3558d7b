import ArgumentParser
import Dispatch
import CommandSupport
import Foundation
import Kernels
import Models

/// `lethe bench kernels`: GFLOP/s of one MiniLM layer's products through BLAS, and the time of
/// one LoRA training step of one encoder block (forward, backward, AdamW).
public struct BenchKernelsCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GFLOP/s of a MiniLM layer's products and the time of one LoRA block training step.",
        discussion: """
            Shapes: B·T = 2048 tokens (16 sequences of 128), hidden 384, 12 heads, FFN 1536, \
            LoRA rank 8 on query, key, value, attention output, intermediate and output; AdamW. \
            The block step is forward + backward (adapter gradients, no input gradient, as for \
            the lowest trained block) + AdamW, loss = Σ y·w for a fixed random w. Times are \
            medians over --repetitions after one warm-up, on the kernels OpenBLAS picks for the CPU \
            (lethe ignores OPENBLAS_CORETYPE: a forced Haswell core halves sgemm speed on \
            AVX-512 machines).

            Examples:
              lethe bench kernels --threads 2
              lethe bench kernels --threads 1 --repetitions 5 --json

            \(BenchHelp.exitCodes)
            """)

    @Option(help: "Threads for BLAS and for the kernels' own loops, \(CommonBounds.threads.text).")
    var threads: Int = CommonBounds.defaultThreads

    @Option(help: "Timed repetitions per measurement (median reported), \(BenchBounds.repetitions.text).")
    var repetitions: Int = 7

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    public func validate() throws {
        try CommonBounds.threads.check(threads, option: "--threads")
        try BenchBounds.repetitions.check(repetitions, option: "--repetitions")
    }

    public func run() throws {
        BLASRuntime.setThreadCount(threads)
        let (b, t, c, h, f, r) = (16, 128, 384, 12, 1536, 8)
        let n = b * t
        var report = KernelBenchReport(coreName: BLASRuntime.coreName, threads: threads,
                                       tokens: n, hidden: c, heads: h, ffn: f, rank: r)
        // The products of one layer's forward and backward, each through sgemm.
        let big = Tensor(shape: [n, f]), big2 = Tensor(shape: [n, f]), wt = Tensor(shape: [f, f])
        fill(big, seed: 1); fill(wt, seed: 2)
        let shapes: [(String, Bool, Bool, Int, Int, Int)] = [
            ("x·Wqᵀ [2048×384]·[384×384]ᵀ", false, true, n, c, c),
            ("h·Wiᵀ [2048×384]·[1536×384]ᵀ", false, true, n, f, c),
            ("g·Wdᵀ [2048×1536]·[384×1536]ᵀ", false, true, n, c, f),
            ("dY·Wd [2048×384]·[384×1536]", false, false, n, f, c),
            ("dF·Wi [2048×1536]·[1536×384]", false, false, n, c, f),
            ("x·Aᵀ rank 8 [2048×384]·[8×384]ᵀ", false, true, n, r, c),
            ("dYᵀ·xa rank 8 [384×2048]·[2048×8]", true, false, c, r, n),
        ]
        // The ceiling first, while nothing of ours has warmed the caches or the clocks.
        report.peakGflops = PeakThroughput.measure(threads: threads).ceilingGflops
        var layerFlops = 0.0, layerSeconds = 0.0
        for (name, ta, tb, m, nn, k) in shapes {
            let s = median { MatMul.gemm(ta, tb, m, nn, k, 1, big.data, ta ? m : k, wt.data, tb ? k : nn, 0, big2.data, nn) }
            let flops = 2.0 * Double(m * nn * k)
            report.products.append(.init(name: name, milliseconds: s * 1e3, gflops: flops / s / 1e9))
            if !name.contains("rank") { layerFlops += flops; layerSeconds += s }
        }
        report.sgemmGflops = layerFlops / layerSeconds / 1e9

        // The forward products again through oneDNN (the frozen layers' path), in each
        // precision, at the block's rows and at 320 rows (a batch of headlines in a training
        // stage): what the kernels reach on the shapes training and serving run.
        for precision in [Precision.fp32, .bf16] {
            for rows in [n, 320] {
                for (name, nn, k) in [("x·Wqᵀ", c, c), ("h·Wiᵀ", f, c), ("g·Wdᵀ", c, f)] {
                    guard let packed = try? PackedMatrix(wt.pointer, rows: k, columns: nn, transposed: true,
                                                         precision: precision) else { continue }
                    let s = median { packed.multiply(big.pointer, rows: rows, into: big2.data, accumulate: false) }
                    report.products.append(.init(name: "\(precision) packed \(name) [\(rows)×\(k)]·[\(nn)×\(k)]ᵀ",
                                                 milliseconds: s * 1e3, gflops: 2.0 * Double(rows * nn * k) / s / 1e9))
                }
            }
        }

        // Attention products: 2·B·H per-head T×T×D gemms, batched over heads and sequences.
        let shape = Attention.Shape(batch: b, tokens: t, heads: h, headSize: c / h)
        let q = Tensor(shape: [n, c]), k = Tensor(shape: [n, c]), v = Tensor(shape: [n, c])
        fill(q, seed: 3); fill(k, seed: 4); fill(v, seed: 5)
        let p = Tensor(shape: [shape.probabilityCount]), o = Tensor(shape: [n, c])
        let attentionSeconds = median {
            Attention.forward(q: q.data, k: k.data, v: v.data, keyMask: nil, shape: shape,
                              probabilities: p.data, into: o.data, threads: threads)
        }
        let attentionFlops = 2.0 * 2.0 * Double(b * h * t * t * (c / h))
        report.products.append(.init(name: "attention forward (QKᵀ, softmax, PV), 192 heads",
                                     milliseconds: attentionSeconds * 1e3, gflops: attentionFlops / attentionSeconds / 1e9))

        // The FFN activation, forward with its saved derivative (the training form).
        let geluCount = min(n * f, wt.count)
        let geluSeconds = median {
            GELU.forward(big.data, into: big2.data, derivative: wt.data, count: geluCount, threads: threads)
        }
        report.products.append(.init(name: "GELU + derivative, \(geluCount) values",
                                     milliseconds: geluSeconds * 1e3, gflops: Double(geluCount) / geluSeconds / 1e6,
                                     unit: "Mvalues/s"))

        // One LoRA training step of one encoder block.
        let step = try BlockStep(batch: b, tokens: t, rank: r, threads: threads)
        var cpuTimes: [Double] = []
        report.blockStepMilliseconds = median {
            let cpu = processCPUSeconds()
            step.run()
            cpuTimes.append(processCPUSeconds() - cpu)
        } * 1e3
        cpuTimes.sort()
        report.blockStepCPUMilliseconds = cpuTimes[cpuTimes.count / 2] * 1e3
        report.blockStepGflop = step.flops / 1e9
        report.blockStepGflops = step.flops / (report.blockStepMilliseconds / 1e3) / 1e9
        report.blockStepShareOfSgemm = report.blockStepGflops / report.sgemmGflops
        report.blockStepFloorMilliseconds = step.flops / (report.peakGflops * 1e9) * 1e3
        step.phases = []
        for _ in 0..<repetitions { step.run(timed: true) }
        report.blockStepPhases = step.phases.map {
            .init(name: $0.name, milliseconds: $0.milliseconds / Double(repetitions),
                  cpuMilliseconds: $0.cpuMilliseconds / Double(repetitions))
        }
        let load = MachineLoad()
        report.loadAverage = load.averages
        load.printWarning(json: json)
        report.print(json: json)
    }

    /// Median wall time in seconds of `repetitions` calls after one warm-up.
    func median(_ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        times.sort()
        return times[times.count / 2]
    }
}

/// Fills a tensor with values in [−0.5, 0.5) from a fixed stream (benchmark inputs only).
func fill(_ t: Tensor, seed: UInt64, scale: Float = 1) {
    var s = seed
    for i in 0..<t.count {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        t[i] = (Float(s >> 40) / 16_777_216.0 - 0.5) * scale
    }
}
