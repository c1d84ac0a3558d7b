import Kernels
import Foundation

/// Where a stage sits in the plan: the facts that make its checkpoint traceable (docs/DESIGN.md §4).
public struct StageLineage: Sendable, Equatable {
    /// 0-based shard.
    public var shard: Int
    /// 0-based indices of the shard's sequences whose prefix this stage is, when it was trained.
    public var sequences: [Int]
    /// 1-based stage index = prefix length.
    public var stage: Int
    /// 0-based slice indices of the prefix, in order (π1..πi).
    public var prefixSlices: [Int]
    /// The content hash of each prefix slice (SHA-256 over its sorted example ids).
    public var prefixSliceHashes: [String]
    /// 0-based encoder layers whose adapters this stage trained (its block).
    public var blockLayers: [Int]

    public init(shard: Int, sequences: [Int], stage: Int, prefixSlices: [Int],
                prefixSliceHashes: [String], blockLayers: [Int]) {
        precondition(prefixSlices.count == stage && prefixSliceHashes.count == stage,
                     "stage \(stage) needs \(stage) prefix slices")
        self.shard = shard; self.sequences = sequences; self.stage = stage
        self.prefixSlices = prefixSlices; self.prefixSliceHashes = prefixSliceHashes
        self.blockLayers = blockLayers
    }

    /// The stage's identity (SHA-256 over the ordered prefix slice hashes).
    public var key: StageKey { StageKey(prefixSliceHashes: prefixSliceHashes) }

    /// The key of the previous stage of the same prefix; nil for stage 1.
    public var parentKey: StageKey? {
        stage > 1 ? StageKey(prefixSliceHashes: Array(prefixSliceHashes.dropLast())) : nil
    }
}

/// How a stage was trained: everything a replay needs to reproduce it, and what it measured.
public struct StageRecord: Sendable, Equatable {
    /// "s3t" (the file holds block i only) or "sisa" (the file holds every adapter of the shard).
    public var strategy: TrainingStrategy
    public var baseModelSHA256: String
    /// The run's `TrainingSettings` as canonical JSON (sorted keys).
    public var hyperparametersJSON: String
    public var seed: UInt64
    public var threadCount: Int
    public var softwareVersion: String
    /// Mean training loss over the stage's last epoch.
    public var trainingLoss: Double
    /// Examples processed, summed over epochs.
    public var examplesSeen: Int
    public var wallTimeSeconds: Double
    /// Class names of the head's rows (`labels[k]` is row k), so a stage file is a complete
    /// model on its own; empty in files written before it was recorded.
    public var labels: [String]
    /// The arithmetic of the frozen products the stage was trained with (files written before
    /// it was recorded were float32).
    public var precision: Precision
    /// The model the adapters belong to (files written before decoders were trained: encoder).
    public var modelKind: ModelKind
    /// The kernels the stage was trained on (`BLASRuntime.kernelDescription`); empty in files
    /// written before it was recorded.
    public var kernels: String

    public init(strategy: TrainingStrategy, baseModelSHA256: String, hyperparametersJSON: String,
                seed: UInt64, threadCount: Int, softwareVersion: String, trainingLoss: Double,
                examplesSeen: Int, wallTimeSeconds: Double, labels: [String] = [], precision: Precision = .fp32,
                modelKind: ModelKind = .encoder, kernels: String = "") {
        self.strategy = strategy; self.baseModelSHA256 = baseModelSHA256
        self.hyperparametersJSON = hyperparametersJSON; self.seed = seed; self.threadCount = threadCount
        self.softwareVersion = softwareVersion; self.trainingLoss = trainingLoss
        self.examplesSeen = examplesSeen; self.wallTimeSeconds = wallTimeSeconds
        self.labels = labels; self.precision = precision; self.modelKind = modelKind
        self.kernels = kernels
    }
}

/// One stage checkpoint: the adapters trained at that stage, the head snapshot, lineage and
/// record. Stored as one HDF5 file (`StageCheckpoint+Storage.swift`, docs/FORMAT.md).
///
/// Adapter tensors are named "encoder.layer.N.<module>/lora_A" ([r, in]) and ".../lora_B"
/// ([out, r]) — PEFT's module paths and orientation; head tensors "weight" ([classes, hidden])
/// and "bias" ([classes]). A decoder run's stages name theirs "layers.N.<projection>/lora_A"
/// (e.g. "layers.29.q_proj/lora_A") and have no head.
public struct StageCheckpoint: Sendable, Equatable {
    public var lineage: StageLineage
    public var record: StageRecord
    public var adapters: [NamedTensor]
    public var head: [NamedTensor]

    public init(lineage: StageLineage, record: StageRecord, adapters: [NamedTensor], head: [NamedTensor]) {
        self.lineage = lineage; self.record = record; self.adapters = adapters; self.head = head
    }

    /// All tensors under their in-file paths ("adapters/…", "head/…").
    public var storedTensors: [NamedTensor] {
        adapters.map { NamedTensor(name: "adapters/" + $0.name, shape: $0.shape, values: $0.values) }
            + head.map { NamedTensor(name: "head/" + $0.name, shape: $0.shape, values: $0.values) }
    }

    /// The canonical SHA-256 of the stage's own tensors (`TensorDigest`).
    public var tensorsSHA256: String { TensorDigest.sha256(storedTensors) }

    /// The 0-based encoder layers that carry adapter tensors in this checkpoint.
    public var adapterLayers: [Int] {
        Set(adapters.compactMap { Self.layerIndex(ofAdapter: $0.name) }).sorted()
    }

    /// N of an adapter named "encoder.layer.N.…" (encoder) or "layers.N.…" (decoder).
    public static func layerIndex(ofAdapter name: String) -> Int? {
        for prefix in ["encoder.layer.", "layers."] where name.hasPrefix(prefix) {
            return Int(name.dropFirst(prefix.count).prefix { $0.isNumber })
        }
        return nil
    }
}

/// Which training scheme produced a run (docs/DESIGN.md §1 and its baselines).
public enum TrainingStrategy: String, Codable, Sendable, CaseIterable {
    /// Sequence-aware sharded sliced training: stage i trains block i from the top.
    case s3t
    /// SISA with LoRA: one sequence per shard, every adapter of the shard trainable at every stage.
    case sisa
    /// One model on all the data (the full fine-tune baseline).
    case full
}
