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
                                      lora: lora, adapters: layerAdapters)
    }

    /// Takes the adapters off layer `l` (it becomes the frozen base layer).
    public func removeAdapters(onLayer l: Int) {
        adapters[l] = nil
        builtLayers[l] = encoder.frozenLayers[l]
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
        var h = encoder.embed(batch, threads: threads)
        batch.mask.withUnsafeBufferPointer { mask in
            for l in 0..<layerCount {
                let layer = builtLayers[l]
                let a = EncoderLayer.Activations(for: layer, batch: batch.batchSize, tokens: batch.sequenceLength)
                let y = Tensor(shape: h.shape)
                layer.forward(h.pointer, mask: mask.baseAddress!, activations: a, into: y.data, threads: threads)
                h = y
            }
        }
        return head.forward(encoder.meanPool(h, batch: batch), batch: batch.batchSize).logits
    }

    /// Predicted class and logits of each text, in batches of `batchSize` sorted by length.
    public func predict(_ texts: [String], batchSize: Int = 64, threads: Int) -> [(label: Int, logits: [Float])] {
        let ids = texts.map(encode)
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        var result = [(label: Int, logits: [Float])](repeating: (0, []), count: texts.count)
        let k = head.classCount
        var start = 0
        while start < order.count {
            let chunk = Array(order[start..<min(start + batchSize, order.count)])
            let values = logits(TokenBatch(chunk.map { ids[$0] }, padID: encoder.tokenizer.padID), threads: threads).values
            for (row, index) in chunk.enumerated() {
                let z = Array(values[row * k..<(row + 1) * k])
                result[index] = (z.indices.max { z[$0] < z[$1] } ?? 0, z)
            }
            start += batchSize
        }
        return result
    }
}
