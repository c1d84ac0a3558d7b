import Kernels
import Models

/// Hidden states of the frozen base model at layer boundaries, per token sequence, computed once
/// and reused by every trainer that shares the store.
///
/// Why: the layers below the lowest adapter are the frozen base model, so their output for an
/// example never changes (S3T trains blocks top-down, so this holds at every stage). One store
/// can serve a whole shard: its stages start their blocks at different layers, and each needs
/// the states entering its block; a state is computed from the highest boundary already held
/// below it (or from the embeddings), keeping every boundary on the way from `keepFrom` up, so
/// each frozen layer runs about once per example for the shard rather than once per stage.
/// Entries are keyed by token ids (the states depend on nothing else), stored unpadded
/// (`length × C` floats), until `byteBudget` is reached; what does not fit is recomputed
/// whenever asked. The bits do not depend on where a state came from: every kernel on the way
/// computes each token row (or sequence, for attention) independently of the others in its batch.
/// Not thread-safe: one trainer uses it at a time.
public final class BaseStates: @unchecked Sendable {
    public let byteBudget: Int
    /// Boundaries below this layer are kept only when asked for directly.
    public let keepFrom: Int
    private var entries: [Int: [[Int32]: [Float]]] = [:]
    public private(set) var byteCount = 0

    public init(byteBudget: Int, keepFrom: Int) {
        precondition(byteBudget >= 0 && keepFrom >= 0, "invalid budget or layer")
        self.byteBudget = byteBudget; self.keepFrom = keepFrom
    }

    /// Sequences held at the input of `layer`.
    public func count(atLayer layer: Int) -> Int { entries[layer]?.count ?? 0 }

    /// Forgets every state (a new shard's examples share nothing with the last one's).
    public func removeAll() { entries = [:]; byteCount = 0 }

    /// The held states entering `layer` for `ids`, if any.
    func states(_ ids: [Int32], atLayer layer: Int) -> [Float]? { entries[layer]?[ids] }

    /// Computes the states entering `layer` for `sequences` (none of them held at `layer`), keeps
    /// what the budget allows, and calls `deliver(i, rows)` with sequence i's unpadded rows.
    ///
    /// Sequences run in batches of equal length, so nothing is padded and a sequence's states
    /// are a function of its ids alone (every kernel on the way treats rows, and attention
    /// sequences, independently): the bits are the same whichever trainer or stage asked first,
    /// which is what lets a stage replayed alone reproduce a stage trained after others.
    func compute(_ sequences: [[Int32]], layer: Int, model: LoRAClassifier, threads: Int,
                 deliver: (Int, UnsafeBufferPointer<Float>) -> Void = { _, _ in }) {
        let c = model.encoder.configuration.hiddenSize
        // Start each sequence at the highest boundary held below `layer` (0: the embeddings).
        var groups: [Group: [Int]] = [:]
        for (i, ids) in sequences.enumerated() {
            let start = (1..<max(layer, 1)).reversed().first { entries[$0]?[ids] != nil } ?? 0
            groups[Group(start: start, length: ids.count), default: []].append(i)
        }
        for group in groups.keys.sorted(by: { ($0.start, $0.length) < ($1.start, $1.length) }) {
            let all = groups[group]!, t = group.length
            let perBatch = max(1, Self.rowsPerBatch / max(t, 1))
            for first in stride(from: 0, to: all.count, by: perBatch) {
                let members = Array(all[first..<min(first + perBatch, all.count)])
                let batch = TokenBatch(members.map { sequences[$0] }, padID: model.encoder.tokenizer.padID)
                var h: Tensor
                if group.start == 0 {
                    h = model.encoder.embed(batch, threads: threads)
                } else {
                    h = Tensor.scratch(shape: [members.count * t, c])   // every row copied in below
                    for (row, i) in members.enumerated() {
                        entries[group.start]![sequences[i]]!.withUnsafeBufferPointer {
                            (h.data + row * t * c).update(from: $0.baseAddress!, count: $0.count)
                        }
                    }
                }
                for l in group.start..<layer {
                    h = model.encoder.forwardFrozen(h, layers: l..<(l + 1), batch: batch, threads: threads)
                    guard l + 1 < layer, l + 1 >= keepFrom else { continue }
                    for (row, i) in members.enumerated() {
                        keep(sequences[i], layer: l + 1, rows: h.pointer + row * t * c, count: t * c)
                    }
                }
                for (row, i) in members.enumerated() {
                    let rows = UnsafeBufferPointer(start: h.pointer + row * t * c, count: t * c)
                    keep(sequences[i], layer: layer, rows: rows.baseAddress!, count: rows.count)
                    deliver(i, rows)
                }
            }
        }
    }

    /// Token rows per batch of the frozen layers (large enough for the products to run near
    /// their peak, small enough to keep the activations in cache).
    static let rowsPerBatch = 512

    private struct Group: Hashable { let start: Int; let length: Int }

    private func keep(_ ids: [Int32], layer: Int, rows: UnsafePointer<Float>, count: Int) {
        guard entries[layer]?[ids] == nil else { return }
        let bytes = count * MemoryLayout<Float>.size
        guard byteCount + bytes <= byteBudget else { return }
        entries[layer, default: [:]][ids] = Array(UnsafeBufferPointer(start: rows, count: count))
        byteCount += bytes
    }
}

/// One trainer's view of `BaseStates`: the input hidden states of one layer for its batches.
public final class ActivationCache: @unchecked Sendable {
    /// The states handed out are the inputs of this layer (0 = the embedding output).
    public let layer: Int
    public let store: BaseStates
    /// Lookups of the training batches served from the store, and recomputed.
    public private(set) var hitCount = 0
    public private(set) var missCount = 0

    /// A cache of its own, holding only the inputs of `layer`.
    public convenience init(layer: Int, byteBudget: Int) {
        self.init(layer: layer, sharing: BaseStates(byteBudget: byteBudget, keepFrom: layer))
    }

    /// A view of `store`, which other trainers may fill and use too.
    public init(layer: Int, sharing store: BaseStates) {
        precondition(layer >= 0, "invalid cache layer")
        self.layer = layer; self.store = store
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
        Report(layer: layer, exampleCount: store.count(atLayer: layer), byteCount: store.byteCount,
               byteBudget: store.byteBudget, hitCount: hitCount, missCount: missCount)
    }

    /// Computes, in batches of equal length, the states of every sequence of `ids` not held
    /// yet, so that the training batches find them (nothing to do without a budget).
    public func prefill(_ ids: [[Int32]], model: LoRAClassifier, threads: Int) {
        guard store.byteBudget > 0 else { return }
        var seen = Set<[Int32]>()
        let missing = ids.filter { store.states($0, atLayer: layer) == nil && seen.insert($0).inserted }
        guard !missing.isEmpty else { return }
        store.compute(missing, layer: layer, model: model, threads: threads)
    }

    /// The input hidden states of `layer` for the sequences `ids[examples[i]]`, packed: example
    /// i's rows right after example i − 1's, no padding ([Σ length, C], for
    /// `EncoderLayer.Activations(for:lengths:)`). States not held are computed.
    public func packedHiddenStates(examples: [Int], ids: [[Int32]], model: LoRAClassifier, threads: Int) -> Tensor {
        let c = model.encoder.configuration.hiddenSize
        var firstRows: [Int] = [], rows = 0
        for e in examples { firstRows.append(rows); rows += ids[e].count }
        let out = Tensor.scratch(shape: [rows, c])   // every row is copied in below
        var misses: [Int] = []
        for (row, example) in examples.enumerated() {
            if let held = store.states(ids[example], atLayer: layer) {
                hitCount += 1
                held.withUnsafeBufferPointer {
                    (out.data + firstRows[row] * c).update(from: $0.baseAddress!, count: $0.count)
                }
            } else {
                misses.append(row)
            }
        }
        guard !misses.isEmpty else { return out }
        missCount += misses.count
        store.compute(misses.map { ids[examples[$0]] }, layer: layer, model: model, threads: threads) { i, rows in
            (out.data + firstRows[misses[i]] * c).update(from: rows.baseAddress!, count: rows.count)
        }
        return out
    }
}
