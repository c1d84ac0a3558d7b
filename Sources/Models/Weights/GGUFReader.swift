import Support
/// A bounds-checked little-endian cursor over the header of a GGUF file.
///
/// Every read names what it was reading, so a truncated file reports the field and the offset.
/// Sizes come from the file, so each is checked before it is used: a count never exceeds the
/// bytes left to hold its elements, arrays nest at most `maximumArrayDepth` deep and hold at
/// most `maximumArrayCount` elements, a tensor's element count does not overflow, and the
/// alignment is a power of two of at most 2³¹ (the spec's u32).
struct GGUFReader {
    /// Deepest nesting of metadata arrays (real files nest none; each level recurses).
    static let maximumArrayDepth = 8
    /// Most elements of one metadata array: above the largest tokenizer tables (~300,000 merges),
    /// and it bounds the memory a hostile count can claim.
    static let maximumArrayCount = 1 << 24

    let raw: UnsafeRawBufferPointer
    let path: String
    var offset = 0
    /// The key or tensor being read, for error messages.
    var context = "header"

    init(raw: UnsafeRawBufferPointer, path: String) {
        self.raw = raw
        self.path = path
    }

    mutating func need(_ count: Int, _ what: String) throws {
        if count < 0 || offset + count > raw.count {
            throw ModelsError.ggufTruncated(path: path, what: "\(what) of \(context)", offset: offset)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        let v = raw.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readCount(_ what: String) throws -> Int {
        let n = try read(UInt64.self, what)
        guard n <= UInt64(raw.count) else {
            throw ModelsError.ggufTruncated(path: path, what: "\(what) (\(n)) of \(context)", offset: offset - 8)
        }
        return Int(n)
    }

    mutating func readString(_ what: String) throws -> String {
        let n = try readCount("length of \(what)")
        try need(n, what)
        let slice = UnsafeRawBufferPointer(rebasing: raw[offset ..< offset + n])
        guard let s = String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw ModelsError.invalidString(path: path, offset: offset)
        }
        offset += n
        return s
    }

    /// One metadata value of type code `type`; `depth` counts the arrays it is nested in.
    mutating func readValue(type: UInt32, key: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try read(UInt8.self, "u8 value"))
        case 1: return .int8(try read(Int8.self, "i8 value"))
        case 2: return .uint16(try read(UInt16.self, "u16 value"))
        case 3: return .int16(try read(Int16.self, "i16 value"))
        case 4: return .uint32(try read(UInt32.self, "u32 value"))
        case 5: return .int32(try read(Int32.self, "i32 value"))
        case 6: return .float32(Float(bitPattern: try read(UInt32.self, "f32 value")))
        case 7: return .bool(try read(UInt8.self, "bool value") != 0)
        case 8: return .string(try readString("string value"))
        case 9:
            let elementType = try read(UInt32.self, "array element type")
            // Nested arrays (element type 9) recurse: each element carries its own header.
            guard elementType != 9 || depth < Self.maximumArrayDepth else {
                throw ModelsError.ggufInvalid(path: path, what: "metadata '\(key)'",
                                              reason: "arrays nested more than \(Self.maximumArrayDepth) deep")
            }
            let count = try readCount("array length")
            guard count <= (raw.count - offset) / Self.smallestEncoding(of: elementType) else {
                throw ModelsError.ggufTruncated(path: path, what: "array of \(count) elements of \(context)", offset: offset)
            }
            guard count <= Self.maximumArrayCount else {
                throw ModelsError.ggufInvalid(path: path, what: "metadata '\(key)'",
                                              reason: "an array of \(count) elements (at most \(Self.maximumArrayCount))")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(count)
            for _ in 0 ..< count {
                values.append(try readValue(type: elementType, key: key, depth: depth + 1))
            }
            return .array(elementType: elementType, values)
        case 10: return .uint64(try read(UInt64.self, "u64 value"))
        case 11: return .int64(try read(Int64.self, "i64 value"))
        case 12: return .float64(Double(bitPattern: try read(UInt64.self, "f64 value")))
        default:
            throw ModelsError.unknownValueType(path: path, key: key, code: type)
        }
    }

    /// The fewest bytes a value of type code `type` takes (a string its u64 length, an array
    /// its element type and count); 1 for an unknown type, which fails when read.
    static func smallestEncoding(of type: UInt32) -> Int {
        switch type {
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        case 9: return 12
        default: return 1
        }
    }

    mutating func readHeader() throws -> GGUFHeader {
        try need(4, "magic")
        let magic = Array(UnsafeRawBufferPointer(rebasing: raw[0 ..< 4]))
        guard magic == Array("GGUF".utf8) else {
            throw ModelsError.badMagic(path: path, found: Hex.encode(magic))
        }
        offset = 4
        let version = try read(UInt32.self, "version")
        guard version == 3 else { throw ModelsError.unsupportedVersion(path: path, found: version) }
        let tensorCount = try readCount("tensor count")
        let metadataCount = try readCount("metadata count")
        var metadata: [String: GGUFValue] = [:]
        for i in 0 ..< metadataCount {
            context = "metadata entry \(i)"
            let key = try readString("key")
            context = "metadata '\(key)'"
            let type = try read(UInt32.self, "value type")
            metadata[key] = try readValue(type: type, key: key)
        }
        // A tensor info takes at least 24 bytes: name length, dimension count, type, offset.
        guard tensorCount <= (raw.count - offset) / 24 else {
            throw ModelsError.ggufTruncated(path: path, what: "\(tensorCount) tensor infos", offset: offset)
        }
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(tensorCount)
        for i in 0 ..< tensorCount {
            context = "tensor info \(i)"
            let name = try readString("name")
            context = "tensor '\(name)'"
            let dimCount = Int(try read(UInt32.self, "dimension count"))
            guard dimCount <= 8 else {
                throw ModelsError.tensorInvalid(path: path, tensor: name, reason: "has \(dimCount) dimensions (at most 8 allowed)")
            }
            var dims: [Int] = []
            var elementCount = 1
            for _ in 0 ..< dimCount {
                let dimension = try readCount("dimension")
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw ModelsError.tensorInvalid(path: path, tensor: name, reason: "dimensions \(dims + [dimension]) "
                                                    + "give more elements than a 64-bit count holds")
                }
                dims.append(dimension)
                elementCount = product
            }
            let typeCode = try read(UInt32.self, "type")
            let tensorOffset = try readCount("data offset")
            tensors.append(GGUFTensorInfo(name: name, dimensions: dims, typeCode: typeCode, offset: tensorOffset))
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.integer, v > 0, v <= 1 << 31, v & (v - 1) == 0 else {
                throw ModelsError.missingMetadata(path: path, key: "general.alignment",
                                                  expected: "power-of-two integer of at most 2^31")
            }
            alignment = v
        }
        return GGUFHeader(version: version, metadata: metadata, tensors: tensors, alignment: alignment, infoEnd: offset)
    }
}
