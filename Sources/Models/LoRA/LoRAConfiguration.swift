/// A linear layer of a model that can carry a LoRA pair. The raw value is the module's Hugging
/// Face name, so configurations and checkpoints name modules the way PEFT does; the order of
/// `allCases` is the stable order of seeds and files.
public protocol LoRAModule: RawRepresentable, Codable, CaseIterable, Comparable, Hashable, Sendable
    where RawValue == String, AllCases == [Self] {}

extension LoRAModule {
    /// Position in `allCases` (stable order for seeds and files).
    public var index: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    public static func < (a: Self, b: Self) -> Bool { a.index < b.index }
}

/// Where a LoRA adapter can sit in a BERT encoder layer (the six linear layers); raw values are
/// the module paths inside `encoder.layer.N.`.
public enum LoRATarget: String, LoRAModule {
    case query = "attention.self.query"
    case key = "attention.self.key"
    case value = "attention.self.value"
    case attentionOutput = "attention.output.dense"
    case intermediate = "intermediate.dense"
    case output = "output.dense"

    /// Input and output width of the dense layer this target sits on, in a layer of this hidden
    /// and FFN size (the FFN's up projection widens, its down projection narrows).
    public func features(hidden: Int, intermediate: Int) -> (input: Int, output: Int) {
        switch self {
        case .query, .key, .value, .attentionOutput: (hidden, hidden)
        case .intermediate: (hidden, intermediate)
        case .output: (intermediate, hidden)
        }
    }
}

/// A LoRA adapter configuration for the encoder (`Target` = `LoRATarget`) or the decoder
/// (`LlamaProjection`), in PEFT's `LoraConfig` vocabulary: r, lora_alpha, lora_dropout,
/// target_modules, use_rslora. Built only with valid values: rank ≥ 1, alpha > 0, dropout in
/// [0, 1), at least one target.
public struct LoRAConfiguration<Target: LoRAModule>: Codable, Sendable, Equatable {
    public let rank: Int
    public let alpha: Float
    public let dropout: Float
    /// Distinct targets in `Target.allCases` order.
    public let targets: [Target]
    /// rsLoRA scaling α/√r instead of α/r.
    public let useRSLoRA: Bool

    enum CodingKeys: String, CodingKey {
        case rank = "r", alpha = "lora_alpha", dropout = "lora_dropout"
        case targets = "target_modules", useRSLoRA = "use_rslora"
    }

    public init(rank: Int, alpha: Float, dropout: Float = 0, targets: [Target],
                useRSLoRA: Bool = false) throws {
        guard rank >= 1 else {
            throw ModelsError.invalidValue(field: "r", value: "\(rank)", reason: "the LoRA rank must be at least 1")
        }
        guard alpha > 0, alpha.isFinite else {
            throw ModelsError.invalidValue(field: "lora_alpha", value: "\(alpha)", reason: "must be a positive number")
        }
        guard dropout >= 0, dropout < 1 else {
            throw ModelsError.invalidValue(field: "lora_dropout", value: "\(dropout)", reason: "must be in [0, 1)")
        }
        guard !targets.isEmpty else {
            throw ModelsError.invalidValue(field: "target_modules", value: "[]", reason: "name at least one module")
        }
        self.rank = rank; self.alpha = alpha; self.dropout = dropout
        self.targets = Array(Set(targets)).sorted()
        self.useRSLoRA = useRSLoRA
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(rank: try c.decode(Int.self, forKey: .rank),
                      alpha: try c.decode(Float.self, forKey: .alpha),
                      dropout: try c.decodeIfPresent(Float.self, forKey: .dropout) ?? 0,
                      targets: try c.decode([Target].self, forKey: .targets),
                      useRSLoRA: try c.decodeIfPresent(Bool.self, forKey: .useRSLoRA) ?? false)
    }

    /// The factor s of y = x·Wᵀ + s·x·Aᵀ·Bᵀ: α/r, or α/√r with rsLoRA.
    public var scale: Float { useRSLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }
}
