import Kernels
import Models

/// Per-example hidden states at the input of one layer, computed once and reused every epoch.
///
/// Why: the layers below the lowest adapter are the frozen base model, so their output for an
/// example never changes during training (S3T trains blocks top-down, so this holds at every
/// stage). Entries are stored unpadded (`length × C` floats per example) and filled lazily,
/// the first time an example appears in a batch, until `byteBudget` is reached; examples that do
/// not fit are recomputed whenever they appear. Backpropagation never enters the cached layers.
public final class ActivationCache: @unchecked Sendable {
    /// The cached states are the inputs of this layer (0 = the embedding output).
    public let layer: Int
    public let byteBudget: Int
    private var entries: [Int: [Float]] = [:]
    public private(set) var byteCount = 0
    public private(set) var hitCount = 0
    public private(set) var missCount = 0

    public init(layer: Int, byteBudget: Int) {
        precondition(layer >= 0 && byteBudget >= 0, "invalid cache layer or budget")
        self.layer = layer; self.byteBudget = byteBudget
    }

    /// What the cache holds, for reports.
    public struct Report: Sendable, Codable, Equatable {
        public let layer: Int
        public let exampleCount: Int
        public let byteCount: Int
        public let byteBudget: Int
        public let hitCount: Int
        public let missCount: Int
    }

    public var report: Report {
        Report(layer: layer, exampleCount: entries.count, byteCount: byteCount, byteBudget: byteBudget,
               hitCount: hitCount, missCount: missCount)
    }

    /// The input hidden states of `layer` for `batch` (rows of `examples[i]` in order), padded
    /// like `batch`; padding rows are zero (masked everywhere above, so their value is irrelevant).
    public func hiddenStates(examples: [Int], ids: [[Int32]], batch: TokenBatch, model: LoRAClassifier,
                             threads: Int) -> Tensor {
        let c = model.encoder.configuration.hiddenSize, t = batch.sequenceLength
        let out = Tensor(shape: [batch.batchSize * t, c])
        var misses: [Int] = []
        for (row, example) in examples.enumerated() {
            if let cached = entries[example] {
                hitCount += 1
                cached.withUnsafeBufferPointer { (out.data + row * t * c).update(from: $0.baseAddress!, count: $0.count) }
            } else {
                misses.append(row)
            }
        }
        guard !misses.isEmpty else { return out }
        missCount += misses.count
        let sub = TokenBatch(misses.map { ids[examples[$0]] }, padID: model.encoder.tokenizer.padID)
        let states = model.encoder.forwardFrozen(model.encoder.embed(sub, threads: threads), layers: 0..<layer,
                                                 batch: sub, threads: threads)
        for (subRow, row) in misses.enumerated() {
            let length = sub.lengths[subRow]
            let source = states.pointer + subRow * sub.sequenceLength * c
            (out.data + row * t * c).update(from: source, count: length * c)
            let bytes = length * c * MemoryLayout<Float>.size
            if byteCount + bytes <= byteBudget {
                entries[examples[row]] = Array(UnsafeBufferPointer(start: source, count: length * c))
                byteCount += bytes
            }
        }
        return out
    }
}
