import CHDF5
import Foundation

/// A value stored as an HDF5 attribute: a string, a 64-bit integer or a double, scalar or a
/// 1-D array. h5py reads them as `str`, `numpy.int64`, `numpy.float64` and numpy arrays.
public enum AttributeValue: Equatable, Sendable, ExpressibleByStringLiteral,
                            ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    case string(String)
    case strings([String])
    case int(Int64)
    case ints([Int64])
    case double(Double)
    case doubles([Double])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }

    /// A short name of the kind, for type-mismatch messages ("string", "int array", …).
    public var kindName: String {
        switch self {
        case .string: return "string"
        case .strings: return "string array"
        case .int: return "int"
        case .ints: return "int array"
        case .double: return "double"
        case .doubles: return "double array"
        }
    }
}

/// Attributes on the file's root, on groups and on datasets.
///
/// Setting an attribute replaces any attribute of the same name. Reading converts any stored
/// integer type to `Int64` and any float type to `Double`, so attributes written by h5py
/// (`attrs["r"] = 8`) read back naturally.
extension HDF5Location {
    /// Sets (or replaces) attribute `name` on the object at `relativePath` ("" = this location).
    public func setAttribute(_ value: AttributeValue, named name: String,
                             at relativePath: String = "") throws {
        let target = try absolutePath(relativePath)
        try file.requireWritable(path: target)
        if case .strings(let items) = value, items.contains(where: { $0.utf8.contains(0) }) {
            throw StoreError.invalidArgument(file: file.url.path, path: target,
                                             reason: "attribute '\(name)' has a string with NUL")
        }
        if case .string(let item) = value, item.utf8.contains(0) {
            throw StoreError.invalidArgument(file: file.url.path, path: target,
                                             reason: "attribute '\(name)' has a string with NUL")
        }
        let object = try openObject(atAbsolute: target)
        defer { _ = H5Oclose(object) }
        let present = H5Aexists(object, name)
        if present < 0 || (present > 0 && H5Adelete(object, name) < 0) {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "replace attribute '\(name)'")
        }
        let ok = AttributeWriter.write(value, named: name, on: object)
        guard ok else {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "write attribute '\(name)'")
        }
    }

    /// The attribute `name` of the object at `relativePath`.
    public func attribute(named name: String, at relativePath: String = "") throws -> AttributeValue {
        let target = try absolutePath(relativePath)
        let object = try openObject(atAbsolute: target)
        defer { _ = H5Oclose(object) }
        let present = H5Aexists(object, name)
        if present < 0 {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "look up attribute '\(name)'")
        }
        guard present > 0 else {
            throw StoreError.missingAttribute(file: file.url.path, path: target, name: name)
        }
        let attribute = H5Aopen(object, name, lethe_H5P_DEFAULT())
        guard attribute >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "open attribute '\(name)'")
        }
        defer { _ = H5Aclose(attribute) }
        switch AttributeReader.read(attribute) {
        case .success(let value): return value
        case .failure(.unsupported(let found)):
            throw StoreError.typeMismatch(file: file.url.path, path: "\(target)@\(name)",
                                          expected: "a string, integer or float (scalar or 1-D)",
                                          found: found)
        case .failure(.library):
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "read attribute '\(name)'")
        case .failure(.tooLarge(let count)):
            throw StoreError.tooLarge(file: file.url.path, path: "\(target)@\(name)", elementCount: count,
                                      elementByteCount: 8)
        }
    }

    /// Whether the object at `relativePath` has an attribute `name`.
    public func hasAttribute(named name: String, at relativePath: String = "") throws -> Bool {
        let target = try absolutePath(relativePath)
        let object = try openObject(atAbsolute: target)
        defer { _ = H5Oclose(object) }
        let present = H5Aexists(object, name)
        if present < 0 {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "look up attribute '\(name)'")
        }
        return present > 0
    }

    /// The attribute names of the object at `relativePath`, sorted.
    public func attributeNames(at relativePath: String = "") throws -> [String] {
        let target = try absolutePath(relativePath)
        let object = try openObject(atAbsolute: target)
        defer { _ = H5Oclose(object) }
        let count = lethe_attribute_count(object)
        guard count >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "count attributes")
        }
        var names: [String] = []
        for index in 0..<hsize_t(count) {
            let length = H5Aget_name_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0,
                                            lethe_H5P_DEFAULT())
            var buffer = [CChar](repeating: 0, count: max(0, Int(length)) + 1)
            guard length >= 0,
                  H5Aget_name_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer,
                                     buffer.count, lethe_H5P_DEFAULT()) >= 0 else {
                throw HDF5Library.failure(file: file.url.path, path: target,
                                          operation: "list attributes")
            }
            names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) },
                                as: UTF8.self))
        }
        return names.sorted()
    }

    /// The string attribute `name`; `typeMismatch` if it holds something else.
    public func stringAttribute(named name: String, at relativePath: String = "") throws -> String {
        try typedAttribute(name, relativePath, expected: "string") {
            if case .string(let v) = $0 { v } else { nil }
        }
    }

    /// The string-array attribute `name`; `typeMismatch` if it holds something else.
    public func stringsAttribute(named name: String, at relativePath: String = "") throws -> [String] {
        try typedAttribute(name, relativePath, expected: "string array") {
            if case .strings(let v) = $0 { v } else { nil }
        }
    }

    /// The scalar integer attribute `name`; `typeMismatch` if it holds something else.
    public func intAttribute(named name: String, at relativePath: String = "") throws -> Int64 {
        try typedAttribute(name, relativePath, expected: "int") {
            if case .int(let v) = $0 { v } else { nil }
        }
    }

    /// The integer-array attribute `name`; `typeMismatch` if it holds something else.
    public func intsAttribute(named name: String, at relativePath: String = "") throws -> [Int64] {
        try typedAttribute(name, relativePath, expected: "int array") {
            if case .ints(let v) = $0 { v } else { nil }
        }
    }

    /// The scalar float attribute `name` as a `Double`; `typeMismatch` if it holds something else.
    public func doubleAttribute(named name: String, at relativePath: String = "") throws -> Double {
        try typedAttribute(name, relativePath, expected: "double") {
            if case .double(let v) = $0 { v } else { nil }
        }
    }

    /// The float-array attribute `name` as `Double`s; `typeMismatch` if it holds something else.
    public func doublesAttribute(named name: String, at relativePath: String = "") throws -> [Double] {
        try typedAttribute(name, relativePath, expected: "double array") {
            if case .doubles(let v) = $0 { v } else { nil }
        }
    }

    /// The attribute `name` through `extract`; `typeMismatch` naming `expected` when it yields nil.
    private func typedAttribute<T>(_ name: String, _ relativePath: String, expected: String,
                                   _ extract: (AttributeValue) -> T?) throws -> T {
        let value = try attribute(named: name, at: relativePath)
        guard let result = extract(value) else {
            throw try attributeMismatch(name, relativePath, expected: expected, found: value)
        }
        return result
    }

    private func attributeMismatch(_ name: String, _ relativePath: String, expected: String,
                                   found: AttributeValue) throws -> StoreError {
        .typeMismatch(file: file.url.path, path: "\(try absolutePath(relativePath))@\(name)",
                      expected: expected, found: found.kindName)
    }
}
