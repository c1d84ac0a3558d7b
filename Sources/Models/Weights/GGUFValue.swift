/// One metadata value of a GGUF file, with the type the file declares for it.
///
/// GGUF value type codes: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string,
/// 9 array, 10 u64, 11 i64, 12 f64. Arrays are homogeneous; their element type is recorded
/// so that an empty array still says what it would hold.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array(elementType: UInt32, [GGUFValue])

    /// The value as an integer, if it is one of the integer types.
    public var integer: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// The value as a floating-point number, if it is numeric.
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return integer.map(Double.init)
        }
    }

    /// The value as a string, if it is one.
    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// The elements, if the value is an array.
    public var array: [GGUFValue]? {
        if case let .array(_, values) = self { return values }
        return nil
    }
}

/// The storage type of a GGUF tensor (the subset of ggml types Lethe dequantises).
public enum GGUFTensorType: UInt32, Sendable {
    case f32 = 0, f16 = 1, q4_1 = 3, q8_0 = 8

    /// Weights per quantisation block.
    public var blockWeightCount: Int {
        switch self {
        case .f32, .f16: return 1
        case .q4_1, .q8_0: return 32
        }
    }

    /// Bytes per block: Q4_1 = f16 d + f16 m + 16 bytes of nibbles; Q8_0 = f16 d + 32 int8.
    public var blockByteCount: Int {
        switch self {
        case .f32: return 4
        case .f16: return 2
        case .q4_1: return 20
        case .q8_0: return 34
        }
    }
}

/// Where one tensor lives in a GGUF file and what shape it has.
public struct GGUFTensorInfo: Equatable, Sendable {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// Dimensions as GGUF lists them, innermost first: (576, 1536) is 1536 rows of 576.
    public let dimensions: [Int]
    /// The ggml type code as stored (may be a type this reader cannot dequantise).
    public let typeCode: UInt32
    /// Byte offset relative to the start of the data section.
    public let offset: Int

    /// Number of elements (product of the dimensions).
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Dimensions outermost first, the row-major shape: (576, 1536) → [1536, 576].
    public var rowMajorShape: [Int] { dimensions.reversed() }
}
