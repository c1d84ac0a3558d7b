import Crypto
import Foundation
import Support

/// A float32 tensor with its checkpoint path, as stored in a stage checkpoint.
///
/// `name` is the dataset path inside the file's tensor groups, e.g.
/// "adapters/encoder.layer.5.attention.self.query/lora_A" or "head/weight"; `values` are
/// row-major.
public struct NamedTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "\(name): \(values.count) values for shape \(shape)")
        self.name = name; self.shape = shape; self.values = values
    }
}

/// The canonical SHA-256 of a set of tensors, recorded in every stage checkpoint.
///
/// Byte order (docs/FORMAT.md): tensors sorted by name (UTF-8 byte order); for each: the
/// name's UTF-8 bytes, a 0x00 byte, the number of dimensions as UInt64 little-endian, each
/// dimension as UInt64 little-endian, then the values as IEEE-754 float32 little-endian,
/// row-major. Independent of HDF5's layout, so h5py or numpy can recompute it
/// (`Tools/inspect_stage.py` does).
public enum TensorDigest {
    public static func sha256(_ tensors: [NamedTensor]) -> String {
        var hasher = SHA256()
        for tensor in tensors.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
            hasher.update(data: Array(tensor.name.utf8) + [0])
            var header: [UInt64] = [UInt64(tensor.shape.count).littleEndian]
            header += tensor.shape.map { UInt64($0).littleEndian }
            header.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            // Floats are little-endian on every platform Lethe runs on (x86-64, arm64).
            tensor.values.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        return Hex.encode(contiguous: hasher.finalize())
    }
}
