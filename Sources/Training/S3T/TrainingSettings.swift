import Foundation
import Kernels
import Models
import Store
import Support

/// What a run trains adapters on.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    /// A sentence encoder with a classification head (MiniLM; labelled data).
    case encoder
    /// A Llama-architecture decoder (SmolLM2, from a GGUF file; text data, next-token loss, no head).
    case decoder
}

/// The hyperparameters of a run, saved as `DIR/train.json` when a run is first trained so that
/// resumption, retraining after deletions and replays use exactly the same ones.
///
/// Keys are snake_case; LoRA keys follow PEFT (`r`, `lora_alpha`, `target_modules`).
public struct TrainingSettings: Codable, Sendable, Equatable {
    public var strategy: TrainingStrategy
    public var epochs: Int
    public var rank: Int
    public var alpha: Float
    public var useRSLoRA: Bool
    /// Module paths inside `encoder.layer.N.` (e.g. "attention.self.query"), or a decoder's
    /// projection names (e.g. "q_proj").
    public var targets: [String]
    public var layersPerBlock: Int
    public var learningRate: Float
    public var warmupFraction: Float
    public var weightDecay: Float
    public var gradientClipNorm: Float
    public var batchSize: Int
    public var maxTokenCount: Int
    /// What the model reads of an example: "text", or "text+lead" (headline and first paragraph).
    public var textField: String
    public var seed: UInt64
    public var threadCount: Int
    /// Directory of the base encoder (model.safetensors, vocab.txt, config.json), or the base
    /// decoder's GGUF file: absolute, or relative to the run directory (`baseModelDirectory(run:)`).
    public var baseModel: String
    public var baseModelSHA256: String
    /// SHA-256 of an encoder's config.json and vocab.txt (nil in runs made before they were
    /// recorded): with the weights' hash they pin the whole base model, since a changed layer
    /// norm epsilon or vocabulary changes every answer as surely as a changed weight.
    public var baseModelConfigSHA256: String?
    public var baseModelVocabularySHA256: String?
    /// The arithmetic of the frozen products; stored only when not float32, so float32 runs'
    /// settings (and the stage files that record them) read as before precisions existed.
    var storedPrecision: Precision?
    /// The model kind; stored only for decoders, so encoder runs' settings read as before.
    var storedModelKind: ModelKind?

    /// What the run trains adapters on.
    public var modelKind: ModelKind {
        get { storedModelKind ?? .encoder }
        set { storedModelKind = newValue == .encoder ? nil : newValue }
    }

    /// The arithmetic of the frozen products (every stage of a run uses the same).
    public var precision: Precision {
        get { storedPrecision ?? .fp32 }
        set { storedPrecision = newValue == .fp32 ? nil : newValue }
    }

    enum CodingKeys: String, CodingKey {
        case strategy, epochs, rank = "r", alpha = "lora_alpha", useRSLoRA = "use_rslora"
        case targets = "target_modules", layersPerBlock = "layers_per_block"
        case learningRate = "learning_rate", warmupFraction = "warmup_fraction"
        case weightDecay = "weight_decay", gradientClipNorm = "gradient_clip_norm"
        case batchSize = "batch_size", maxTokenCount = "max_tokens", textField = "text_field"
        case seed, threadCount = "threads", baseModel = "base_model", baseModelSHA256 = "base_model_sha256"
        case storedPrecision = "precision", storedModelKind = "model_kind"
        case baseModelConfigSHA256 = "base_model_config_sha256", baseModelVocabularySHA256 = "base_model_vocab_sha256"
    }

    public init(strategy: TrainingStrategy = .s3t, epochs: Int = 3, rank: Int = 16, alpha: Float = 32,
                useRSLoRA: Bool = false, targets: [String] = ["attention.self.query", "attention.self.value"],
                layersPerBlock: Int = 2, learningRate: Float = 1e-3, warmupFraction: Float = 0.06,
                weightDecay: Float = 0.01, gradientClipNorm: Float = 1, batchSize: Int = 16,
                maxTokenCount: Int = 128, textField: String = "text", seed: UInt64 = 0,
                threadCount: Int = 1, baseModel: String, baseModelSHA256: String, precision: Precision = .fp32) {
        self.strategy = strategy; self.epochs = epochs; self.rank = rank; self.alpha = alpha
        self.useRSLoRA = useRSLoRA; self.targets = targets; self.layersPerBlock = layersPerBlock
        self.learningRate = learningRate; self.warmupFraction = warmupFraction
        self.weightDecay = weightDecay; self.gradientClipNorm = gradientClipNorm
        self.batchSize = batchSize; self.maxTokenCount = maxTokenCount; self.textField = textField
        self.seed = seed; self.threadCount = threadCount; self.baseModel = baseModel
        self.baseModelSHA256 = baseModelSHA256
        self.precision = precision
    }

    /// The documented bounds of each setting (`lethe train --help` prints them).
    public enum Limits {
        public static let epochs = 1...1_000
        public static let rank = 1...256
        public static let alpha: ClosedRange<Float> = 1e-3...1e4
        public static let layersPerBlock = 1...64
        public static let learningRate: ClosedRange<Float> = 1e-8...1
        public static let batchSize = 1...4_096
        public static let maxTokenCount = 4...512
        public static let threadCount = 1...256
    }

    /// Rejects values no training can use, naming the field (as its `lethe train` option, without
    /// the dashes), the value and the allowed range.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ reason: String) throws {
            if !ok { throw TrainingError.invalidValue(field: field, value: "\(value)", reason: reason) }
        }
        func within<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ field: String) throws {
            try requireWithin(value, range) { TrainingError.invalidValue(field: field, value: "\($0)", reason: "must be in \($1)") }
        }
        try within(epochs, Limits.epochs, "epochs")
        try within(rank, Limits.rank, "rank")
        try within(alpha, Limits.alpha, "alpha")   // a NaN is outside every range
        try check(!targets.isEmpty, "targets", targets, "name at least one module")
        try within(layersPerBlock, Limits.layersPerBlock, "layers-per-block")
        try within(learningRate, Limits.learningRate, "lr")
        try check(warmupFraction >= 0 && warmupFraction < 1, "warmup", warmupFraction, "must be in [0, 1)")
        try check(weightDecay.isFinite && weightDecay >= 0, "weight-decay", weightDecay, "must be finite and ≥ 0")
        try check(gradientClipNorm.isFinite && gradientClipNorm > 0, "gradient-clip", gradientClipNorm,
                  "must be finite and positive")
        try within(batchSize, Limits.batchSize, "batch-size")
        try within(maxTokenCount, Limits.maxTokenCount, "max-tokens")
        try check(["text", "text+lead"].contains(textField), "text-field", textField, "use text or text+lead")
        if modelKind == .decoder, let bad = targets.first(where: { LlamaProjection(rawValue: $0) == nil }) {
            try check(false, "targets", bad, "a decoder's modules are "
                      + LlamaProjection.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if modelKind == .encoder, let bad = targets.first(where: { LoRATarget(rawValue: $0) == nil }) {
            try check(false, "targets", bad, "known modules are " + LoRATarget.allCases.map(\.rawValue).joined(separator: ", "))
        }
        try within(threadCount, Limits.threadCount, "threads")
    }

    /// The base model's hashes as a saved train.json must record them: 64 lowercase hex digits
    /// each (a damaged train.json is then said to be damaged, not blamed on the model's files).
    func validateRecordedHashes() throws {
        for (field, value) in [("base_model_sha256", baseModelSHA256 as String?),
                               ("base_model_config_sha256", baseModelConfigSHA256),
                               ("base_model_vocab_sha256", baseModelVocabularySHA256)] {
            if let value, !Hex.isSHA256(value) {
                throw TrainingError.invalidValue(field: field, value: value, reason: "is no SHA-256 (64 lowercase hex digits)")
            }
        }
    }

    /// The base model's directory: `baseModel` itself when absolute, else relative to `run`.
    /// Settings written before paths were stored relative to the run named a path relative to
    /// the working directory; such a path is used when it exists there and not under the run.
    public func baseModelDirectory(run: URL) -> URL {
        if baseModel.hasPrefix("/") { return URL(fileURLWithPath: baseModel) }
        if modelKind == .decoder { return run.appendingPathComponent(baseModel).standardizedFileURL }
        let underRun = run.appendingPathComponent(baseModel).standardizedFileURL
        let legacy = URL(fileURLWithPath: baseModel).standardizedFileURL
        let marker = "model.safetensors"
        if !FileManager.default.fileExists(atPath: underRun.appendingPathComponent(marker).path),
           FileManager.default.fileExists(atPath: legacy.appendingPathComponent(marker).path) {
            return legacy
        }
        return underRun
    }

    /// `directory` as `baseModel` stores it for a run in `run`: relative to the run directory
    /// when `directory` was given relative and both share a directory below the root (so a
    /// repository moves with its runs), else absolute.
    public static func storedModelPath(_ directory: String, run: URL) -> String {
        RunRelativePath.recorded(directory, run: run)
    }

    /// Canonical JSON (sorted keys, no whitespace): what stage checkpoints record.
    public func canonicalJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Why train.json is missing, as its readers say it: a run never trained, or one whose
    /// stages outlived the file (which only a backup can give back: the stages need its settings).
    public static func missingReason(run: URL) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: run.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "there is no run directory \(run.path); check the path (`lethe plan --run` makes one)"
        }
        if FileManager.default.fileExists(atPath: run.appendingPathComponent("adapter.h5").path),
           !FileManager.default.fileExists(atPath: RunLayout(directory: run).planURL.path) {
            return "it is missing: \(run.path) holds an adapter (made by `lethe unlearn --out`), not a run; "
                + "give it as --adapter to the commands that take one (perplexity, eval-forget)"
        }
        guard let trained = RunLayout(directory: run).anyStageFile() else {
            return "it is missing: the run was never trained; run `lethe train --run \(run.path)` first (or, for a "
                + "model `lethe finetune` was making when it stopped, the same finetune command again)"
        }
        return "it is missing, but the run has trained stages (\(trained.path)): restore it from a backup of the run "
            + "(training on with other settings would mix them), or train into a new run"
    }

    public static func load(from url: URL) throws -> TrainingSettings {
        try RegularFile.check(url.path)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
                throw TrainingError.fileInvalid(file: url.path, reason: "cannot be read (" + (isDirectory.boolValue
                    ? "a directory, not a file" : "no permission to read it") + ")")
            }
            throw TrainingError.fileInvalid(file: url.path, reason: missingReason(run: url.deletingLastPathComponent()))
        }
        let settings: TrainingSettings
        do { settings = try JSONDecoder().decode(TrainingSettings.self, from: data) } catch {
            throw TrainingError.fileInvalid(file: url.path, reason: "not readable training settings ("
                                            + DecodingError.fieldDescription(error, data: data) + "); restore it or train into a new run")
        }
        do { try settings.validate(); try settings.validateRecordedHashes() } catch {
            throw TrainingError.fileInvalid(file: url.path, reason: "holds settings no training can use (\(error))")
        }
        return settings
    }

    /// Writes the settings atomically (pretty JSON).
    public func save(to url: URL) throws {
        try AtomicFile.write(try encoded(), to: url)
    }

    /// Saves the settings only if `url` does not exist yet; false when another process saved
    /// its settings there first (the caller then checks its own against them).
    public func saveIfAbsent(to url: URL) throws -> Bool {
        try AtomicFile.createIfAbsent(try encoded(), at: url)
    }

    private func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The first field in which the settings a stage file records (`canonicalJSON()` of those
    /// that trained it) differ from these, as (field, recorded, these); nil when they agree.
    /// JSON this version cannot read as settings differs as a whole ("hyperparameters").
    public func firstDifference(fromRecorded json: String) -> (String, String, String)? {
        guard let recorded = try? JSONDecoder().decode(TrainingSettings.self, from: Data(json.utf8)) else {
            return ("hyperparameters", json, (try? canonicalJSON()) ?? "")
        }
        return recorded.firstDifference(from: self)
    }

    /// The values of the fields `canonicalJSON()` leaves out at their defaults.
    static let unwrittenDefaults = [CodingKeys.storedPrecision.rawValue: Precision.fp32.rawValue,
                                    CodingKeys.storedModelKind.rawValue: ModelKind.encoder.rawValue]

    /// The first field in which `other` differs from these settings, as (field, mine, theirs);
    /// `base_model` (a path) is not compared, its hashes are.
    public func firstDifference(from other: TrainingSettings) -> (String, String, String)? {
        let mine = (try? JSONSerialization.jsonObject(with: Data(canonicalJSON().utf8))) as? [String: Any] ?? [:]
        let theirs = (try? JSONSerialization.jsonObject(with: Data(other.canonicalJSON().utf8))) as? [String: Any] ?? [:]
        // Both sides' keys: a field left at its default is not written (precision, model_kind).
        // Where the base model lies is no setting: its hashes identify it, so a run whose model
        // moved may name the new place in train.json.
        for key in Set(mine.keys).union(theirs.keys).sorted() where key != CodingKeys.baseModel.rawValue {
            let absent = Self.unwrittenDefaults[key] ?? "nil"
            let a = "\(mine[key] ?? absent)", b = "\(theirs[key] ?? absent)"
            if a != b { return (key, a, b) }
        }
        return nil
    }
}
