import Foundation
import Store

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
    /// Module paths inside `encoder.layer.N.` (e.g. "attention.self.query").
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
    /// Directory of the base encoder (model.safetensors, vocab.txt, config.json).
    public var baseModel: String
    public var baseModelSHA256: String

    enum CodingKeys: String, CodingKey {
        case strategy, epochs, rank = "r", alpha = "lora_alpha", useRSLoRA = "use_rslora"
        case targets = "target_modules", layersPerBlock = "layers_per_block"
        case learningRate = "learning_rate", warmupFraction = "warmup_fraction"
        case weightDecay = "weight_decay", gradientClipNorm = "gradient_clip_norm"
        case batchSize = "batch_size", maxTokenCount = "max_tokens", textField = "text_field"
        case seed, threadCount = "threads", baseModel = "base_model", baseModelSHA256 = "base_model_sha256"
    }

    public init(strategy: TrainingStrategy = .s3t, epochs: Int = 3, rank: Int = 16, alpha: Float = 32,
                useRSLoRA: Bool = false, targets: [String] = ["attention.self.query", "attention.self.value"],
                layersPerBlock: Int = 2, learningRate: Float = 1e-3, warmupFraction: Float = 0.06,
                weightDecay: Float = 0.01, gradientClipNorm: Float = 1, batchSize: Int = 16,
                maxTokenCount: Int = 128, textField: String = "text", seed: UInt64 = 0,
                threadCount: Int = 1, baseModel: String, baseModelSHA256: String) {
        self.strategy = strategy; self.epochs = epochs; self.rank = rank; self.alpha = alpha
        self.useRSLoRA = useRSLoRA; self.targets = targets; self.layersPerBlock = layersPerBlock
        self.learningRate = learningRate; self.warmupFraction = warmupFraction
        self.weightDecay = weightDecay; self.gradientClipNorm = gradientClipNorm
        self.batchSize = batchSize; self.maxTokenCount = maxTokenCount; self.textField = textField
        self.seed = seed; self.threadCount = threadCount; self.baseModel = baseModel
        self.baseModelSHA256 = baseModelSHA256
    }

    /// Rejects values no training can use, naming the field.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ reason: String) throws {
            if !ok { throw TrainingError.invalidValue(field: field, value: "\(value)", reason: reason) }
        }
        try check(epochs >= 1, "epochs", epochs, "train at least one epoch")
        try check(rank >= 1, "rank", rank, "the LoRA rank must be at least 1")
        try check(alpha > 0, "alpha", alpha, "must be positive")
        try check(!targets.isEmpty, "targets", targets, "name at least one module")
        try check(layersPerBlock >= 1, "layers-per-block", layersPerBlock, "at least one layer per block")
        try check(learningRate > 0, "lr", learningRate, "must be positive")
        try check(warmupFraction >= 0 && warmupFraction < 1, "warmup", warmupFraction, "must be in [0, 1)")
        try check(batchSize >= 1, "batch-size", batchSize, "at least one example per batch")
        try check(maxTokenCount >= 4 && maxTokenCount <= 512, "max-tokens", maxTokenCount, "must be in 4…512")
        try check(["text", "text+lead"].contains(textField), "text-field", textField, "use text or text+lead")
        try check(threadCount >= 1, "threads", threadCount, "at least one thread")
    }

    /// Canonical JSON (sorted keys, no whitespace): what stage checkpoints record.
    public func canonicalJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public static func load(from url: URL) throws -> TrainingSettings {
        do {
            return try JSONDecoder().decode(TrainingSettings.self, from: Data(contentsOf: url))
        } catch {
            throw TrainingError.fileInvalid(file: url.path, reason: "not readable training settings: \(error)")
        }
    }

    /// Writes the settings atomically (pretty JSON).
    public func save(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// The first field in which `other` differs from these settings, as (field, mine, theirs).
    public func firstDifference(from other: TrainingSettings) -> (String, String, String)? {
        let mine = (try? JSONSerialization.jsonObject(with: Data(canonicalJSON().utf8))) as? [String: Any] ?? [:]
        let theirs = (try? JSONSerialization.jsonObject(with: Data(other.canonicalJSON().utf8))) as? [String: Any] ?? [:]
        for key in mine.keys.sorted() {
            let a = "\(mine[key] ?? "nil")", b = "\(theirs[key] ?? "nil")"
            if a != b { return (key, a, b) }
        }
        return nil
    }
}
