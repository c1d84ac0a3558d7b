import Kernels
import Support

/// A frozen encoder with LoRA adapters on some layers and a classification head.
///
///     logits = head(meanPool(layer_{L−1} ∘ … ∘ layer_0(embed(ids))))
///
/// Layers listed in `adapters` carry one adapter per target of `lora`; the others are the frozen
/// base layers. Which adapters train is the trainer's business (S3T trains one block while the
/// blocks above stay active but frozen), so this type only holds weights and runs them.
/// Contract: adapters are reference objects shared with whoever installed them; replacing or
/// removing a layer's adapters takes effect on the next forward.
public final class LoRAClassifier: @unchecked Sendable {
    public let encoder: MiniLMEncoder
    public let lora: LoRAConfiguration<LoRATarget>
    public let head: ClassificationHead
    /// Maximum tokens per text, [CLS] and [SEP] included.
    public let maxLength: Int
    /// Adapters by layer index (0 = bottom) and target.
    public private(set) var adapters: [Int: [LoRATarget: LoRAAdapter]] = [:]
    private var builtLayers: [EncoderLayer]

    /// A classifier with fresh adapters (B = 0) on `adapterLayers` and a fresh head, all from `seed`.
    public init(encoder: MiniLMEncoder, lora: LoRAConfiguration<LoRATarget>, adapterLayers: [Int], classCount: Int,
                headNormalizesInput: Bool = false, maxLength: Int = 128, seed: UInt64) throws {
        let layerCount = encoder.frozenLayers.count
        for l in adapterLayers where !(0..<layerCount).contains(l) {
            throw ModelsError.invalidValue(field: "layers", value: "\(l)", reason: "layers are 0..<\(layerCount)")
        }
        guard classCount >= 2 else {
            throw ModelsError.invalidValue(field: "classCount", value: "\(classCount)", reason: "need at least 2 classes")
        }
        self.encoder = encoder; self.lora = lora; self.maxLength = maxLength
        head = ClassificationHead(classCount: classCount, inputSize: encoder.configuration.hiddenSize,
                                  normalizesInput: headNormalizesInput, seed: SplitMix64.derive(seed, -1))
        builtLayers = encoder.frozenLayers
        for l in Set(adapterLayers).sorted() {
            install(EncoderLayer.freshAdapters(configuration: encoder.layerConfiguration, lora: lora,
                                               seed: SplitMix64.derive(seed, l)), onLayer: l)
        }
    }

    /// Puts `layerAdapters` (one per target of `lora`) on layer `l`, replacing any there.
    public func install(_ layerAdapters: [LoRATarget: LoRAAdapter], onLayer l: Int) {
        adapters[l] = layerAdapters
        builtLayers[l] = EncoderLayer(configuration: encoder.layerConfiguration, weights: encoder.layerWeights[l],
                                      lora: lora, adapters: layerAdapters, products: encoder.layerProducts[l])
    }

    /// Takes the adapters off layer `l` (it becomes the frozen base layer).
    public func removeAdapters(onLayer l: Int) {
        adapters[l] = nil
        builtLayers[l] = encoder.frozenLayers[l]
    }

    /// Lays out every adapter's weights once for inference passes (`EncoderLayer.withInferencePanels`),
    /// for a model whose adapters keep the values they have now, such as a served one. Installing
    /// or removing a layer's adapters drops that layer's layout; changing adapter weights in place
    /// afterwards would not reach inference passes.
    public func prepareForInference() {
        for l in adapters.keys { builtLayers[l] = builtLayers[l].withInferencePanels() }
    }

    /// The layer as it runs now (with its adapters if any).
    public func layer(_ l: Int) -> EncoderLayer { builtLayers[l] }

    public var layerCount: Int { builtLayers.count }

    /// The lowest layer carrying adapters; the layers below it are the frozen base model.
    public var lowestAdapterLayer: Int? { adapters.keys.min() }

    /// Token ids of a text, truncated to `maxLength`.
    public func encode(_ text: String) -> [Int32] { encoder.encode(text, maxLength: maxLength) }

    /// Logits [B, K] for a padded batch (no dropout), running every layer.
    public func logits(_ batch: TokenBatch, threads: Int) -> Tensor {
        logits(fromHidden: hidden(batch, below: 0, threads: threads), atLayer: 0, batch: batch, threads: threads)
    }

    /// The hidden states entering layer `end` ([B·T, H]): the embeddings run through layers
    /// 0..<end as this classifier has them. Layers below every adapter are the frozen base
    /// model, so classifiers on one encoder share these states up to their lowest adapter.
    public func hidden(_ batch: TokenBatch, below end: Int, threads: Int) -> Tensor {
        run(encoder.embed(batch, threads: threads), layers: 0..<end, batch: batch, threads: threads)
    }

    /// Logits [B, K] from the hidden states entering layer `start`: layers start..<L, mean
    /// pooling and the head.
    public func logits(fromHidden h: Tensor, atLayer start: Int, batch: TokenBatch, threads: Int) -> Tensor {
        let top = run(h, layers: start..<layerCount, batch: batch, threads: threads)
        return head.forward(encoder.meanPool(top, batch: batch), batch: batch.batchSize).logits
    }

    private func run(_ input: Tensor, layers: Range<Int>, batch: TokenBatch, threads: Int) -> Tensor {
        var h = input
        // One set of buffers per kind of layer (with adapters or without) serves every layer of
        // the pass, and two outputs take turns: a forward writes each buffer before reading it,
        // and a pass of 15 layers then allocates 2 sets instead of 15 (their malloc and free were
        // 1.5% of a server's time). The input is the caller's, never written.
        var buffers: [Bool: EncoderLayer.Activations] = [:]
        var spare: Tensor?
        batch.mask.withUnsafeBufferPointer { mask in
            for l in layers {
                let layer = builtLayers[l]
                let adapted = !layer.adapters.isEmpty
                let a = buffers[adapted] ?? EncoderLayer.Activations(for: layer, batch: batch.batchSize,
                                                                     tokens: batch.sequenceLength, training: false)
                buffers[adapted] = a
                let y = spare ?? Tensor.scratch(shape: h.shape)   // the layer's last LayerNorm writes every row
                layer.forward(h.pointer, mask: mask.baseAddress!, activations: a, into: y.data, threads: threads)
                spare = h === input ? nil : h
                h = y
            }
        }
        return h
    }

    /// Predicted class and logits of each text, in batches of `batchSize` sorted by length.
    public func predict(_ texts: [String], batchSize: Int = LoRAClassifier.predictionBatchSize,
                        threads: Int) -> [(label: Int, logits: [Float])] {
        let ids = texts.map(encode)
        var result = [(label: Int, logits: [Float])](repeating: (0, []), count: texts.count)
        let k = head.classCount
        for chunk in Self.predictionBatches(ids, batchSize: batchSize) {
            let values = logits(TokenBatch(chunk.map { ids[$0] }, padID: encoder.tokenizer.padID), threads: threads).values
            for (row, index) in chunk.enumerated() {
                let z = Array(values[row * k..<(row + 1) * k])
                result[index] = (z.indices.max { z[$0] < z[$1] } ?? 0, z)
            }
        }
        return result
    }

    /// Texts per forward pass of `predict`.
    public static let predictionBatchSize = 64

    /// The batches `predict` runs: indices of `ids` sorted by length (then index), cut into
    /// runs of at most `batchSize` so that padded rows plus a fixed cost per pass are fewest.
    /// A pass streams every weight it uses from memory whatever its size, so one pass over a
    /// few texts of mixed length beats several tight ones, while a large batch is still cut
    /// where lengths jump. Whoever must reproduce `predict`'s bits batches the same way.
    public static func predictionBatches(_ ids: [[Int32]], batchSize: Int) -> [[Int]] {
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        let n = order.count, size = max(batchSize, 1)
        guard n > 0 else { return [] }
        // cost[j]: the least cost of the first j texts; cut[j]: where its last batch starts.
        var cost = [Int](repeating: Int.max, count: n + 1), cut = [Int](repeating: 0, count: n + 1)
        cost[0] = 0
        for j in 1...n {
            let longest = ids[order[j - 1]].count
            for i in max(0, j - size) ..< j {
                let candidate = cost[i] + passCostInRows + (j - i) * longest
                if candidate < cost[j] { cost[j] = candidate; cut[j] = i }
            }
        }
        var batches: [[Int]] = []
        var end = n
        while end > 0 {
            batches.append(Array(order[cut[end]..<end]))
            end = cut[end]
        }
        return batches.reversed()
    }

    /// The fixed cost of one forward pass, in token rows: reading a layer's 1.8 M weights from
    /// memory takes about as long as multiplying 48 rows by them (measured on the MiniLM run).
    static let passCostInRows = 48
}
