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
            help: "LoRA target modules: q k v o up down (or query key value …); in a decoder run (`lethe train` on text data) also gate (or q_proj … down_proj). Default: q v.")
    var targets: [String] = []
    @Option(help: "Peak learning rate (warmup then linear decay), \(rangeText(Limits.learningRate)). Default 1e-3.")
    var lr: Float?
    @Option(help: "Examples per batch, \(rangeText(Limits.batchSize)). Default 16.")
    var batchSize: Int?
    @Option(help: "What the model reads: text, or text+lead (headline and first paragraph). Default text.")
    var textField: String?
    @Option(help: "Maximum tokens per example, \(rangeText(Limits.maxTokenCount)) (the encoder's positions); a decoder's texts are cut into chunks of this many tokens. Default 128.")
    var maxTokens: Int?
    @Option(help: "Run seed, \(CommonBounds.seedText); every stage's seed derives from it, the shard and the stage key. Default 0.")
    var seed: UInt64?
    @Option(help: "Threads, \(rangeText(Limits.threadCount)) (each batch is trained as that many groups of sequences, one per thread, so the count is part of the run's settings: the same count gives the same bits). Default \(CommonBounds.defaultThreads).")
    var threads: Int?
    @Flag(inversion: .prefixedNo, help: "rsLoRA: scale the adapters by alpha/√r instead of alpha/r. Default off.")
    var rslora: Bool?
    @Option(help: "Base model: an encoder directory; `lethe train` on a plan of text data takes a decoder's GGUF file instead. Default Checkpoints/base/all-MiniLM-L6-v2 (for text data Checkpoints/base/SmolLM2-135M-Instruct/model.gguf).")
    var model: String?
    @Option(help: "Arithmetic of the frozen base weights' products: fp32, or bf16 (weights rounded to bfloat16 once, float32 accumulation; adapters, gradients and optimiser state stay float32). Recorded in train.json and every stage; a run never mixes precisions. Default fp32.")
    var precision: Precision?

    /// Checks every given option — target names and `TrainingSettings.validate`'s bounds —
    /// before any work, so a rejected value is a usage error (exit 64) naming the option, the
    /// value and the range, and nothing (no plan, no train.json) is written.
    func validate() throws {
        // The model kind is known only with the plan: a target name is checked against both.
        for name in targets where LoRATarget.parse(name) == nil && Self.projection(name) == nil {
            throw ValidationError("--targets \(name): use q, k, v, o, up, down (a decoder's also gate), or module names.")
        }
        do {
            var probe = TrainingSettings(baseModel: "", baseModelSHA256: "")
            if targets.contains(where: { LoRATarget.parse($0) == nil }) { probe.modelKind = .decoder }
            try probe.applying(self, strategy: nil, layersPerBlock: nil).validate()
        } catch let TrainingError.invalidValue(field, value, reason) {
            throw ValidationError("--\(field) \(value): \(reason).")
        }
    }

    /// The run's saved settings, or new ones from the options. A saved run refuses options
    /// that contradict its settings, naming the field. New settings are checked — by
    /// `TrainingSettings.validate` and by `check` (the caller's own checks, e.g. that the
    /// blocks fit the model and that the data is there) — and only then saved to train.json,
    /// so a rejected option leaves no file behind and the corrected command starts clean.
    func resolveSettings(layout: RunLayout, strategy: TrainingStrategy?, layersPerBlock: Int?, textData: Bool = false,
                         check: (TrainingSettings) throws -> Void = { _ in },
                         created: () -> Void = {}) throws -> TrainingSettings {
        if FileManager.default.fileExists(atPath: layout.settingsURL.path) {
            return try savedSettings(layout: layout, strategy: strategy, layersPerBlock: layersPerBlock)
        }
        // Without train.json, stages already trained would be resumed and served beside stages
        // trained with whatever settings these options give.
        if layout.anyStageFile() != nil {
            throw TrainingError.fileInvalid(file: layout.settingsURL.path,
                                            reason: TrainingSettings.missingReason(run: layout.directory))
        }
        // A GGUF file, or text data without --model, makes a decoder run.
        let kind: ModelKind = model.map { $0.hasSuffix(".gguf") } ?? textData ? .decoder : .encoder
        if kind == .decoder && !textData {
            throw ValidationError("--model \(model ?? ""): a decoder trains on text data, but the plan's data is labelled; "
                                  + "give an encoder directory, or plan text data (JSON Lines without labels).")
        }
        if kind == .encoder && textData {
            throw ValidationError("the plan's data has no labels (text data): a classifier cannot train on it; give a "
                                  + "decoder's GGUF file with --model, or leave --model out for \(Self.defaultDecoder).")
        }
        let chosen = model ?? (kind == .decoder ? Self.defaultDecoder : Self.defaultModel)
        let weights = try Self.weightsFile(chosen, kind: kind)
        var fresh = TrainingSettings(threadCount: CommonBounds.defaultThreads,
                                     baseModel: TrainingSettings.storedModelPath(chosen, run: layout.directory),
                                     baseModelSHA256: try FileDigest.sha256(of: weights).hex)
        if kind == .decoder {
            fresh.modelKind = .decoder
            fresh.targets = [LlamaProjection.query.rawValue, LlamaProjection.value.rawValue]
            fresh.layersPerBlock = 1
        }
        var settings = try fresh.applying(self, strategy: strategy, layersPerBlock: layersPerBlock)
        try settings.validate()
        try check(settings)
        try settings.pinBaseModelFiles(settings.baseModelDirectory(run: layout.directory))
        // A model that cannot load refuses this call now, before train.json names it.
        switch settings.modelKind {
        case .encoder: _ = try settings.loadBaseEncoder(run: layout.directory, precision: .fp32)
        case .decoder: _ = try settings.loadBaseDecoder(run: layout.directory, precision: .fp32)
        }
        // Two processes starting on a new run both get here: the first to create train.json
        // wins, and the other is held to its settings like any later call.
        guard try settings.saveIfAbsent(to: layout.settingsURL) else {
            return try savedSettings(layout: layout, strategy: strategy, layersPerBlock: layersPerBlock)
        }
        created()
        return settings
    }

    /// The run's saved settings, refused with the first field these options contradict.
    private func savedSettings(layout: RunLayout, strategy: TrainingStrategy?,
                               layersPerBlock: Int?) throws -> TrainingSettings {
        let saved = try TrainingSettings.load(from: layout.settingsURL)
        let given = try saved.applying(self, strategy: strategy, layersPerBlock: layersPerBlock)
        if let (field, old, new) = saved.firstDifference(from: given) {
            throw TrainingError.settingsConflict(file: layout.settingsURL.path, field: field, saved: old, given: new)
        }
        // The same directory by another path (a symbolic link on either side) is the same model.
        let savedModel = saved.baseModelDirectory(run: layout.directory).standardizedFileURL.path
        if let model, URL(fileURLWithPath: model).resolvingSymlinksInPath().path
            != URL(fileURLWithPath: savedModel).resolvingSymlinksInPath().path {
            throw TrainingError.settingsConflict(file: layout.settingsURL.path, field: "base_model", saved: savedModel,
                                                 given: model)
        }
        try saved.requireMatchingStages(layout)
        return saved
    }

    static let defaultModel = "Checkpoints/base/all-MiniLM-L6-v2"
    static let defaultDecoder = "Checkpoints/base/SmolLM2-135M-Instruct/model.gguf"

    /// The weights of `--model` (or the default model), refused with what to do when missing:
    /// `model.safetensors` in an encoder's directory, a decoder's GGUF file itself.
    static func weightsFile(_ model: String?, kind: ModelKind = .encoder) throws -> URL {
        let path = model ?? (kind == .decoder ? defaultDecoder : defaultModel)
        let weights = kind == .decoder ? URL(fileURLWithPath: path)
                                       : URL(fileURLWithPath: path).appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw ValidationError("--model: \(weights.path) is missing; check --model (run `make setup` for the default model).")
        }
        return weights
    }

    /// A decoder's projection for a command-line name (q, k, v, o, gate, up, down or q_proj …).
    static func projection(_ name: String) -> LlamaProjection? {
        switch name {
        case "q", "query": return .query
        case "k", "key": return .key
        case "v", "value": return .value
        case "o", "output": return .output
        case "gate": return .gate
        case "up": return .up
        case "down": return .down
        default: return LlamaProjection(rawValue: name)
        }
    }

    /// Target names (q, k, v, o, up, down, query, value, … or module paths) → module paths of
    /// the run's model kind.
    static func moduleName(_ name: String, kind: ModelKind = .encoder) throws -> String {
        switch kind {
        case .encoder: if let target = LoRATarget.parse(name) { return target.rawValue }
        case .decoder: if let target = projection(name) { return target.rawValue }
        }
        throw ValidationError("--targets \(name): use q, k, v, o, up, down"
                              + (kind == .decoder ? ", gate (or q_proj … down_proj)." : " (or query, key, value, …)."))
    }
}

extension TrainingSettings {
    /// These settings with every option `options` gives (and `strategy`, `layersPerBlock`
    /// when given) put in; unknown target names are refused.
    func applying(_ options: TrainingOptions, strategy: TrainingStrategy?, layersPerBlock: Int?) throws -> TrainingSettings {
        var settings = self
        // A module named twice (`--targets q --targets query`) is one target, in first-named order.
        var seen = Set<String>()
        let targetNames = try options.targets.map { try TrainingOptions.moduleName($0, kind: modelKind) }
            .filter { seen.insert($0).inserted }
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
