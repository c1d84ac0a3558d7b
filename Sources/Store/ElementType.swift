import CHDF5

/// The element types the store writes and reads, as found in a dataset on disk.
///
/// On disk every number is little-endian: float32 = IEEE binary32, float16 = IEEE binary16
/// (numpy/h5py `<f2`), int64 = two's complement `<i8`, uint8 = `|u1` (raw bytes), string =
/// variable-length UTF-8 (h5py `str`). Anything else is reported as `unsupported` with a
/// short description such as "float64" or "int32", so a type check can say what it found.
public enum ElementType: Equatable, Sendable, CustomStringConvertible {
    case float32
    case float16
    case int64
    case uint8
    case string
    case unsupported(String)

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .int64: return "int64"
        case .uint8: return "uint8"
        case .string: return "string"
        case .unsupported(let what): return what
        }
    }

    /// Bytes per element in memory and on disk (8 for a string: one pointer / heap reference).
    var byteCount: Int {
        switch self {
        case .float32: return 4
        case .float16: return 2
        case .int64: return 8
        case .uint8: return 1
        case .string, .unsupported: return 8
        }
    }

    /// Classifies an HDF5 datatype (file or memory) by class, size and sign.
    init(typeID: hid_t) {
        let size = H5Tget_size(typeID)
        switch H5Tget_class(typeID) {
        case H5T_FLOAT:
            switch size {
            case 4: self = .float32
            case 2: self = .float16
            default: self = .unsupported("float\(size * 8)")
            }
        case H5T_INTEGER:
            let signed = H5Tget_sign(typeID) == H5T_SGN_2
            switch (signed, size) {
            case (true, 8): self = .int64
            case (false, 1): self = .uint8
            default: self = .unsupported("\(signed ? "int" : "uint")\(size * 8)")
            }
        case H5T_STRING:
            self = H5Tis_variable_str(typeID) > 0
                ? .string : .unsupported("fixed-length string of \(size) bytes")
        case H5T_COMPOUND: self = .unsupported("compound")
        case H5T_ENUM: self = .unsupported("enum")
        case H5T_ARRAY: self = .unsupported("array")
        case H5T_VLEN: self = .unsupported("variable-length sequence")
        case H5T_REFERENCE: self = .unsupported("reference")
        case H5T_OPAQUE: self = .unsupported("opaque")
        case H5T_BITFIELD: self = .unsupported("bitfield")
        default: self = .unsupported("unknown type")
        }
    }
}

/// What `info(at:)` reports about a dataset: its element type and shape (`[]` for a scalar).
public struct DatasetInfo: Equatable, Sendable {
    public var elementType: ElementType
    public var shape: [Int]

    /// Number of elements: the product of the shape (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    public init(elementType: ElementType, shape: [Int]) {
        self.elementType = elementType
        self.shape = shape
    }
}

/// The kind of object a path names inside a file.
public enum NodeKind: Equatable, Sendable {
    case group
    case dataset
}
