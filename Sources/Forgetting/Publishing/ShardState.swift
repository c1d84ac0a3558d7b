import Foundation
import Planning
import Training

/// What the plan implies for one shard: which slices still hold deleted data, how far each
/// sequence survives, what it serves and which stage files it keeps.
struct ShardState {
    let plan: Plan
    let shard: Int
    let layout: RunLayout

    init(plan: Plan, shard: Int, layout: RunLayout) {
        self.plan = plan; self.shard = shard; self.layout = layout
    }

    /// Tombstoned ids of the shard still in their slice's members.
    var unexcludedTombstones: [String] {
        plan.tombstones.filter { !plan.isExcluded($0) && plan.location(of: $0)?.shard == shard }
    }

    var hitSlices: Set<Int> { Set(plan.hitSlices.filter { $0.shard == shard }.map(\.slice)) }

    var prefixLengths: [Int] {
        let hits = hitSlices
        return plan.sequences(of: shard).map { DeletionLogic.survivingLength(of: $0, hitSlices: hits) }
    }

    /// The served entry: the longest surviving prefix (lowest sequence on ties), or dead.
    var servedEntry: ServedComposition.Entry {
        guard let served = DeletionLogic.servedSequence(prefixLengths: prefixLengths) else { return .dead(shard: shard) }
        let sequence = plan.sequences(of: shard)[served.sequence]
        return .init(shard: shard, sequence: served.sequence, prefixLength: served.prefixLength,
                     stageKeys: (1...served.prefixLength).map { key(ofPrefix: Array(sequence.prefix($0))) })
    }

    func key(ofPrefix prefix: [Int]) -> StageKey {
        StageKey(prefixSliceHashes: prefix.map { plan.sliceHash(shard: shard, slice: $0) })
    }

    /// The distinct stages (position, key) of every sequence's surviving prefix.
    func survivingStages() -> Set<SurvivingStage> {
        var stages = Set<SurvivingStage>()
        for (sequence, length) in zip(plan.sequences(of: shard), prefixLengths) where length > 0 {
            for i in 1...length {
                let prefix = Array(sequence.prefix(i))
                stages.insert(SurvivingStage(stage: i, key: key(ofPrefix: prefix), slices: prefix))
            }
        }
        return stages
    }

    struct SurvivingStage: Hashable {
        let stage: Int
        let key: StageKey
        /// The prefix's slices, in order.
        let slices: [Int]
    }

    /// Stage files of the shard in no surviving prefix of any sequence: they saw a deleted
    /// example, or belong to an older plan, or to a retrain whose plan was never published.
    func strayFiles() -> [URL] {
        let keep = Set(survivingStages().map { layout.stageURL(shard: shard, stage: $0.stage, key: $0.key).lastPathComponent })
        let directory = layout.shardDirectory(shard)
        return layout.stageFileNames(shard: shard).filter { !keep.contains($0) }.map { directory.appendingPathComponent($0) }
    }
}

/// What a publish derives for a shard, for readers outside this module (`lethe verify`).
public enum ServedDerivation {
    /// The entry a publish now writes for `shard`: its longest prefix without a deleted example
    /// (lowest sequence on ties), or dead.
    public static func entry(plan: Plan, shard: Int, layout: RunLayout) -> ServedComposition.Entry {
        ShardState(plan: plan, shard: shard, layout: layout).servedEntry
    }
}
