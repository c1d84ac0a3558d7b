/// The distinct stages of one shard and the order in which they are trained (docs/DESIGN.md §1).
///
/// Sequence b of the shard is a permutation π of its L slices; its stage i is the prefix
/// π1..πi and trains block i counted from the top: with n layers per block in an N-layer
/// encoder, block i is layers N−i·n ..< N−(i−1)·n. Stages with equal prefixes (equal keys) are
/// listed once, with every sequence that shares them, so they are trained once. Training order
/// is sequence by sequence, stage 1 to L, which guarantees a stage's parent (its prefix minus
/// the last slice) comes before it.
///
/// With `.sisa`, the shard must have exactly one sequence and every stage trains all the
/// adapter layers of the run (the top L·n layers), continuing from the previous stage.
public struct StageSchedule: Sendable {
    public let shard: Int
    public let strategy: TrainingStrategy
    /// Distinct stages in training order.
    public let stages: [StageLineage]
    /// For each sequence of the shard, its stage keys, stage 1 first.
    public let sequenceKeys: [[StageKey]]

    /// - Parameters:
    ///   - sequences: the shard's sequences, each a permutation of 0..<L.
    ///   - sliceHashes: content hash of each of the shard's L slices.
    ///   - layerCount: N, the encoder's layers; `layersPerBlock`: n, with L·n ≤ N.
    public init(shard: Int, sequences: [[Int]], sliceHashes: [String], layerCount: Int,
                layersPerBlock: Int, strategy: TrainingStrategy) throws {
        let sliceCount = sliceHashes.count
        guard layersPerBlock >= 1, sliceCount * layersPerBlock <= layerCount else {
            throw TrainingError.invalidValue(
                field: "layers-per-block", value: "\(layersPerBlock)",
                reason: "\(sliceCount) slices × \(layersPerBlock) layers per block must fit in the "
                    + "encoder's \(layerCount) layers")
        }
        if strategy == .sisa, sequences.count != 1 {
            throw TrainingError.invalidValue(field: "strategy", value: "sisa",
                                             reason: "SISA needs a plan with budget 1, found "
                                                 + "\(sequences.count) sequences in shard \(shard)")
        }
        for sequence in sequences where sequence.sorted() != Array(0..<sliceCount) {
            throw TrainingError.invalidValue(field: "sequence", value: "\(sequence)",
                                             reason: "not a permutation of the shard's \(sliceCount) slices")
        }
        let adapterLayers = Array(layerCount - sliceCount * layersPerBlock ..< layerCount)
        var stages: [StageLineage] = []
        var positionByKey: [StageKey: Int] = [:]
        var sequenceKeys: [[StageKey]] = []
        for (b, sequence) in sequences.enumerated() {
            var keys: [StageKey] = []
            for i in 1...sliceCount {
                let prefix = Array(sequence.prefix(i))
                let block = strategy == .sisa ? adapterLayers
                    : Array(layerCount - i * layersPerBlock ..< layerCount - (i - 1) * layersPerBlock)
                let lineage = StageLineage(shard: shard, sequences: [b], stage: i, prefixSlices: prefix,
                                           prefixSliceHashes: prefix.map { sliceHashes[$0] },
                                           blockLayers: block)
                let key = lineage.key
                keys.append(key)
                if let position = positionByKey[key] {
                    stages[position].sequences.append(b)
                } else {
                    positionByKey[key] = stages.count
                    stages.append(lineage)
                }
            }
            sequenceKeys.append(keys)
        }
        self.shard = shard; self.strategy = strategy
        self.stages = stages; self.sequenceKeys = sequenceKeys
    }

    private init(shard: Int, strategy: TrainingStrategy, stages: [StageLineage], sequenceKeys: [[StageKey]]) {
        self.shard = shard; self.strategy = strategy; self.stages = stages; self.sequenceKeys = sequenceKeys
    }

    /// The `full` baseline: one stage, stored as shard 0, that trains `adapterLayers` on all the
    /// data at once; `dataHash` is the content hash of every example id of the plan.
    public static func full(dataHash: String, adapterLayers: [Int]) -> StageSchedule {
        let lineage = StageLineage(shard: 0, sequences: [0], stage: 1, prefixSlices: [0],
                                   prefixSliceHashes: [dataHash], blockLayers: adapterLayers)
        return StageSchedule(shard: 0, strategy: .full, stages: [lineage], sequenceKeys: [[lineage.key]])
    }

    /// The distinct stage with this key.
    public func stage(_ key: StageKey) -> StageLineage? { stages.first { $0.key == key } }
}
