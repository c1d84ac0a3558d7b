import Foundation

/// The sizes of a BERT encoder, read from a Hugging Face `config.json`.
///
/// Contract: only what this implementation supports loads — absolute positions, GELU (erf),
/// hidden size divisible by the head count; anything else is a `ModelsError.configInvalid`
/// naming the field.
public struct BertConfiguration: Sendable, Equatable, Codable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var intermediateSize: Int
    public var maxPositionCount: Int
    public var tokenTypeCount: Int
    public var layerNormEpsilon: Float

    public init(vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int,
                intermediateSize: Int, maxPositionCount: Int, tokenTypeCount: Int, layerNormEpsilon: Float) {
        self.vocabularySize = vocabularySize; self.hiddenSize = hiddenSize; self.layerCount = layerCount
        self.headCount = headCount; self.intermediateSize = intermediateSize
        self.maxPositionCount = maxPositionCount; self.tokenTypeCount = tokenTypeCount
        self.layerNormEpsilon = layerNormEpsilon
    }

    /// Head size D = hidden / heads.
    public var headSize: Int { hiddenSize / headCount }

    /// Reads and checks `config.json`.
    public init(contentsOf path: String) throws {
        try MappedFile.requireRegular(path)  // a FIFO would block the read; a directory reads as missing
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelsError.fileUnreadable(path: path, reason: "no such file or not readable")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelsError.configInvalid(path: path, field: "(root)", reason: "not a JSON object")
        }
        // Bounds far above any BERT-family encoder: a damaged value is refused here, before
        // anything is sized by it.
        let limits = ["vocab_size": 1 << 22, "hidden_size": 1 << 16, "num_hidden_layers": 1024,
                      "num_attention_heads": 1024, "intermediate_size": 1 << 18,
                      "max_position_embeddings": 1 << 20, "type_vocab_size": 1024]
        func int(_ key: String) throws -> Int {
            guard let v = json[key] as? Int, v > 0 else {
                throw ModelsError.configInvalid(path: path, field: key, reason: "missing or not a positive integer")
            }
            if let limit = limits[key], v > limit {
                throw ModelsError.configInvalid(path: path, field: key,
                                                reason: "\(v) is beyond any encoder Lethe reads (at most \(limit))")
            }
            return v
        }
        if let act = json["hidden_act"] as? String, act != "gelu" {
            throw ModelsError.configInvalid(path: path, field: "hidden_act", reason: "\(act) is not supported (only gelu)")
        }
        if let pos = json["position_embedding_type"] as? String, pos != "absolute" {
            throw ModelsError.configInvalid(path: path, field: "position_embedding_type", reason: "\(pos) is not supported")
        }
        guard let eps = json["layer_norm_eps"] as? Double, eps > 0 else {
            throw ModelsError.configInvalid(path: path, field: "layer_norm_eps", reason: "missing or not positive")
        }
        self.init(vocabularySize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
                  layerCount: try int("num_hidden_layers"), headCount: try int("num_attention_heads"),
                  intermediateSize: try int("intermediate_size"),
                  maxPositionCount: try int("max_position_embeddings"),
                  tokenTypeCount: try int("type_vocab_size"), layerNormEpsilon: Float(eps))
        guard hiddenSize % headCount == 0 else {
            throw ModelsError.configInvalid(path: path, field: "num_attention_heads",
                                            reason: "\(headCount) does not divide hidden_size \(hiddenSize)")
        }
    }
}
