import CHDF5
import Foundation

/// Writes an `AttributeValue` as a new attribute: scalars on a scalar dataspace, arrays on a
/// 1-D one; strings variable-length UTF-8, integers `<i8`, floats `<f8`.
enum AttributeWriter {
    /// Creates and writes attribute `name` on `object`; false when HDF5 failed (its error stack
    /// says why).
    static func write(_ value: AttributeValue, named name: String, on object: hid_t) -> Bool {
        switch value {
        case .string(let item):
            return writeStrings([item], scalar: true, named: name, on: object)
        case .strings(let items):
            return writeStrings(items, scalar: false, named: name, on: object)
        case .int(let item):
            return writeNumbers([item], scalar: true, fileType: lethe_H5T_STD_I64LE(),
                                memoryType: lethe_H5T_NATIVE_INT64(), named: name, on: object)
        case .ints(let items):
            return writeNumbers(items, scalar: false, fileType: lethe_H5T_STD_I64LE(),
                                memoryType: lethe_H5T_NATIVE_INT64(), named: name, on: object)
        case .double(let item):
            return writeNumbers([item], scalar: true, fileType: lethe_H5T_IEEE_F64LE(),
                                memoryType: lethe_H5T_NATIVE_DOUBLE(), named: name, on: object)
        case .doubles(let items):
            return writeNumbers(items, scalar: false, fileType: lethe_H5T_IEEE_F64LE(),
                                memoryType: lethe_H5T_NATIVE_DOUBLE(), named: name, on: object)
        }
    }

    private static func writeNumbers<T>(_ items: [T], scalar: Bool, fileType: hid_t,
                                        memoryType: hid_t, named name: String,
                                        on object: hid_t) -> Bool {
        items.withUnsafeBytes { raw in
            create(count: items.count, scalar: scalar, fileType: fileType, memoryType: memoryType,
                   named: name, on: object, bytes: raw.baseAddress)
        }
    }

    private static func writeStrings(_ items: [String], scalar: Bool, named name: String,
                                     on object: hid_t) -> Bool {
        let type = makeVariableUTF8StringType()
        defer { if type >= 0 { _ = H5Tclose(type) } }
        guard type >= 0 else { return false }
        let pointers: [UnsafeMutablePointer<CChar>?] = items.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeBytes { raw in
            create(count: items.count, scalar: scalar, fileType: type, memoryType: type,
                   named: name, on: object, bytes: raw.baseAddress)
        }
    }

    private static func create(count: Int, scalar: Bool, fileType: hid_t, memoryType: hid_t,
                               named name: String, on object: hid_t,
                               bytes: UnsafeRawPointer?) -> Bool {
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, [hsize_t(count)], nil)
        guard space >= 0 else { return false }
        defer { _ = H5Sclose(space) }
        let attribute = H5Acreate2(object, name, fileType, space, lethe_H5P_DEFAULT(),
                                   lethe_H5P_DEFAULT())
        guard attribute >= 0 else { return false }
        defer { _ = H5Aclose(attribute) }
        return count == 0 || H5Awrite(attribute, memoryType, bytes) >= 0
    }
}

/// Reads an open attribute back into an `AttributeValue`.
enum AttributeReader {
    enum Failure: Error {
        /// A type or rank the store does not model, described for the message.
        case unsupported(String)
        /// HDF5 failed; its error stack says why.
        case library
        /// The attribute claims more values than a read may allocate (`ReadLimit`).
        case tooLarge(count: Int)
    }

    static func read(_ attribute: hid_t) -> Result<AttributeValue, Failure> {
        let type = H5Aget_type(attribute)
        let space = H5Aget_space(attribute)
        defer {
            if type >= 0 { _ = H5Tclose(type) }
            if space >= 0 { _ = H5Sclose(space) }
        }
        guard type >= 0, space >= 0 else { return .failure(.library) }
        let scalar = H5Sget_simple_extent_type(space) == H5S_SCALAR
        let rank = H5Sget_simple_extent_ndims(space)
        guard scalar || rank == 1 else {
            return .failure(.unsupported(rank < 0 ? "an unreadable dataspace" : "rank \(rank)"))
        }
        let count = Int(H5Sget_simple_extent_npoints(space))
        guard count >= 0 else { return .failure(.library) }
        // 8 bytes a value: an Int64, a Double or a string's pointer (fixed-length strings: below).
        guard ReadLimit.allows(count, elementByteCount: 8) else { return .failure(.tooLarge(count: count)) }
        switch H5Tget_class(type) {
        case H5T_INTEGER:
            var values = [Int64](repeating: 0, count: count)
            let status = count == 0 ? 0 : values.withUnsafeMutableBytes {
                H5Aread(attribute, lethe_H5T_NATIVE_INT64(), $0.baseAddress)
            }
            guard status >= 0 else { return .failure(.library) }
            return .success(scalar ? .int(values[0]) : .ints(values))
        case H5T_FLOAT:
            var values = [Double](repeating: 0, count: count)
            let status = count == 0 ? 0 : values.withUnsafeMutableBytes {
                H5Aread(attribute, lethe_H5T_NATIVE_DOUBLE(), $0.baseAddress)
            }
            guard status >= 0 else { return .failure(.library) }
            return .success(scalar ? .double(values[0]) : .doubles(values))
        case H5T_STRING:
            let strings = H5Tis_variable_str(type) > 0
                ? readVariable(attribute, type: type, space: space, count: count)
                : readFixed(attribute, type: type, count: count)
            guard let strings else { return .failure(.library) }
            return .success(scalar ? .string(strings.first ?? "") : .strings(strings))
        default:
            return .failure(.unsupported(ElementType(typeID: type).description))
        }
    }

    private static func readVariable(_ attribute: hid_t, type: hid_t, space: hid_t,
                                     count: Int) -> [String]? {
        let memoryType = makeVariableUTF8StringType()
        defer { if memoryType >= 0 { _ = H5Tclose(memoryType) } }
        guard memoryType >= 0, H5Tset_cset(memoryType, H5Tget_cset(type)) >= 0 else { return nil }
        if count == 0 { return [] }
        let (status, strings) = readVariableStrings(count: count, memoryType: memoryType,
                                                    space: space) { memory, buffer in
            H5Aread(attribute, memory, buffer)
        }
        return status >= 0 ? strings : nil
    }

    /// Fixed-length strings (numpy `S` arrays in h5py): NUL- or space-padded byte fields.
    private static func readFixed(_ attribute: hid_t, type: hid_t, count: Int) -> [String]? {
        let width = H5Tget_size(type)
        guard width > 0, ReadLimit.allows(count, elementByteCount: width) else { return nil }
        if count == 0 { return [] }
        var bytes = [UInt8](repeating: 0, count: width * count)
        let status = bytes.withUnsafeMutableBytes { H5Aread(attribute, type, $0.baseAddress) }
        guard status >= 0 else { return nil }
        return (0..<count).map { index in
            var field = bytes[(index * width)..<((index + 1) * width)]
            while let last = field.last, last == 0 || last == 0x20 { field = field.dropLast() }
            return String(decoding: field, as: UTF8.self)
        }
    }
}
