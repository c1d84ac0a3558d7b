import Foundation

/// A memory-mapped safetensors file: a validated index of its tensors and read access to them.
///
/// Format: an unsigned 64-bit little-endian header length N, N bytes of JSON mapping each tensor
/// name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the end of the
/// header) plus an optional `"__metadata__"` string map, then the raw little-endian data.
///
/// Contract: `init` validates the whole header before returning — every offset pair lies inside
/// the data section, no two tensors overlap, and `shape × dtype size == end − begin` — so the
/// accessors never read outside the mapping. The mapping lives as long as this value (and its
/// copies); accessors return fresh arrays and never alias the mapping.
public struct SafeTensors: Sendable {
    /// Element types this reader understands.
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64"

        /// Bytes per element.
        public var byteCount: Int {
            switch self {
            case .f32: return 4
            case .f16, .bf16: return 2
            case .i64: return 8
            }
        }
    }

    /// Where one tensor lives and what it holds.
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the whole file (header included).
        public let fileByteRange: Range<Int>

        /// Number of elements (1 for a scalar of shape []).
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// The file this was read from.
    public let path: String
    /// Every tensor, by name.
    public let tensors: [String: TensorInfo]
    /// The optional `__metadata__` map.
    public let metadata: [String: String]
    private let mapping: MappedFile

    /// Maps `path` and validates its header.
    /// - Throws: `ModelsError` naming the file (and the tensor) for anything malformed.
    public init(contentsOf path: String) throws {
        let mapping = try MappedFile(path: path)
        self.path = path
        self.mapping = mapping
        let size = mapping.byteCount
        guard size >= 8 else {
            throw ModelsError.truncated(path: path, expectedByteCount: 8, foundByteCount: size)
        }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(mapping.bytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(size - 8) else {
            // (A length near 2^64 is no header at all; the message must not print it overflowed.)
            throw ModelsError.truncated(path: path, expectedByteCount: headerLength > UInt64(Int.max - 8) ? Int.max
                                            : 8 + Int(headerLength), foundByteCount: size)
        }
        let dataStart = 8 + Int(headerLength)
        let headerData = Data(bytes: mapping.bytes + 8, count: Int(headerLength))
        let parsed = try Self.parseHeader(headerData, path: path, dataStart: dataStart,
                                          dataByteCount: size - dataStart)
        self.tensors = parsed.tensors
        self.metadata = parsed.metadata
    }

    /// The entry for `name`.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = tensors[name] else { throw ModelsError.tensorMissing(path: path, tensor: name) }
        return info
    }

    /// The tensor `name` as float32, widening F16 and BF16; optionally checks its shape.
    public func floats(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
        let info = try info(name)
        if let expected, expected != info.shape {
            throw ModelsError.shapeMismatch(path: path, tensor: name, expected: expected, found: info.shape)
        }
        let base = mapping.bytes + info.fileByteRange.lowerBound
        let n = info.elementCount
        switch info.dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: n) { buffer, count in
                // The data section need not be 4-byte aligned: copy bytes, then fix endianness.
                memcpy(buffer.baseAddress!, base, n * 4)
                for i in 0..<n { buffer[i] = Float(bitPattern: UInt32(littleEndian: buffer[i].bitPattern)) }
                count = n
            }
        case .f16:
            return (0..<n).map { i in Half.float(fromBits: Self.loadUInt16(base + 2 * i)) }
        case .bf16:
            // bfloat16 is the top half of a float32.
            return (0..<n).map { i in Float(bitPattern: UInt32(Self.loadUInt16(base + 2 * i)) << 16) }
        case .i64:
            throw ModelsError.dtypeMismatch(path: path, tensor: name, expected: "F32, F16 or BF16", found: "I64")
        }
    }

    /// The I64 tensor `name`.
    public func int64s(_ name: String) throws -> [Int64] {
        let info = try info(name)
        guard info.dtype == .i64 else {
            throw ModelsError.dtypeMismatch(path: path, tensor: name, expected: "I64", found: info.dtype.rawValue)
        }
        let base = mapping.bytes + info.fileByteRange.lowerBound
        return (0..<info.elementCount).map { i in
            var bits: UInt64 = 0
            memcpy(&bits, base + 8 * i, 8)
            return Int64(bitPattern: UInt64(littleEndian: bits))
        }
    }

    private static func loadUInt16(_ pointer: UnsafePointer<UInt8>) -> UInt16 {
        UInt16(pointer[0]) | UInt16(pointer[1]) << 8
    }
}

extension SafeTensors {
    private static func parseHeader(_ data: Data, path: String, dataStart: Int, dataByteCount: Int) throws
        -> (tensors: [String: TensorInfo], metadata: [String: String])
    {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ModelsError.headerInvalid(path: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let entries = object as? [String: Any] else {
            throw ModelsError.headerInvalid(path: path, reason: "the header is not a JSON object")
        }
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                guard let map = value as? [String: String] else {
                    throw ModelsError.headerInvalid(path: path, reason: "__metadata__ is not a map of strings")
                }
                metadata = map
                continue
            }
            tensors[name] = try parseEntry(name: name, value: value, path: path, dataStart: dataStart,
                                           dataByteCount: dataByteCount)
        }
        // No overlap: sorted by start, each tensor must end before the next begins.
        let sorted = tensors.values.sorted {
            ($0.fileByteRange.lowerBound, $0.name) < ($1.fileByteRange.lowerBound, $1.name)
        }
        for (a, b) in zip(sorted, sorted.dropFirst())
        where !a.fileByteRange.isEmpty && !b.fileByteRange.isEmpty && a.fileByteRange.upperBound > b.fileByteRange.lowerBound {
            throw ModelsError.tensorsOverlap(path: path, first: a.name, second: b.name)
        }
        return (tensors, metadata)
    }

    private static func parseEntry(name: String, value: Any, path: String, dataStart: Int, dataByteCount: Int)
        throws -> TensorInfo
    {
        func invalid(_ reason: String) -> ModelsError { .tensorInvalid(path: path, tensor: name, reason: reason) }
        guard let fields = value as? [String: Any] else { throw invalid("entry is not a JSON object") }
        guard let dtypeName = fields["dtype"] as? String else { throw invalid("missing dtype") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw invalid("unsupported dtype \(dtypeName) (supported: F32, F16, BF16, I64)")
        }
        guard let shapeValues = fields["shape"] as? [Any] else { throw invalid("missing shape") }
        let shape = try shapeValues.map { v -> Int in
            guard let n = v as? Int, n >= 0 else { throw invalid("shape \(shapeValues) has a non-integer or negative dimension") }
            return n
        }
        guard let offsets = fields["data_offsets"] as? [Any], offsets.count == 2,
              let begin = offsets[0] as? Int, let end = offsets[1] as? Int
        else { throw invalid("data_offsets must be two integers") }
        guard begin >= 0, begin <= end else { throw invalid("data_offsets [\(begin), \(end)] are not ordered") }
        guard end <= dataByteCount else {
            throw invalid("data_offsets end \(end) lies beyond the data section of \(dataByteCount) bytes (file truncated?)")
        }
        var elementCount = 1
        for d in shape {
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: d)
            guard !overflow else { throw invalid("shape \(shape) overflows") }
            elementCount = product
        }
        let (expectedBytes, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow, expectedBytes == end - begin else {
            let needed = overflow ? "more than 2^63" : "\(expectedBytes)"
            throw invalid("shape \(shape) × \(dtype.rawValue) needs \(needed) bytes, data_offsets give \(end - begin)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape,
                          fileByteRange: (dataStart + begin)..<(dataStart + end))
    }
}
