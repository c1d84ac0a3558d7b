import Crypto
import Foundation
import Support
import Store
import Training

/// Recomputes the tensor hash of a stage checkpoint from its HDF5 file and compares it with
/// the hash recorded in the file (docs/FORMAT.md, "Stage checkpoints").
///
/// Encoding: every float dataset under `/adapters` and `/head`, named by its path without the
/// leading slash ("adapters/encoder.layer.5.attention.self.query/lora_A", "head/weight"),
/// sorted by UTF-8 bytes; for each: the name's bytes, one 0x00 byte, the rank as UInt64
/// little-endian, each dimension as UInt64 little-endian, then the values as float32
/// little-endian, row-major. Any edited value, shape or name changes the hash.
public enum StageTensorDigest {
    /// The stage's recorded and recomputed hashes.
    public struct Check: Sendable, Equatable {
        public var recorded: String
        public var computed: String
        /// Values that are NaN or infinite (a diverged training run).
        public var nonFiniteCount = 0
        /// The settings JSON and the precision the file records as having trained it (nil
        /// when absent; precision is absent in files older than it: float32).
        public var hyperparametersJSON: String? = nil
        public var precision: String? = nil
        /// The first of shard, stage and stage_key that disagrees with the file's path (a file
        /// moved into another stage's place), as (field, from the path, recorded).
        public var slotMismatch: StageSlotMismatch? = nil
        public var matches: Bool { recorded == computed }
    }

    public static func check(_ url: URL) throws -> Check {
        let file = try HDF5File.openSealed(url) { TrainingError.damagedStage(file: url.path, reason: $0) }
        defer { try? file.close() }
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        func visit(_ path: String) throws {
            switch try file.kind(of: path) {
            case .group:
                for child in try file.children(of: path) { try visit(path + "/" + child) }
            case .dataset:
                let (values, shape) = try file.readFloats(at: path)
                tensors.append((path, shape, values))
            case nil:
                break
            }
        }
        for root in ["adapters", "head"] where try file.exists(root) { try visit(root) }
        tensors.sort { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        var hasher = SHA256()
        for tensor in tensors {
            hasher.update(data: Array(tensor.name.utf8) + [0])
            let header = ([tensor.shape.count] + tensor.shape).map { UInt64($0).littleEndian }
            header.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            tensor.values.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        let computed = Hex.encode(contiguous: hasher.finalize())
        let recorded = try file.hasAttribute(named: "tensors_sha256") ? try file.stringAttribute(named: "tensors_sha256") : ""
        let nonFinite = tensors.reduce(0) { count, tensor in count + tensor.values.lazy.filter { !$0.isFinite }.count }
        func string(_ name: String) throws -> String? {
            try file.hasAttribute(named: name) ? try file.stringAttribute(named: name) : nil
        }
        var slot: StageSlotMismatch?
        if try file.hasAttribute(named: "shard"), try file.hasAttribute(named: "stage"), let key = try string("stage_key"),
           let found = StageCheckpoint.slotMismatch(url, shard: Int(try file.intAttribute(named: "shard")),
                                                    stage: Int(try file.intAttribute(named: "stage")), key: key) {
            slot = StageSlotMismatch(field: found.field, path: found.expected, recorded: found.found)
        }
        return Check(recorded: recorded, computed: computed, nonFiniteCount: nonFinite,
                     hyperparametersJSON: try string("hyperparameters"), precision: try string("precision"),
                     slotMismatch: slot)
    }
}

/// A stage file whose recorded shard, stage or key is not the one its path names.
public struct StageSlotMismatch: Sendable, Equatable {
    public var field: String
    public var path: String
    public var recorded: String
}

