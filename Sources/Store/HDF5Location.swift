import CHDF5

/// A place in an HDF5 file's hierarchy (the file's root or a group) that reads and writes
/// datasets, groups and attributes by path.
///
/// Paths are relative to the location, components separated by "/" (a leading "/" is
/// ignored; "" or "/" names the location itself). Writing a dataset or group creates every
/// missing intermediate group. `HDF5File` is the root location; `group(_:)` gives a view of a
/// group, which need not exist until something is written under it.
public protocol HDF5Location {
    /// The open file this location belongs to.
    var file: HDF5File { get }
    /// The absolute path of this location inside the file ("/" for the root).
    var path: String { get }
}

/// A view of a group inside a file, addressed by its absolute path.
public struct HDF5Group: HDF5Location {
    public let file: HDF5File
    public let path: String
}

extension HDF5Location {
    /// A view of the group at `relativePath`; nothing is created until something is written.
    public func group(_ relativePath: String) throws -> HDF5Group {
        HDF5Group(file: file, path: try absolutePath(relativePath))
    }

    /// Creates the group at `relativePath` and any missing parents; an existing group is fine.
    @discardableResult
    public func createGroup(_ relativePath: String) throws -> HDF5Group {
        let target = try absolutePath(relativePath)
        try file.requireWritable(path: target)
        HDF5Library.silence()
        switch try kind(atAbsolute: target) {
        case .group: return HDF5Group(file: file, path: target)
        case .dataset:
            throw StoreError.typeMismatch(file: file.url.path, path: target, expected: "a group",
                                          found: "a dataset")
        case nil:
            try createAncestors(of: target)
            let creation = try untimedCreationList(lethe_H5P_GROUP_CREATE(), for: target)
            let id = H5Gcreate2(file.id, target, lethe_H5P_DEFAULT(), creation.id, lethe_H5P_DEFAULT())
            guard id >= 0 else {
                throw HDF5Library.failure(file: file.url.path, path: target,
                                          operation: "create the group")
            }
            _ = H5Gclose(id)
            return HDF5Group(file: file, path: target)
        }
    }

    /// Whether anything (group or dataset) exists at `relativePath`.
    public func exists(_ relativePath: String) throws -> Bool {
        try kind(of: relativePath) != nil
    }

    /// What exists at `relativePath`: a group, a dataset, or nil for nothing.
    public func kind(of relativePath: String) throws -> NodeKind? {
        try kind(atAbsolute: try absolutePath(relativePath))
    }

    /// The names of the children (groups and datasets) of the group at `relativePath`, sorted
    /// by name.
    public func children(of relativePath: String = "") throws -> [String] {
        let target = try absolutePath(relativePath)
        let group = try openGroup(atAbsolute: target)
        defer { _ = H5Gclose(group) }
        var info = H5G_info_t()
        guard H5Gget_info(group, &info) >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "list the group")
        }
        var names: [String] = []
        for index in 0..<info.nlinks {
            names.append(try linkName(group: group, index: index, path: target))
        }
        return names
    }

    /// Deletes the link at `relativePath` (a dataset, or a group with everything below it).
    ///
    /// HDF5 does not reclaim the space inside the file; checkpoints are rewritten whole.
    public func remove(_ relativePath: String) throws {
        let target = try absolutePath(relativePath)
        try file.requireWritable(path: target)
        guard target != "/" else {
            throw StoreError.invalidArgument(file: file.url.path, path: target,
                                             reason: "the root group cannot be removed")
        }
        guard try kind(atAbsolute: target) != nil else {
            throw StoreError.missingObject(file: file.url.path, path: target)
        }
        if H5Ldelete(file.id, target, lethe_H5P_DEFAULT()) < 0 {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "remove the link")
        }
    }

    // MARK: - Internal helpers shared by the dataset and attribute extensions

    /// Resolves a path relative to this location into a normalised absolute path.
    func absolutePath(_ relativePath: String) throws -> String {
        try file.requireOpen(path: relativePath)
        var components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var relative = Substring(relativePath)
        while relative.hasPrefix("/") { relative = relative.dropFirst() }
        while relative.hasSuffix("/") { relative = relative.dropLast() }
        if !relative.isEmpty {
            for component in relative.split(separator: "/", omittingEmptySubsequences: false) {
                guard !component.isEmpty, component != ".", component != ".." else {
                    throw StoreError.invalidArgument(
                        file: file.url.path, path: relativePath,
                        reason: "path components must be non-empty names other than '.' and '..'")
                }
                components.append(String(component))
            }
        }
        return "/" + components.joined(separator: "/")
    }

    /// What exists at an absolute path; walks the links one level at a time because
    /// `H5Lexists` fails (rather than answering false) when an intermediate link is missing.
    func kind(atAbsolute target: String) throws -> NodeKind? {
        try file.requireOpen(path: target)
        HDF5Library.silence()
        if target == "/" { return .group }
        var prefix = ""
        for component in target.split(separator: "/") {
            prefix += "/" + component
            let exists = H5Lexists(file.id, prefix, lethe_H5P_DEFAULT())
            if exists < 0 {
                throw HDF5Library.failure(file: file.url.path, path: prefix,
                                          operation: "look up the link")
            }
            if exists == 0 { return nil }
        }
        let object = H5Oopen(file.id, target, lethe_H5P_DEFAULT())
        guard object >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "open the object")
        }
        defer { _ = H5Oclose(object) }
        switch H5Iget_type(object) {
        case H5I_GROUP: return .group
        case H5I_DATASET: return .dataset
        default:
            throw StoreError.typeMismatch(file: file.url.path, path: target,
                                          expected: "a group or dataset", found: "another object")
        }
    }

    /// Opens the group at an absolute path (caller closes), with precise errors.
    func openGroup(atAbsolute target: String) throws -> hid_t {
        switch try kind(atAbsolute: target) {
        case nil: throw StoreError.missingObject(file: file.url.path, path: target)
        case .dataset:
            throw StoreError.typeMismatch(file: file.url.path, path: target, expected: "a group",
                                          found: "a dataset")
        case .group:
            let id = H5Gopen2(file.id, target, lethe_H5P_DEFAULT())
            guard id >= 0 else {
                throw HDF5Library.failure(file: file.url.path, path: target, operation: "open the group")
            }
            return id
        }
    }

    /// Opens the group or dataset at an absolute path (caller closes with `H5Oclose`).
    func openObject(atAbsolute target: String) throws -> hid_t {
        guard try kind(atAbsolute: target) != nil else {
            throw StoreError.missingObject(file: file.url.path, path: target)
        }
        let id = H5Oopen(file.id, target, lethe_H5P_DEFAULT())
        guard id >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "open the object")
        }
        return id
    }

    /// Creates the missing groups on the way to `target` (absolute), each without timestamps.
    func createAncestors(of target: String) throws {
        let parts = target.split(separator: "/").dropLast()
        var path = ""
        for part in parts {
            path += "/" + part
            if try kind(atAbsolute: path) != nil { continue }
            let creation = try untimedCreationList(lethe_H5P_GROUP_CREATE(), for: path)
            let id = H5Gcreate2(file.id, path, lethe_H5P_DEFAULT(), creation.id, lethe_H5P_DEFAULT())
            guard id >= 0 else {
                throw HDF5Library.failure(file: file.url.path, path: path, operation: "create the group")
            }
            _ = H5Gclose(id)
        }
    }

    /// An object-creation list of `classID` (group, dataset, file) that records no access,
    /// modification or change times: the same content writes the same bytes at any hour, so a
    /// stage trained twice alike is the same file.
    func untimedCreationList(_ classID: hid_t, for target: String) throws -> PropertyList {
        let creation = PropertyList(class: classID)
        guard creation.id >= 0, H5Pset_obj_track_times(creation.id, false) >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "set up object creation")
        }
        return creation
    }

    private func linkName(group: hid_t, index: hsize_t, path target: String) throws -> String {
        let length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0,
                                        lethe_H5P_DEFAULT())
        guard length >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "list the group")
        }
        var buffer = [CChar](repeating: 0, count: Int(length) + 1)
        guard H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer,
                                 buffer.count, lethe_H5P_DEFAULT()) >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "list the group")
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) },
                      as: UTF8.self)
    }
}
