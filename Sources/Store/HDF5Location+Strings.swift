import CHDF5
import Foundation

/// String datasets: variable-length UTF-8 strings (h5py reads them as `str`), e.g. the sorted
/// member ids of a slice in a plan.
extension HDF5Location {
    /// Writes `strings` as a 1-D dataset of variable-length UTF-8 strings.
    ///
    /// - Throws: `invalidArgument` if a string contains a NUL character (HDF5 stores C strings)
    ///   or `options.checksum` is set (HDF5 cannot checksum variable-length data).
    public func write(_ strings: [String], at relativePath: String,
                      options: DatasetOptions = .contiguous) throws {
        if let bad = strings.firstIndex(where: { $0.utf8.contains(0) }) {
            throw StoreError.invalidArgument(file: file.url.path, path: relativePath,
                                             reason: "string \(bad) contains a NUL character")
        }
        if options.checksum {
            throw StoreError.invalidArgument(
                file: file.url.path, path: relativePath,
                reason: "HDF5 cannot apply Fletcher-32 checksums to variable-length strings; "
                    + "write them without checksum (gzip is fine)")
        }
        let type = makeVariableUTF8StringType()
        defer { if type >= 0 { _ = H5Tclose(type) } }
        let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        guard !pointers.contains(where: { $0 == nil }) else {
            throw StoreError.invalidArgument(file: file.url.path, path: relativePath,
                                             reason: "out of memory copying \(strings.count) strings")
        }
        try pointers.withUnsafeBytes { raw in
            try writeDataset(raw, count: strings.count, shape: [strings.count], at: relativePath,
                             elementType: .string, fileType: type, memoryType: type,
                             options: options)
        }
    }

    /// Reads a dataset of variable-length strings (any rank, row-major; a scalar gives one).
    public func readStrings(at relativePath: String) throws -> [String] {
        try readDataset(at: relativePath, expectedShape: nil, accepting: [.string],
                        expected: "string") { dataset, info -> (herr_t, [String]) in
            let fileType = H5Dget_type(dataset)
            let space = H5Dget_space(dataset)
            let memoryType = makeVariableUTF8StringType()
            defer {
                if fileType >= 0 { _ = H5Tclose(fileType) }
                if space >= 0 { _ = H5Sclose(space) }
                if memoryType >= 0 { _ = H5Tclose(memoryType) }
            }
            guard fileType >= 0, space >= 0, memoryType >= 0,
                  H5Tset_cset(memoryType, H5Tget_cset(fileType)) >= 0 else { return (-1, []) }
            return readVariableStrings(count: info.elementCount, memoryType: memoryType,
                                       space: space) { type, buffer in
                H5Dread(dataset, type, lethe_H5S_ALL(), lethe_H5S_ALL(), lethe_H5P_DEFAULT(), buffer)
            }
        }.values
    }
}

/// Reads `count` variable-length strings with `read`, copies them into Swift strings and
/// returns HDF5's buffers to it (`H5Dvlen_reclaim`, which also serves attributes).
func readVariableStrings(count: Int, memoryType: hid_t, space: hid_t,
                         read: (hid_t, UnsafeMutableRawPointer?) -> herr_t) -> (herr_t, [String]) {
    var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
    let status = pointers.withUnsafeMutableBytes { read(memoryType, $0.baseAddress) }
    guard status >= 0 else { return (status, []) }
    let strings = pointers.map { pointer in pointer.map { String(cString: $0) } ?? "" }
    _ = pointers.withUnsafeMutableBytes {
        H5Dvlen_reclaim(memoryType, space, lethe_H5P_DEFAULT(), $0.baseAddress)
    }
    return (status, strings)
}
