import ArgumentParser
import CommandSupport
import Foundation
import Models
import Store
import Training

/// The hyperparameter options `lethe train` and `lethe finetune` share, and how they become a
/// run's `TrainingSettings` (RUN/train.json): saved on the first call, checked on later ones.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Epochs per stage, 1…1000. Default 3.")
    var epochs: Int?
    @Option(help: "LoRA rank r, 1…256 and at most the model's width (384 for MiniLM). Default 16.")
    var rank: Int?
    @Option(help: "LoRA alpha (scale alpha/r), 0.001…10000. Default 32.")
    var alpha: Float?
    @Option(parsing: .upToNextOption,
            help: "LoRA target modules: q k v o up down (or query key value …). Default: query value.")
    var targets: [String] = []
    @Option(help: "Peak learning rate (warmup then linear decay), 1e-8…1. Default 1e-3.")
    var lr: Float?
    @Option(help: "Examples per batch, 1…4096. Default 16.")
    var batchSize: Int?
    @Option(help: "What the model reads: text, or text+lead (headline and first paragraph). Default text.")
    var textField: String?
    @Option(help: "Maximum tokens per example, 4…512 (the encoder's positions). Default 128.")
    var maxTokens: Int?
    @Option(help: "Run seed; every stage's seed derives from it, the shard and the stage key. Default 0.")
    var seed: UInt64?
    @Option(help: "Threads, 1…256 (the trained tensors are the same for any thread count; the count is recorded). Default 1.")
    var threads: Int?
    @Option(help: "Base encoder directory. Default Checkpoints/base/all-MiniLM-L6-v2.")
    var model: String?

    /// The run's saved settings, or new ones from the options. A saved run refuses options
    /// that contradict its settings, naming the field. New settings are checked — by
    /// `TrainingSettings.validate` and by `check` (the caller's own checks, e.g. that the
    /// blocks fit the model) — and only then saved to train.json, so a rejected option leaves
    /// no file behind and the corrected command starts clean.
    func resolveSettings(layout: RunLayout, strategy: TrainingStrategy?, layersPerBlock: Int?,
                         check: (TrainingSettings) throws -> Void = { _ in }) throws -> TrainingSettings {
        let targetNames = try targets.map(Self.moduleName)
        func apply(to settings: inout TrainingSettings) {
            if let strategy { settings.strategy = strategy }
            if let epochs { settings.epochs = epochs }
            if let rank { settings.rank = rank }
            if let alpha { settings.alpha = alpha }
            if !targetNames.isEmpty { settings.targets = targetNames }
            if let layersPerBlock { settings.layersPerBlock = layersPerBlock }
            if let lr { settings.learningRate = lr }
            if let batchSize { settings.batchSize = batchSize }
            if let textField { settings.textField = textField }
            if let maxTokens { settings.maxTokenCount = maxTokens }
            if let seed { settings.seed = seed }
            if let threads { settings.threadCount = threads }
        }
        if FileManager.default.fileExists(atPath: layout.settingsURL.path) {
            let saved = try TrainingSettings.load(from: layout.settingsURL)
            var given = saved
            apply(to: &given)
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
        let modelDirectory = model ?? "Checkpoints/base/all-MiniLM-L6-v2"
        let weights = URL(fileURLWithPath: modelDirectory).appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw ValidationError("\(weights.path) is missing: check --model (run `make setup` for the default model).")
        }
        var settings = TrainingSettings(baseModel: TrainingSettings.storedModelPath(modelDirectory, run: layout.directory),
                                        baseModelSHA256: try FileDigest.sha256(of: weights).hex)
        apply(to: &settings)
        try settings.validate()
        try check(settings)
        try settings.save(to: layout.settingsURL)
        return settings
    }

    /// Target names (q, k, v, o, up, down, query, value, … or module paths) → module paths.
    static func moduleName(_ name: String) throws -> String {
        if let target = LoRATarget.parse(name) { return target.rawValue }
        throw ValidationError("--targets \(name): use q, k, v, o, up, down (or query, key, value, …).")
    }
}
