import Crypto
import Foundation
import Planning
import Store
import Forgetting
import Training

/// A run directory with a real plan and stand-in stage checkpoints, for engine tests that need
/// no training: 2 shards × 3 slices × 3 cyclic sequences over 36 examples in 6 groups. Every
/// distinct stage prefix gets an HDF5 file at the trainer's path with one adapter and a head
/// (values derived from the stage key) and its recorded tensor hash; `served.json` serves
/// sequence 0 at full length, as `lethe train` leaves a run.
public struct TinyRun {
    public let directory: URL
    public let plan: Plan
    public let dataset: Dataset

    /// - Parameter stageFiles: false leaves the stages to a trainer (`TinyRun.trained`).
    public init(_ label: String = #function, shards: Int = 2, slices: Int = 3, budget: Int = 3,
         dataset given: Dataset? = nil, stageFiles: Bool = true) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lethe-forget-\(label.filter(\.isLetter))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let examples = (0..<36).map { i in
            Example(id: String(format: "ex-%02d", i), text: "text \(i)", label: i % 2 == 0 ? "a" : "b",
                    group: "movie-\(i % 6)")
        }
        dataset = given ?? Dataset(examples: examples, source: "tiny.jsonl", sha256: String(repeating: "0", count: 64))
        plan = try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: shards, sliceCount: slices,
                                                                             budget: budget, seed: 7))
        try plan.save(to: Plan.url(inRun: directory))
        guard stageFiles else { return }
        var entries: [ServedComposition.Entry] = []
        for shard in 0..<shards {
            let directory = RunLayout(directory: self.directory).shardDirectory(shard)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for sequence in plan.sequences(of: shard) {
                for length in 1...slices {
                    let key = stageKey(shard: shard, prefix: Array(sequence.prefix(length)))
                    try Self.writeStage(to: RunLayout(directory: self.directory).stageURL(shard: shard, stage: length, key: key),
                                        key: key, prefix: Array(sequence.prefix(length)))
                }
            }
            let first = plan.sequences(of: shard)[0]
            entries.append(.init(shard: shard, sequence: 0, prefixLength: slices,
                                 stageKeys: (1...slices).map { stageKey(shard: shard, prefix: Array(first.prefix($0))) }))
        }
        try ServedComposition(strategy: .s3t, shards: entries, ledgerHead: .empty).save(to: RunLayout(directory: directory))
    }


    public static func writeStage(to url: URL, key: StageKey, prefix: [Int]) throws {
        guard !FileManager.default.fileExists(atPath: url.path) else { return }  // shared prefix
        let seed = Float(key.hex.utf8.prefix(8).reduce(0) { $0 &* 31 &+ Int($1) } % 1000)
        let tensors: [(String, [Int], [Float])] = [
            ("adapters/encoder.layer.5.attention.self.query/lora_A", [2, 3], (0..<6).map { seed + Float($0) }),
            ("head/weight", [2, 4], (0..<8).map { seed - Float($0) }),
        ]
        try HDF5File.writeAtomically(to: url, sealed: true) { file in
            for (name, shape, values) in tensors { try file.write(values, shape: shape, at: name) }
            try file.setAttribute(.string("lethe-stage"), named: "format")
            try file.setAttribute(.string(key.hex), named: "stage_key")
            try file.setAttribute(.ints(prefix.map(Int64.init)), named: "prefix_slices")
            try file.setAttribute(.string(tensorDigest(tensors)), named: "tensors_sha256")
        }
    }

    /// The stage format's tensor hash written out from its specification (docs/FORGETTING.md),
    /// independently of `StageTensorDigest`: names sorted; name, 0x00, u64le rank and dims,
    /// f32le values.
    public static func tensorDigest(_ tensors: [(String, [Int], [Float])]) -> String {
        var bytes: [UInt8] = []
        for (name, shape, values) in tensors.sorted(by: { $0.0 < $1.0 }) {
            bytes += Array(name.utf8) + [0]
            for value in [shape.count] + shape { bytes += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(value) >> (8 * $0)) } }
            for value in values { bytes += (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * $0)) } }
        }
        return SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    public func stageURL(shard: Int, prefix: [Int]) -> URL {
        RunLayout(directory: directory).stageURL(shard: shard, stage: prefix.count, key: stageKey(shard: shard, prefix: prefix))
    }

    public func stageKey(shard: Int, prefix: [Int]) -> StageKey {
        StageKey(prefixSliceHashes: prefix.map { plan.sliceHash(shard: shard, slice: $0) })
    }

    public func stageExists(shard: Int, prefix: [Int]) -> Bool {
        FileManager.default.fileExists(atPath: RunLayout(directory: directory).stageURL(shard: shard, stage: prefix.count,
                                                              key: stageKey(shard: shard, prefix: prefix)).path)
    }

    /// Group → member ids, as the CLI resolves groups from the dataset.
    public var groups: Forgetter.GroupResolver {
        let examples = dataset.examples
        return { group in examples.filter { $0.group == group }.map(\.id) }
    }

    public func served() throws -> ServedComposition {
        try ServedComposition.load(from: RunLayout(directory: directory).servedURL)
    }

    public func remove() { try? FileManager.default.removeItem(at: directory) }
}
