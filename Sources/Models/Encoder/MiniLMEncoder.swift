import Foundation
import Kernels
import Support

/// A pre-trained BERT sentence encoder (all-MiniLM-L6-v2 by default) loaded from a model folder.
///
///     e = LN(word[id] + position[t] + tokenType[0]);  x_ℓ = layer_ℓ(x_{ℓ−1});
///     pooled = mean over real tokens of x_L;  embedding = pooled / ‖pooled‖₂
///
/// Shape glossary: B sequences, T tokens, N = B·T rows, C hidden. The folder holds
/// `config.json`, `vocab.txt` and `model.safetensors`. All weights are frozen; adapters are
/// passed in per call, so one loaded encoder serves every shard, stage and sequence.
public final class MiniLMEncoder: @unchecked Sendable {
    public let directory: String
    public let configuration: BertConfiguration
    public let tokenizer: WordPieceTokenizer
    /// The frozen weights of each layer, bottom first.
    public let layerWeights: [EncoderLayerWeights]
    /// The sizes every layer shares.
    public let layerConfiguration: EncoderLayerConfiguration
    /// The frozen products of each layer in `precision`, shared by every layer built on them.
    public let layerProducts: [EncoderLayerProducts]
    /// The arithmetic of the products on frozen weights (see `Precision`).
    public let precision: Precision
    /// Each layer without adapters.
    public let frozenLayers: [EncoderLayer]
    let wordEmbeddings: Tensor, positionEmbeddings: Tensor, tokenTypeEmbeddings: Tensor
    let embeddingNormGamma: Tensor, embeddingNormBeta: Tensor

    /// Path of the weight file inside `directory`.
    public var weightsPath: String { directory + "/model.safetensors" }

    /// Loads config, vocabulary and weights, checking every tensor shape, and prepares the
    /// frozen products in `precision` (bf16 rounds and packs the weights once, here).
    public init(directory: String, precision: Precision = .fp32) throws {
        self.directory = directory
        self.precision = precision
        let c = try BertConfiguration(contentsOf: directory + "/config.json")
        configuration = c
        tokenizer = try WordPieceTokenizer(vocabularyFile: directory + "/vocab.txt")
        guard tokenizer.tokens.count == c.vocabularySize else {
            throw ModelsError.configInvalid(path: directory + "/config.json", field: "vocab_size",
                                            reason: "\(c.vocabularySize) but vocab.txt has \(tokenizer.tokens.count) tokens")
        }
        // The float32 weights, and their products' prepared copy (bf16 half as large).
        let weightsFile = directory + "/model.safetensors"
        let weightBytes = (try? FileManager.default.attributesOfItem(atPath: weightsFile)[.size] as? NSNumber)?
            .uint64Value ?? 0
        try MemoryLimit.requireForModel(weightsFile, arrayBytes: weightBytes + (precision == .bf16 ? weightBytes / 2 : weightBytes))
        let file = try SafeTensors(contentsOf: directory + "/model.safetensors")
        func load(_ name: String, _ shape: [Int]) throws -> Tensor {
            Tensor(shape: shape, values: try file.floats(name, shape: shape))
        }
        let h = c.hiddenSize
        wordEmbeddings = try load("embeddings.word_embeddings.weight", [c.vocabularySize, h])
        positionEmbeddings = try load("embeddings.position_embeddings.weight", [c.maxPositionCount, h])
        tokenTypeEmbeddings = try load("embeddings.token_type_embeddings.weight", [c.tokenTypeCount, h])
        embeddingNormGamma = try load("embeddings.LayerNorm.weight", [h])
        embeddingNormBeta = try load("embeddings.LayerNorm.bias", [h])
        let layerConfiguration = EncoderLayerConfiguration(
            hiddenSize: h, headCount: c.headCount, intermediateSize: c.intermediateSize,
            layerNormEpsilon: c.layerNormEpsilon)
        let layerWeights = try (0..<c.layerCount).map { try Self.loadLayer($0, from: file, configuration: c) }
        self.layerConfiguration = layerConfiguration
        self.layerWeights = layerWeights
        let layerProducts = try layerWeights.map { w throws(KernelError) in
            try EncoderLayerProducts(weights: w, precision: precision)
        }
        self.layerProducts = layerProducts
        frozenLayers = zip(layerWeights, layerProducts).map {
            EncoderLayer(configuration: layerConfiguration, weights: $0, products: $1)
        }
    }

    /// Token ids of `text`, truncated to `maxLength` (at most the position count).
    public func encode(_ text: String, maxLength: Int = 256) -> [Int32] {
        tokenizer.encode(text, maxLength: min(maxLength, configuration.maxPositionCount))
    }

    /// The embedding-layer output x₀ [N, C] of a padded batch (padding rows hold the [PAD] embedding).
    public func embed(_ batch: TokenBatch, threads: Int) -> Tensor {
        let c = configuration.hiddenSize, n = batch.batchSize * batch.sequenceLength
        let sum = Tensor(shape: [n, c])
        batch.ids.withUnsafeBufferPointer { ids in
            Embedding.forward(ids: ids.baseAddress!, table: wordEmbeddings.pointer, into: sum.data, rows: n,
                              vocabulary: configuration.vocabularySize, columns: c)
        }
        for b in 0..<batch.batchSize {
            for t in 0..<batch.sequenceLength {
                let row = sum.data + (b * batch.sequenceLength + t) * c
                let position = positionEmbeddings.pointer + t * c
                // Single-sentence inputs: token type 0 everywhere.
                for j in 0..<c { row[j] += position[j] + tokenTypeEmbeddings[j] }
            }
        }
        let x = Tensor(shape: [n, c])
        let mean = Tensor(shape: [n]), rstd = Tensor(shape: [n])
        LayerNorm.forward(sum.pointer, gamma: embeddingNormGamma.pointer, beta: embeddingNormBeta.pointer,
                          epsilon: configuration.layerNormEpsilon, into: x.data, mean: mean.data, rstd: rstd.data,
                          rows: n, columns: c, threads: threads)
        return x
    }

    /// Runs layers `range` (no adapters) on x and returns the output hidden states.
    public func forwardFrozen(_ x: Tensor, layers range: Range<Int>, batch: TokenBatch, threads: Int) -> Tensor {
        var h = x
        batch.mask.withUnsafeBufferPointer { mask in
            for l in range {
                let layer = frozenLayers[l]
                let activations = EncoderLayer.Activations(for: layer, batch: batch.batchSize,
                                                           tokens: batch.sequenceLength, training: false)
                let y = Tensor.scratch(shape: h.shape)   // the layer's last LayerNorm writes every row
                layer.forward(h.pointer, mask: mask.baseAddress!, activations: activations, into: y.data,
                              threads: threads)
                h = y
            }
        }
        return h
    }

    /// Reads `encoder.layer.<index>.*`, checking every shape.
    static func loadLayer(_ index: Int, from file: SafeTensors, configuration c: BertConfiguration) throws
        -> EncoderLayerWeights
    {
        let p = "encoder.layer.\(index)."
        let (h, f) = (c.hiddenSize, c.intermediateSize)
        func linear(_ name: String, out o: Int, in i: Int) throws -> LinearWeights {
            LinearWeights(weight: Tensor(shape: [o, i], values: try file.floats(p + name + ".weight", shape: [o, i])),
                          bias: Tensor(shape: [o], values: try file.floats(p + name + ".bias", shape: [o])))
        }
        func norm(_ name: String) throws -> LayerNormWeights {
            LayerNormWeights(gamma: Tensor(shape: [h], values: try file.floats(p + name + ".weight", shape: [h])),
                             beta: Tensor(shape: [h], values: try file.floats(p + name + ".bias", shape: [h])))
        }
        return EncoderLayerWeights(
            query: try linear("attention.self.query", out: h, in: h),
            key: try linear("attention.self.key", out: h, in: h),
            value: try linear("attention.self.value", out: h, in: h),
            attentionOutput: try linear("attention.output.dense", out: h, in: h),
            attentionLayerNorm: try norm("attention.output.LayerNorm"),
            intermediate: try linear("intermediate.dense", out: f, in: h),
            output: try linear("output.dense", out: h, in: f),
            outputLayerNorm: try norm("output.LayerNorm"))
    }

    /// Mean of the real tokens of each sequence: [B, C].
    public func meanPool(_ x: Tensor, batch: TokenBatch) -> Tensor {
        let pooled = Tensor(shape: [batch.batchSize, configuration.hiddenSize])
        batch.mask.withUnsafeBufferPointer { mask in
            MeanPooling.forward(x.pointer, mask: mask.baseAddress!, into: pooled.data, batch: batch.batchSize,
                                tokens: batch.sequenceLength, columns: configuration.hiddenSize)
        }
        return pooled
    }

    /// Sentence embeddings of `texts` (mean pooling + L2 normalisation), one array of C per text.
    public func sentenceEmbeddings(_ texts: [String], maxLength: Int = 256, threads: Int) -> [[Float]] {
        guard !texts.isEmpty else { return [] }
        let batch = TokenBatch(texts.map { encode($0, maxLength: maxLength) }, padID: tokenizer.padID)
        let hidden = forwardFrozen(embed(batch, threads: threads), layers: 0..<frozenLayers.count, batch: batch,
                                   threads: threads)
        let pooled = meanPool(hidden, batch: batch).values
        let c = configuration.hiddenSize
        return (0..<texts.count).map { b in
            let row = Array(pooled[b * c..<(b + 1) * c])
            let norm = max(row.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return row.map { $0 / norm }
        }
    }
}
