import ArgumentParser
import CommandSupport
import Foundation
import Kernels
import Models
import Store
import Support
import Training

/// The hyperparameter options `lethe train` and `lethe finetune` share, and how they become a
/// run's `TrainingSettings` (RUN/train.json): saved on the first call, checked on later ones.
struct TrainingOptions: ParsableArguments {
    typealias Limits = TrainingSettings.Limits

    @Option(help: "Epochs per stage, \(rangeText(Limits.epochs)). Default 3.")
    var epochs: Int?
    @Option(help: "LoRA rank r, \(rangeText(Limits.rank)) and at most the model's width (384 for MiniLM). Default 16.")
    var rank: Int?
    @Option(help: "LoRA alpha (scale alpha/r), \(rangeText(Limits.alpha)). Default 32.")
    var alpha: Float?
    @Option(parsing: .upToNextOption,
            help: "LoRA target modules: q k v o up down (or query key value …). Default: query value.")
    var targets: [String] = []
    @Option(help: "Peak learning rate (warmup then linear decay), \(rangeText(Limits.learningRate)). Default 1e-3.")
    var lr: Float?
    @Option(help: "Examples per batch, \(rangeText(Limits.batchSize)). Default 16.")
    var batchSize: Int?
    @Option(help: "What the model reads: text, or text+lead (headline and first paragraph). Default text.")
    var textField: String?
    @Option(help: "Maximum tokens per example, \(rangeText(Limits.maxTokenCount)) (the encoder's positions). Default 128.")
    var maxTokens: Int?
    @Option(help: "Run seed, \(CommonBounds.seedText); every stage's seed derives from it, the shard and the stage key. Default 0.")
    var seed: UInt64?
    @Option(help: "Threads, \(rangeText(Limits.threadCount)) (the trained tensors are the same for any thread count; the count is recorded). Default \(CommonBounds.defaultThreads).")
    var threads: Int?
    @Flag(inversion: .prefixedNo, help: "rsLoRA: scale the adapters by alpha/√r instead of alpha/r. Default off.")
    var rslora: Bool?
    @Option(help: "Base encoder directory. Default Checkpoints/base/all-MiniLM-L6-v2.")
    var model: String?
    @Option(help: "Arithmetic of the frozen base weights' products: fp32, or bf16 (weights rounded to bfloat16 and packed once, float32 accumulation; adapters, gradients and optimiser state stay float32). Recorded in train.json and every stage; a run never mixes precisions. Default fp32.")
    var precision: Precision?

    /// Checks every given option — target names and `TrainingSettings.validate`'s bounds —
    /// before any work, so a rejected value is a usage error (exit 64) naming the option, the
    /// value and the range, and nothing (no plan, no train.json) is written.
    func validate() throws {
        do {
            try TrainingSettings(baseModel: "", baseModelSHA256: "").applying(self, strategy: nil, layersPerBlock: nil)
                .validate()
        } catch let TrainingError.invalidValue(field, value, reason) {
            throw ValidationError("--\(field) \(value): \(reason).")
        }
    }

    /// The run's saved settings, or new ones from the options. A saved run refuses options
    /// that contradict its settings, naming the field. New settings are checked — by
    /// `TrainingSettings.validate` and by `check` (the caller's own checks, e.g. that the
    /// blocks fit the model and that the data is there) — and only then saved to train.json,
    /// so a rejected option leaves no file behind and the corrected command starts clean.
    func resolveSettings(layout: RunLayout, strategy: TrainingStrategy?, layersPerBlock: Int?,
                         check: (TrainingSettings) throws -> Void = { _ in }) throws -> TrainingSettings {
        if FileManager.default.fileExists(atPath: layout.settingsURL.path) {
            let saved = try TrainingSettings.load(from: layout.settingsURL)
            let given = try saved.applying(self, strategy: strategy, layersPerBlock: layersPerBlock)
            if let (field, old, new) = saved.firstDifference(from: given) {
                throw TrainingError.settingsConflict(file: layout.settingsURL.path, field: field, saved: old, given: new)
            }
            let savedModel = saved.baseModelDirectory(run: layout.directory).standardizedFileURL.path
            if let model, URL(fileURLWithPath: model).standardizedFileURL.path != savedModel {
                throw TrainingError.settingsConflict(file: layout.settingsURL.path, field: "base_model", saved: savedModel,
                                                     given: model)
            }
            return saved
        }
        let weights = try Self.weightsFile(model)
        let settings = try TrainingSettings(threadCount: CommonBounds.defaultThreads,
                                            baseModel: TrainingSettings.storedModelPath(model ?? Self.defaultModel,
                                                                                        run: layout.directory),
                                            baseModelSHA256: try FileDigest.sha256(of: weights).hex)
            .applying(self, strategy: strategy, layersPerBlock: layersPerBlock)
        try settings.validate()
        try check(settings)
        try settings.save(to: layout.settingsURL)
        return settings
    }

    static let defaultModel = "Checkpoints/base/all-MiniLM-L6-v2"

    /// The weights of `--model` (or the default model), refused with what to do when missing.
    static func weightsFile(_ model: String?) throws -> URL {
        let weights = URL(fileURLWithPath: model ?? defaultModel).appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw ValidationError("--model: \(weights.path) is missing; check --model (run `make setup` for the default model).")
        }
        return weights
    }

    /// Target names (q, k, v, o, up, down, query, value, … or module paths) → module paths.
    static func moduleName(_ name: String) throws -> String {
        if let target = LoRATarget.parse(name) { return target.rawValue }
        throw ValidationError("--targets \(name): use q, k, v, o, up, down (or query, key, value, …).")
    }
}

extension TrainingSettings {
    /// These settings with every option `options` gives (and `strategy`, `layersPerBlock`
    /// when given) put in; unknown target names are refused.
    func applying(_ options: TrainingOptions, strategy: TrainingStrategy?, layersPerBlock: Int?) throws -> TrainingSettings {
        var settings = self
        let targetNames = try options.targets.map(TrainingOptions.moduleName)
        if let strategy { settings.strategy = strategy }
        if let epochs = options.epochs { settings.epochs = epochs }
        if let rank = options.rank { settings.rank = rank }
        if let alpha = options.alpha { settings.alpha = alpha }
        if let rslora = options.rslora { settings.useRSLoRA = rslora }
        if !targetNames.isEmpty { settings.targets = targetNames }
        if let layersPerBlock { settings.layersPerBlock = layersPerBlock }
        if let lr = options.lr { settings.learningRate = lr }
        if let batchSize = options.batchSize { settings.batchSize = batchSize }
        if let textField = options.textField { settings.textField = textField }
        if let maxTokens = options.maxTokens { settings.maxTokenCount = maxTokens }
        if let seed = options.seed { settings.seed = seed }
        if let threads = options.threads { settings.threadCount = threads }
        if let precision = options.precision { settings.precision = precision }
        return settings
    }
}
