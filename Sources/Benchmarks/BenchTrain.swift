import ArgumentParser
import Dispatch
import CommandSupport
import Foundation
import Kernels
import Models
import Planning
import Support
import Training

/// `lethe bench train`: LoRA training speed and accuracy on a labelled data set.
public struct BenchTrainCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Examples/s and tokens/s of LoRA classifier training, all-layer and top-layer-only, plus test accuracy.",
        discussion: """
            Runs one training per placement (--placements all,top), each from the same seed, and \
            prints examples/s, real (non-padding) tokens/s, the activation cache and test accuracy, and the \
            share of the peak of its precision (`lethe bench peak`, measured first) that the run's FLOP floor \
            reached: real tokens only, frozen layers below the trained ones once per example, input gradients \
            through the frozen matrices, adapters left out; then the share once more with the adapters' \
            rank-r products added (the run's whole necessary arithmetic). Compare with \
            Tools/compare_train_torch.py on the same settings.

            Examples:
              lethe bench train
              lethe bench train --precision bf16 --epochs 1

            \(BenchHelp.exitCodes)
            """)

    @Option(help: "Model folder.") var model = "Checkpoints/base/all-MiniLM-L6-v2"
    @Option(help: "Training data (JSON Lines).") var data = "Datasets/bbc-news/train.jsonl"
    @Option(help: "Test data (JSON Lines).") var testData = "Datasets/bbc-news/test.jsonl"
    @Option(help: "text or text+lead.") var textField = "text"
    @Option(parsing: .upToNextOption, help: "Placements: all (every layer), top (last layer only).")
    var placements: [Placement] = [.all, .top]
    @Option(help: "Epochs, \(rangeText(Limits.epochs)).") var epochs = 3
    @Option(help: "LoRA rank, \(rangeText(Limits.rank)).") var rank = 16
    @Option(help: "LoRA alpha, \(rangeText(Limits.alpha)).") var alpha: Float = 32
    @Option(parsing: .upToNextOption, help: "LoRA target modules: q k v o up down (or query key value …).")
    var targets: [String] = ["q", "v"]
    @Option(help: "Peak learning rate, \(rangeText(Limits.learningRate)).") var lr: Float = 1e-3
    @Option(help: "Examples per batch, \(rangeText(Limits.batchSize)).") var batchSize = 32
    @Option(help: "Seed, \(CommonBounds.seedText).") var seed: UInt64 = 0
    @Option(help: "Threads, \(rangeText(Limits.threadCount)).") var threads = CommonBounds.defaultThreads
    @Option(help: "Maximum tokens per example, \(rangeText(Limits.maxTokenCount)).") var maxTokens = 128
    @Flag(help: "Feed the head the L2-normalised embedding instead of the raw mean.") var normalizedHead = false
    @Flag(help: "Disable the activation cache.") var noCache = false
    @Option(help: "Arithmetic of the frozen base weights' products: fp32 or bf16 (bfloat16, float32 accumulation).")
    var precision: Precision = .fp32
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// Where the adapters sit: in every encoder layer, or in the last one only.
    enum Placement: String, ExpressibleByArgument, CaseIterable { case all, top }

    typealias Limits = TrainingSettings.Limits

    /// The bounds of a run's settings (`TrainingSettings.Limits`), checked before the model loads.
    public func validate() throws {
        var settings = TrainingSettings(epochs: epochs, rank: rank, alpha: alpha, learningRate: lr, batchSize: batchSize,
                                        maxTokenCount: maxTokens, textField: textField, threadCount: threads,
                                        baseModel: model, baseModelSHA256: "")
        settings.targets = try LoRATarget.parseList(targets.joined(separator: ",")).map(\.rawValue)
        do { try settings.validate() } catch let TrainingError.invalidValue(field, value, reason) {
            throw ValidationError("--\(field) \(value): \(reason).")
        }
    }

    public func run() throws {
        guard let field = TextField(rawValue: textField) else { throw ValidationError("--text-field: text or text+lead") }
        let targetList = try LoRATarget.parseList(targets.joined(separator: ","))
        let result = ResultReport(json: json)
        var rows: [[String: Any]] = []
        let load = MachineLoad()
        load.printWarning(json: result.json)
        result.say("BLAS core: \(BLASRuntime.coreName), threads: \(threads), precision: \(precision), \(load.text)")
        let peak = PeakThroughput.measure(threads: threads).ceiling(precision)
        result.say(String(format: "%@ peak on %d thread%@: %.1f GFLOP/s", precision == .bf16 ? "bf16 dot-product" : "float32 FMA",
                          threads, threads == 1 ? "" : "s", peak))
        let train = try Dataset.read(from: URL(fileURLWithPath: data))
        let testSet = try Dataset.read(from: URL(fileURLWithPath: testData))
        let labels = train.labelVocabulary
        // A classifier tells two labels apart at least: refused before the model loads.
        guard labels.count >= 2 else {
            throw ValidationError("--data \(data): " + (labels.names.first.map { "every example has the label \"\($0)\"" }
                                                       ?? "no example has a label")
                                  + "; the benchmark trains a classifier, which needs two labels at least. Pass labelled data "
                                  + "with two or more labels.")
        }
        let encoder = try MiniLMEncoder(directory: model, precision: precision)
        let lora = try LoRAConfiguration(rank: rank, alpha: alpha, targets: targetList)
        for placement in placements {
            let layers: [Int] = placement == .top ? [encoder.frozenLayers.count - 1] : Array(0..<encoder.frozenLayers.count)
            let classifier = try LoRAClassifier(encoder: encoder, lora: lora, adapterLayers: layers,
                                                classCount: labels.count, headNormalizesInput: normalizedHead,
                                                maxLength: maxTokens, seed: seed)
            let examples = try field.trainingExamples(train.examples, labels: labels, model: classifier)
            let config = TrainingConfiguration(epochCount: epochs, batchSize: batchSize, learningRate: lr, seed: seed,
                                               threadCount: threads, usesActivationCache: !noCache)
            let trainer = try ClassifierTrainer(model: classifier, trainableLayers: layers, configuration: config)
            let start = DispatchTime.now().uptimeNanoseconds
            let report = try trainer.train(examples)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let predictions = classifier.predict(testSet.examples.map(field.input(of:)), threads: threads)
            let correct = zip(predictions, testSet.examples).filter { labels.name(at: $0.0.label) == $0.1.label }.count
            let accuracy = Double(correct) / Double(testSet.examples.count)
            let layerList = layers.map(String.init).joined(separator: ",")
            let losses = report.epochMeanLosses.map { String(format: "%.3f", $0) }.joined(separator: "→")
            let examplesPerSecond = Double(report.examplesSeen) / seconds
            let tokensPerSecond = Double(report.realTokensSeen) / seconds
            let padding = 100 * (1 - Double(report.realTokensSeen) / Double(report.paddedTokensSeen))
            let work = EncoderWork(hidden: encoder.configuration.hiddenSize, intermediate: encoder.configuration.intermediateSize,
                                   layerCount: encoder.frozenLayers.count)
            let lengths = examples.map(\.ids.count)
            let floor = work.trainingFloor(lengths: lengths, epochs: epochs, lowestTrained: layers.min() ?? 0)
            let rate = floor / seconds / 1e9
            let adapterFlops = work.adapterWork(lengths: lengths, epochs: epochs, trainedLayers: layers,
                                                targets: targetList, rank: rank)
            let rateWithAdapters = (floor + adapterFlops) / seconds / 1e9
            result.say("\(placement.rawValue) (layers \(layerList), targets \(targets.joined(separator: " ")), r=\(rank), alpha=\(alpha), \(epochs) epochs, batch \(batchSize), lr \(lr)):")
            result.say(String(format: "  %.1f s, %.1f examples/s, %.0f real tokens/s, padding %.1f%%, test accuracy %.2f%%",
                         seconds, examplesPerSecond, tokensPerSecond, padding, 100 * accuracy) + ", loss " + losses)
            result.say(String(format: "  FLOP floor %.2f TFLOP: %.1f GFLOP/s = %.0f%% of the %@ peak%@", floor / 1e12, rate,
                              100 * rate / peak, precision.rawValue, MachineLoad.caveat(share: rate / peak)))
            result.say(String(format: "  with the adapters' products (%.2f TFLOP more): %.1f GFLOP/s = %.0f%% of the peak",
                              adapterFlops / 1e12, rateWithAdapters, 100 * rateWithAdapters / peak))
            var row: [String: Any] = [
                "placement": placement.rawValue, "layers": layers, "seconds": seconds,
                "examples_per_second": examplesPerSecond, "real_tokens_per_second": tokensPerSecond,
                "padding_percent": padding, "test_accuracy": accuracy, "epoch_mean_losses": report.epochMeanLosses,
                "flop_floor": floor, "floor_gflops": rate, "share_of_peak": rate / peak,
                "adapter_flops": adapterFlops, "share_of_peak_with_adapters": rateWithAdapters / peak,
            ]
            if let cache = report.cache {
                row["cache"] = ["layer": cache.layer, "examples": cache.exampleCount, "bytes": cache.byteCount,
                                "hits": cache.hitCount, "misses": cache.missCount]
                result.say(String(format: "  activation cache: inputs of layer %d, %d examples, %.1f MB (budget %.0f MB), %d hits, %d misses",
                             cache.layer, cache.exampleCount, Double(cache.byteCount) / 1e6, Double(cache.byteBudget) / 1e6,
                             cache.hitCount, cache.missCount))
            }
            rows.append(row)
        }
        result.record("blas_core", BLASRuntime.coreName)
        result.record("threads", threads)
        result.record("precision", precision.rawValue)
        result.record("load_average", load.averages)
        result.record("peak_gflops", peak)
        result.record("placements", rows)
        try result.finish()
    }
}
