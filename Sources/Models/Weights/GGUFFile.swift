import Foundation
import Support

/// A GGUF v3 model file: its metadata, its tensor table and its (memory-mapped) data section.
///
/// Layout (little endian): magic `GGUF`, u32 version, u64 tensor count, u64 metadata count;
/// metadata entries (string key, u32 type, value); tensor infos (string name, u32 n_dims,
/// n_dims × u64 dims innermost first, u32 ggml type, u64 offset); padding to
/// `general.alignment` (default 32); the data section, which tensor offsets are relative to.
/// Strings are a u64 byte count followed by UTF-8 bytes.
public struct GGUFFile: Sendable {
    /// The path the file was read from (used in error messages).
    public let path: String
    /// The format version (always 3 for a file this reader accepts).
    public let version: UInt32
    /// Every metadata entry, by key.
    public let metadata: [String: GGUFValue]
    /// The tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// The alignment of the data section and of every tensor in it.
    public let alignment: Int
    /// Absolute byte offset of the data section.
    public let dataOffset: Int
    private let bytes: Data
    private let tensorIndex: [String: Int]

    /// Reads the file at `path` (memory-mapped) and parses its header.
    ///
    /// Throws `ModelsError` naming the file and the field, key or tensor when the file is not
    /// GGUF v3, is truncated, or has a tensor whose data runs past the end.
    public init(contentsOf path: String) throws {
        let data: Data
        try MappedFile.requireRegular(path)
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw ModelsError.fileUnreadable(path: path, reason: fileErrorReason(error))
        }
        try self.init(data: data, path: path)
    }

    /// Parses GGUF bytes already in memory; `path` is only used in error messages.
    public init(data: Data, path: String = "<memory>") throws {
        self.path = path
        self.bytes = data
        let header = try data.withUnsafeBytes { raw in
            var reader = GGUFReader(raw: raw, path: path)
            return try reader.readHeader()
        }
        version = header.version
        metadata = header.metadata
        alignment = header.alignment
        // The data section begins at the first multiple of the alignment after the infos.
        let end = header.infoEnd
        dataOffset = (end + alignment - 1) / alignment * alignment
        var index: [String: Int] = [:]
        for (i, info) in header.tensors.enumerated() {
            index[info.name] = i
            // The format places every tensor at a multiple of the alignment; an offset that is not
            // is a damaged or wrongly written file, whose tensors would be read from wrong bytes.
            if info.offset % alignment != 0 {
                throw ModelsError.ggufInvalid(path: path, what: "tensor '\(info.name)'",
                    reason: "its offset \(info.offset) is not a multiple of the alignment \(alignment)")
            }
            if let type = GGUFTensorType(rawValue: info.typeCode) {
                if info.elementCount % type.blockWeightCount != 0 {
                    throw ModelsError.tensorInvalid(path: path, tensor: info.name,
                        reason: "has \(info.elementCount) elements, not a multiple of the block size \(type.blockWeightCount)")
                }
                // Compared by subtraction: sizes from the file could overflow a sum.
                let (byteCount, overflow) = (info.elementCount / type.blockWeightCount)
                    .multipliedReportingOverflow(by: type.blockByteCount)
                if overflow || dataOffset > data.count || info.offset > data.count - dataOffset
                    || byteCount > data.count - dataOffset - info.offset {
                    throw ModelsError.ggufTruncated(path: path, what: "data of tensor '\(info.name)' ("
                                                    + (overflow ? "more than 2^63" : "\(byteCount)") + " bytes)",
                                                    offset: dataOffset &+ info.offset)
                }
            }
        }
        tensors = header.tensors
        tensorIndex = index
    }

    /// The tensor info for `name`, or nil.
    public func info(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor `name` dequantised to float32, row-major (outermost dimension first).
    public func floats(named name: String) throws -> [Float] {
        guard let info = info(named: name) else {
            throw ModelsError.tensorMissing(path: path, tensor: name)
        }
        guard let type = GGUFTensorType(rawValue: info.typeCode) else {
            throw ModelsError.unsupportedTensorType(path: path, tensor: name, code: info.typeCode)
        }
        let count = info.elementCount
        let start = dataOffset + info.offset
        return [Float](unsafeUninitializedCapacity: count) { out, initialised in
            bytes.withUnsafeBytes { raw in
                let source = UnsafeRawBufferPointer(rebasing: raw[start...])
                GGUFDequantizer.dequantize(type: type, source: source, count: count, into: out.baseAddress!)
            }
            initialised = count
        }
    }

    /// The metadata value for `key`, or a `missingMetadata` error naming what was expected.
    public func value(_ key: String, expected: String = "any") throws -> GGUFValue {
        guard let value = metadata[key] else {
            throw ModelsError.missingMetadata(path: path, key: key, expected: expected)
        }
        return value
    }

    /// An integer metadata value, or an error naming the key.
    public func integer(_ key: String) throws -> Int {
        guard let v = try value(key, expected: "integer").integer else {
            throw ModelsError.missingMetadata(path: path, key: key, expected: "integer")
        }
        return v
    }

    /// A floating-point metadata value, or an error naming the key.
    public func double(_ key: String) throws -> Double {
        guard let v = try value(key, expected: "number").double else {
            throw ModelsError.missingMetadata(path: path, key: key, expected: "number")
        }
        return v
    }

    /// A string array metadata value, or an error naming the key.
    public func strings(_ key: String) throws -> [String] {
        guard let values = try value(key, expected: "array of strings").array else {
            throw ModelsError.missingMetadata(path: path, key: key, expected: "array of strings")
        }
        var out: [String] = []
        out.reserveCapacity(values.count)
        for v in values {
            guard let s = v.string else {
                throw ModelsError.missingMetadata(path: path, key: key, expected: "array of strings")
            }
            out.append(s)
        }
        return out
    }
}

/// What the header parse yields before the data section is located.
struct GGUFHeader {
    var version: UInt32
    var metadata: [String: GGUFValue]
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    var infoEnd: Int
}
