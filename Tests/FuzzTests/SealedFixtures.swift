import Foundation
@testable import Planning
@testable import Training

/// Small valid plans and stage checkpoints, saved as sealed files: the seeds that the fuzz and
/// edit tests change.
enum SealedFixtures {
    /// A plan of 24 examples (2 shards × 3 slices, 3 sequences) with "ex-3" deleted, saved at `url`.
    static func savePlan(at url: URL) throws {
        let examples = (0..<24).map { Example(id: "ex-\($0)", text: "t\($0)", label: $0 % 2 == 0 ? "a" : "b") }
        var plan = try Planner.makePlan(for: Dataset(examples: examples, source: "d", sha256: String(repeating: "0", count: 64)),
                                        parameters: PlanParameters(shardCount: 2, sliceCount: 3, budget: 3, seed: 1))
        try plan.addTombstones(["ex-3"])
        try plan.save(to: url)
    }

    /// Stage 2 of a prefix [1, 0] with one adapter and a head of two classes.
    static let checkpoint = StageCheckpoint(
        lineage: StageLineage(shard: 0, sequences: [0], stage: 2, prefixSlices: [1, 0],
                              prefixSliceHashes: [String(repeating: "1", count: 64), String(repeating: "2", count: 64)],
                              blockLayers: [4]),
        record: StageRecord(strategy: .s3t, baseModelSHA256: String(repeating: "3", count: 64), hyperparametersJSON: "{}",
                            seed: 5, threadCount: 1, softwareVersion: "fuzz", trainingLoss: 0.5, examplesSeen: 4,
                            wallTimeSeconds: 1, labels: ["a", "b"]),
        adapters: [NamedTensor(name: "encoder.layer.4.attention.self.query/lora_A", shape: [2, 4],
                               values: (0..<8).map(Float.init))],
        head: [NamedTensor(name: "bias", shape: [2], values: [0.5, -0.5]),
               NamedTensor(name: "weight", shape: [2, 4], values: (0..<8).map { Float($0) / 2 })])
}
