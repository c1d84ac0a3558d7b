import ArgumentParser
import Crypto
import Foundation
import Models
import Training

/// The hyperparameter options `lethe train` and `lethe finetune` share, and how they become a
/// run's `TrainingSettings` (RUN/train.json): saved on the first call, checked on later ones.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Epochs per stage. Default 3.")
    var epochs: Int?
    @Option(help: "LoRA rank r. Default 16.")
    var rank: Int?
    @Option(help: "LoRA alpha (scale alpha/r). Default 32.")
    var alpha: Float?
    @Option(parsing: .upToNextOption,
            help: "LoRA target modules: q k v o up down (or query key value …). Default: query value.")
    var targets: [String] = []
    @Option(help: "Peak learning rate (warmup then linear decay). Default 1e-3.")
    var lr: Float?
    @Option(help: "Examples per batch. Default 16.")
    var batchSize: Int?
    @Option(help: "What the model reads: text, or text+lead (headline and first paragraph). Default text.")
    var textField: String?
    @Option(help: "Maximum tokens per example. Default 128.")
    var maxTokens: Int?
    @Option(help: "Run seed; every stage's seed derives from it, the shard and the stage key. Default 0.")
    var seed: UInt64?
    @Option(help: "Threads (the trained tensors are the same for any thread count; the count is recorded). Default 1.")
    var threads: Int?
    @Option(help: "Base encoder directory. Default Checkpoints/base/all-MiniLM-L6-v2.")
    var model: String?

    /// The run's saved settings, or new ones from the options (saved to train.json). A saved
    /// run refuses options that contradict its settings, naming the field.
    func resolveSettings(layout: RunLayout, strategy: TrainingStrategy?, layersPerBlock: Int?) throws -> TrainingSettings {
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
            if let model { given.baseModel = model }
            if let (field, old, new) = saved.firstDifference(from: given) {
                throw TrainingError.settingsConflict(file: layout.settingsURL.path, field: field, saved: old, given: new)
            }
            return saved
        }
        let modelDirectory = model ?? "Checkpoints/base/all-MiniLM-L6-v2"
        var settings = TrainingSettings(baseModel: modelDirectory,
                                        baseModelSHA256: try Self.sha256(ofFile: modelDirectory + "/model.safetensors"))
        apply(to: &settings)
        try settings.validate()
        try settings.save(to: layout.settingsURL)
        return settings
    }

    /// Target names (q, k, v, o, up, down, query, value, … or module paths) → module paths.
    static func moduleName(_ name: String) throws -> String {
        if let target = LoRATarget.parse(name) { return target.rawValue }
        throw ValidationError("--targets \(name): use q, k, v, o, up, down (or query, key, value, …).")
    }

    /// SHA-256 of a file, streamed.
    static func sha256(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ValidationError("cannot read \(path); check --model (run `make setup` for the default model).")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
