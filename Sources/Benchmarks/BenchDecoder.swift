import ArgumentParser
import Approximate
import CommandSupport
import Foundation
import Kernels
import Models
import Support

/// `lethe bench decoder`: training tokens/s of the decoder (LoRA on every projection, AdamW),
/// the number Tools/compare_decoder_torch.py measures for PyTorch with the same sizes.
public struct BenchDecoderCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "decoder",
        abstract: "Time decoder training steps (forward, backward, AdamW) and print tokens/s.",
        discussion: """
            Examples:
              lethe bench decoder --steps 5
              lethe bench decoder --steps 5 --precision bf16 --json

            \(BenchHelp.exitCodes)
            """)

    @OptionGroup var options: DecoderOptions
    @Option(help: "Sequences per batch, \(Self.batchBounds.text).") var batch = 4
    @Option(help: "Tokens per sequence, 2…--max-positions.") var tokens = 128
    @Option(help: "Timed steps (after one warm-up step), \(Self.stepBounds.text).") var steps = 3
    @Option(help: "LoRA rank, \(rangeText(UnlearningConfiguration.Limits.rank)) and at most the model's narrowest projection.")
    var rank = 8
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    static let batchBounds = OptionBounds(UnlearningConfiguration.Limits.batchSize)
    static let stepBounds = OptionBounds(1...1_000)

    public func validate() throws {
        try options.checkModel()
        try Self.batchBounds.check(batch, option: "--batch")
        try options.checkChunkLength(tokens, option: "--tokens")
        try Self.stepBounds.check(steps, option: "--steps")
        try OptionBounds(UnlearningConfiguration.Limits.rank).check(rank, option: "--rank")
    }

    public func run() throws {
        let report = ResultReport(json: json)
        let (model, _) = try options.load()
        try DecoderOptions.checkRank(rank, within: OptionBounds(UnlearningConfiguration.Limits.rank), for: model.configuration)
        let load = MachineLoad()
        load.printWarning(json: report.json)
        report.say("BLAS core: \(BLASRuntime.coreName), threads \(options.threads), \(load.text)")
        var rng = SplitMix64(seed: 1)
        let chunks = (0 ..< batch).map { _ in (0 ..< tokens).map { _ in Int(rng.next() % 49152) } }
        try options.ensureTrainingMemory(model.configuration, chunks: chunks, batchSize: batch)
        let config = try UnlearningConfiguration(learningRate: 1e-4, steps: steps, batchSize: batch,
                                                 adapter: try LlamaAdapterConfiguration(rank: rank, alpha: Float(2 * rank)))
        let u = try Unlearner(model: model, objective: .fineTune, configuration: config, forget: chunks,
                              threads: options.threads)
        let groups = u.threadGroups(chunkCount: batch)
        report.say(groups == 1 ? "training: the whole batch as one pass"
              : "training: \(groups) groups of sequences at once, one thread each (OpenBLAS single-threaded inside)")
        let optimizer = AdamW.Configuration(learningRate: 1e-4, weightDecay: 0)
        var times: [Double] = []
        for k in 0 ... steps {
            let start = Date()
            u.adapter.zeroGradients()
            _ = try u.accumulate(step: k)
            u.adapter.step(k + 1, optimizer: optimizer)
            if k > 0 { times.append(Date().timeIntervalSince(start)) }
        }
        let median = times.median
        let perToken = model.configuration.frozenTrainingFLOPsPerToken(context: tokens) / 1e9
        let rate = Double(batch * tokens) * perToken / median
        // Work in bf16 is measured against the bf16 dot-product peak (the frozen products are
        // most of it), in float32 against the FMA peak.
        let peak = PeakThroughput.measure(threads: options.threads).ceiling(options.precision)
        report.say(String(format: "B=%d T=%d LoRA r=%d on all projections: median step %.3f s, %.0f training tokens/s, %.1f GFLOP/s (%.3f GFLOP/token: forward + input gradients, frozen weights)",
                     batch, tokens, rank, median, Double(batch * tokens) / median, rate, perToken))
        report.say(String(format: "%@ peak on %d thread%@: %.1f GFLOP/s; this run is at %.0f%% of it%@; at the peak: %.0f tokens/s (the ceiling of any implementation here)",
                     options.precision == .bf16 ? "bf16 dot-product" : "Float32 FMA",
                     options.threads, options.threads == 1 ? "" : "s", peak, 100 * rate / peak, MachineLoad.caveat(share: rate / peak), peak / perToken))
        for (key, value): (String, Any) in [
            ("blas_core", BLASRuntime.coreName), ("threads", options.threads), ("thread_groups", groups),
            ("batch", batch), ("tokens", tokens), ("rank", rank), ("steps", steps),
            ("median_step_seconds", median), ("tokens_per_second", Double(batch * tokens) / median),
            ("gflops", rate), ("gflop_per_token", perToken), ("peak_gflops", peak), ("precision", options.precision.rawValue), ("share_of_peak", rate / peak),
        ] { report.record(key, value) }
        try report.finish()
    }
}
