/// The sizes and constants of a Llama-architecture decoder (SmolLM2-135M: 30 blocks, hidden 576,
/// FFN 1536, 9 query / 3 key-value heads of 64, RoPE base 100000, RMSNorm ε 1e-5, vocab 49,152).
public struct LlamaConfiguration: Sendable, Equatable, Codable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var ropeBase: Double
    public var rmsEpsilon: Float
    /// Longest sequence the RoPE table and KV cache are sized for.
    public var maxPositions: Int

    /// Validates the sizes (heads divide the hidden size, query heads are a multiple of
    /// key-value heads, head size is even for RoPE pairs).
    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
                headCount: Int, kvHeadCount: Int, ropeBase: Double, rmsEpsilon: Float,
                maxPositions: Int) throws {
        func check(_ ok: Bool, _ field: String, _ value: Int, _ reason: String) throws {
            if !ok { throw ModelsError.invalidValue(field: field, value: "\(value)", reason: reason) }
        }
        try check(vocabularySize > 0, "vocabularySize", vocabularySize, "must be positive")
        try check(layerCount > 0, "layerCount", layerCount, "must be positive")
        try check(headCount > 0 && hiddenSize % headCount == 0, "headCount", headCount, "must divide hiddenSize \(hiddenSize)")
        try check(kvHeadCount > 0 && headCount % kvHeadCount == 0, "kvHeadCount", kvHeadCount, "must divide headCount \(headCount)")
        try check((hiddenSize / headCount) % 2 == 0, "hiddenSize", hiddenSize, "head size must be even for RoPE pairs")
        try check(intermediateSize > 0, "intermediateSize", intermediateSize, "must be positive")
        try check(maxPositions > 0, "maxPositions", maxPositions, "must be positive")
        self.vocabularySize = vocabularySize; self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize; self.layerCount = layerCount
        self.headCount = headCount; self.kvHeadCount = kvHeadCount
        self.ropeBase = ropeBase; self.rmsEpsilon = rmsEpsilon; self.maxPositions = maxPositions
    }

    /// Reads `llama.*` metadata (block count, lengths, head counts, RoPE base, RMS ε). Refuses a
    /// `maxPositions` beyond the context the file records (`llama.context_length`), before any
    /// table or cache of that length is allocated.
    public init(gguf: GGUFFile, maxPositions: Int = 2048) throws {
        let arch = gguf.metadata["general.architecture"]?.string ?? "?"
        guard arch == "llama" else {
            throw ModelsError.missingMetadata(path: gguf.path, key: "general.architecture", expected: "'llama' (found '\(arch)')")
        }
        if let context = try? gguf.integer("llama.context_length"), maxPositions > context {
            throw ModelsError.invalidValue(field: "--max-positions", value: "\(maxPositions)",
                                           reason: "\(gguf.path) has a context of \(context) positions")
        }
        let vocab = try gguf.strings("tokenizer.ggml.tokens").count
        // RoPE divides by powers of the base and RMSNorm adds ε under a square root: a base that
        // is not a positive number or an ε that is negative or not finite makes every output NaN.
        let ropeKey = "llama.rope.freq_base", epsilonKey = "llama.attention.layer_norm_rms_epsilon"
        let ropeBase = (try? gguf.double(ropeKey)) ?? 10000
        guard ropeBase.isFinite && ropeBase > 0 else {
            throw ModelsError.ggufInvalid(path: gguf.path, what: "metadata '\(ropeKey)'",
                                          reason: "\(ropeBase) is not a finite positive number")
        }
        let rmsEpsilon = Float(try gguf.double(epsilonKey))
        guard rmsEpsilon.isFinite && rmsEpsilon >= 0 else {
            throw ModelsError.ggufInvalid(path: gguf.path, what: "metadata '\(epsilonKey)'",
                                          reason: "\(rmsEpsilon) is not a finite number ≥ 0")
        }
        // A token the tokenizer makes must have an embedding row: a smaller vocabulary would fail
        // on the first such token, blaming the text.
        if let declared = try? gguf.integer("llama.vocab_size"), declared < vocab {
            throw ModelsError.ggufInvalid(path: gguf.path, what: "metadata 'llama.vocab_size'",
                                          reason: "\(declared) is less than the tokenizer's \(vocab) tokens")
        }
        do {
            try self.init(vocabularySize: (try? gguf.integer("llama.vocab_size")) ?? vocab,
                          hiddenSize: try gguf.integer("llama.embedding_length"),
                          intermediateSize: try gguf.integer("llama.feed_forward_length"),
                          layerCount: try gguf.integer("llama.block_count"),
                          headCount: try gguf.integer("llama.attention.head_count"),
                          kvHeadCount: try gguf.integer("llama.attention.head_count_kv"),
                          ropeBase: ropeBase, rmsEpsilon: rmsEpsilon,
                          maxPositions: maxPositions)
        } catch let ModelsError.invalidValue(field, value, reason) where !field.hasPrefix("--") {
            // A hyperparameter out of range is the file's: named with its path.
            throw ModelsError.ggufInvalid(path: gguf.path, what: field, reason: "\(value) is out of range: \(reason)")
        }
        // RoPE here rotates every dimension of a head. A file that rotates only part of each head
        // (or none) describes another model: running it would give wrong outputs, not an error.
        let rotaryKey = "llama.rope.dimension_count"
        if gguf.metadata[rotaryKey] != nil {
            let rotary = try gguf.integer(rotaryKey)
            guard rotary == headSize else {
                throw ModelsError.ggufInvalid(path: gguf.path, what: "metadata '\(rotaryKey)'",
                    reason: "\(rotary) rotated dimensions per head, but Lethe rotates all \(headSize) "
                        + "(embedding_length ÷ head_count); partial rotary embeddings are not supported")
            }
        }
    }

    /// Size of one attention head.
    public var headSize: Int { hiddenSize / headCount }
    /// Width of the key and value projections.
    public var kvSize: Int { kvHeadCount * headSize }
    /// The smallest input or output width of any projection, the largest rank a LoRA adapter
    /// of every projection can have (192 for SmolLM2: the key and value outputs).
    public var narrowestProjection: Int { min(hiddenSize, kvSize, intermediateSize) }

    /// Bytes of the key-value cache of generation: K and V [maxPositions, kvSize] per block.
    public var keyValueCacheBytes: Int { 4 * 2 * layerCount * maxPositions * kvSize }

    /// Bytes one forward pass of `batch` right-padded sequences of `tokens` keeps alive: each
    /// block's saved activations and attention probabilities [B, H, T, T], the final hidden
    /// states and `logitRows` rows of logits. A floor of what scoring allocates per batch;
    /// training needs about twice as much (gradients of the logits and of each activation).
    public func forwardPassBytes(batch: Int, tokens: Int, logitRows: Int) -> Int {
        let rows = batch * tokens, hd = headCount * headSize
        let perRow = 4 * hiddenSize + 2 * hd + 2 * kvSize + 3 * intermediateSize + 2
        let perLayer = rows * perRow + batch * headCount * tokens * tokens
        return 4 * (layerCount * perLayer + 3 * rows * hiddenSize + logitRows * vocabularySize)
    }

    /// Parameter count with tied embeddings (SmolLM2-135M: 134,515,008).
    public var parameterCount: Int {
        let c = hiddenSize, f = intermediateSize
        let perLayer = 2 * c + c * c * 2 + 2 * c * kvSize + 3 * c * f
        return vocabularySize * c + layerCount * perLayer + c
    }

    /// Approximate forward FLOPs per token at context length `tokens` (2 per multiply-add,
    /// matrices plus attention scores and mixing, LM head included).
    public func forwardFLOPsPerToken(context tokens: Int) -> Double {
        2 * (matrixMultiplyAddsPerToken + attentionMultiplyAddsPerToken(context: tokens))
    }

    /// Multiply-adds per token of every projection and the tied LM head.
    var matrixMultiplyAddsPerToken: Double {
        let c = Double(hiddenSize), f = Double(intermediateSize), kv = Double(kvSize)
        return Double(layerCount) * (2 * c * c + 2 * c * kv + 3 * c * f) + Double(vocabularySize) * c
    }

    /// Multiply-adds per token of the attention scores and mixing at context length `tokens`.
    func attentionMultiplyAddsPerToken(context tokens: Int) -> Double {
        Double(layerCount) * 2 * Double(hiddenSize) * Double(tokens)
    }

    /// FLOPs per token of one training step with frozen base weights (LoRA): the forward, and
    /// a backward that needs only input gradients through the frozen matrices (as many FLOPs
    /// as their forward) and four attention products for the forward's two. The adapters'
    /// own products (rank ≪ width) are left out, so this is a floor of the work.
    public func frozenTrainingFLOPsPerToken(context tokens: Int) -> Double {
        2 * (2 * matrixMultiplyAddsPerToken + 3 * attentionMultiplyAddsPerToken(context: tokens))
    }
}
