import CHDF5

/// Numeric datasets: float32, float16 (converted from and to `Float`), int64 and uint8 (raw
/// bytes), in row-major order with an explicit shape (`[]` is a scalar holding one value).
///
/// Writes never overwrite: an existing path gives `StoreError.alreadyExists`. Reads check the
/// element type (`typeMismatch`) and, when the caller passes `expectedShape`, the shape
/// (`shapeMismatch`), so a checkpoint from another configuration fails loudly.
extension HDF5Location {
    /// Writes `values` (row-major, `values.count` = product of `shape`) as float32 or float16.
    ///
    /// Float16 rounds each value to the nearest binary16 (ties to even); values beyond ±65504
    /// become ±infinity, as in numpy.
    public func write(_ values: [Float], shape: [Int], at relativePath: String,
                      storage: FloatStorage = .float32,
                      options: DatasetOptions = .contiguous) throws {
        switch storage {
        case .float32:
            try values.withUnsafeBytes { raw in
                try writeDataset(raw, count: values.count, shape: shape, at: relativePath,
                                 elementType: .float32, fileType: lethe_H5T_IEEE_F32LE(),
                                 memoryType: lethe_H5T_NATIVE_FLOAT(), options: options)
            }
        case .float16:
            let halves = values.map { Float16($0) }
            let half = lethe_make_H5T_IEEE_F16LE()
            defer { if half >= 0 { _ = H5Tclose(half) } }
            try halves.withUnsafeBytes { raw in
                try writeDataset(raw, count: halves.count, shape: shape, at: relativePath,
                                 elementType: .float16, fileType: half, memoryType: half,
                                 options: options)
            }
        }
    }

    /// Writes 64-bit signed integers (row-major).
    public func write(_ values: [Int64], shape: [Int], at relativePath: String,
                      options: DatasetOptions = .contiguous) throws {
        try values.withUnsafeBytes { raw in
            try writeDataset(raw, count: values.count, shape: shape, at: relativePath,
                             elementType: .int64, fileType: lethe_H5T_STD_I64LE(),
                             memoryType: lethe_H5T_NATIVE_INT64(), options: options)
        }
    }

    /// Writes raw bytes as uint8 (row-major; a 1-D blob is `shape: [bytes.count]`).
    public func write(_ bytes: [UInt8], shape: [Int], at relativePath: String,
                      options: DatasetOptions = .contiguous) throws {
        try bytes.withUnsafeBytes { raw in
            try writeDataset(raw, count: bytes.count, shape: shape, at: relativePath,
                             elementType: .uint8, fileType: lethe_H5T_STD_U8LE(),
                             memoryType: lethe_H5T_NATIVE_UINT8(), options: options)
        }
    }

    /// Reads a float32 or float16 dataset as `Float`s with its shape.
    public func readFloats(at relativePath: String,
                           expectedShape: [Int]? = nil) throws -> (values: [Float], shape: [Int]) {
        try readDataset(at: relativePath, expectedShape: expectedShape,
                        accepting: [.float32, .float16], expected: "float32 or float16") {
            dataset, info in
            if info.elementType == .float16 {
                let half = lethe_make_H5T_IEEE_F16LE()
                defer { if half >= 0 { _ = H5Tclose(half) } }
                let (status, halves) = readWhole(dataset, memoryType: half, count: info.elementCount,
                                                 as: Float16.self)
                return (status, halves.map { Float($0) })
            }
            return readWhole(dataset, memoryType: lethe_H5T_NATIVE_FLOAT(), count: info.elementCount,
                             as: Float.self)
        }
    }

    /// Reads an int64 dataset with its shape.
    public func readInt64s(at relativePath: String,
                           expectedShape: [Int]? = nil) throws -> (values: [Int64], shape: [Int]) {
        try readDataset(at: relativePath, expectedShape: expectedShape, accepting: [.int64],
                        expected: "int64") { dataset, info in
            readWhole(dataset, memoryType: lethe_H5T_NATIVE_INT64(), count: info.elementCount,
                      as: Int64.self)
        }
    }

    /// Reads a uint8 dataset (raw bytes) with its shape.
    public func readBytes(at relativePath: String,
                          expectedShape: [Int]? = nil) throws -> (values: [UInt8], shape: [Int]) {
        try readDataset(at: relativePath, expectedShape: expectedShape, accepting: [.uint8],
                        expected: "uint8") { dataset, info in
            readWhole(dataset, memoryType: lethe_H5T_NATIVE_UINT8(), count: info.elementCount,
                      as: UInt8.self)
        }
    }

    /// The element type and shape of the dataset at `relativePath`.
    public func info(at relativePath: String) throws -> DatasetInfo {
        let target = try absolutePath(relativePath)
        let dataset = try openDataset(atAbsolute: target)
        defer { _ = H5Dclose(dataset) }
        return try datasetInfo(dataset, path: target)
    }

    /// The shape of the dataset at `relativePath` (`[]` for a scalar).
    public func shape(of relativePath: String) throws -> [Int] {
        try info(at: relativePath).shape
    }

    // MARK: - Shared machinery (also used by string datasets)

    /// Creates a dataset of `shape` and writes `count` elements from `raw` into it.
    func writeDataset(_ raw: UnsafeRawBufferPointer, count: Int, shape: [Int],
                      at relativePath: String, elementType: ElementType, fileType: hid_t,
                      memoryType: hid_t, options: DatasetOptions) throws {
        let target = try absolutePath(relativePath)
        let fileName = file.url.path
        try file.requireWritable(path: target)
        guard target != "/" else {
            throw StoreError.invalidArgument(file: fileName, path: target,
                                             reason: "a dataset needs a name below the root")
        }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == count else {
            throw StoreError.invalidArgument(
                file: fileName, path: target,
                reason: "\(count) values do not fill shape \(shape) (\(shape.reduce(1, *)) elements)")
        }
        guard fileType >= 0, memoryType >= 0 else {
            throw HDF5Library.failure(file: fileName, path: target, operation: "build the datatype")
        }
        if try kind(atAbsolute: target) != nil {
            throw StoreError.alreadyExists(file: fileName, path: target)
        }
        let space = shape.isEmpty
            ? H5Screate(H5S_SCALAR)
            : H5Screate_simple(Int32(shape.count), shape.map { hsize_t($0) }, nil)
        guard space >= 0 else {
            throw HDF5Library.failure(file: fileName, path: target, operation: "build the dataspace")
        }
        defer { _ = H5Sclose(space) }
        let creation = try creationList(shape: shape, elementType: elementType, options: options,
                                        path: target)
        try createAncestors(of: target)
        let dataset = H5Dcreate2(file.id, target, fileType, space, lethe_H5P_DEFAULT(), creation.id,
                                 lethe_H5P_DEFAULT())
        guard dataset >= 0 else {
            throw HDF5Library.failure(file: fileName, path: target, operation: "create the dataset")
        }
        defer { _ = H5Dclose(dataset) }
        if count > 0, H5Dwrite(dataset, memoryType, lethe_H5S_ALL(), lethe_H5S_ALL(),
                               lethe_H5P_DEFAULT(), raw.baseAddress) < 0 {
            throw HDF5Library.failure(file: fileName, path: target, operation: "write the dataset")
        }
    }

    /// Opens a dataset, checks its type and shape, and lets `read` fill the values.
    func readDataset<Element>(
        at relativePath: String, expectedShape: [Int]?, accepting accepted: [ElementType],
        expected: String, read: (hid_t, DatasetInfo) throws -> (herr_t, [Element])
    ) throws -> (values: [Element], shape: [Int]) {
        let target = try absolutePath(relativePath)
        let dataset = try openDataset(atAbsolute: target)
        defer { _ = H5Dclose(dataset) }
        let info = try datasetInfo(dataset, path: target)
        guard accepted.contains(info.elementType) else {
            throw StoreError.typeMismatch(file: file.url.path, path: target, expected: expected,
                                          found: info.elementType.description)
        }
        if let expectedShape, expectedShape != info.shape {
            throw StoreError.shapeMismatch(file: file.url.path, path: target,
                                           expected: expectedShape, found: info.shape)
        }
        if info.elementCount == 0 { return ([], info.shape) }
        guard ReadLimit.allows(info.elementCount, elementByteCount: info.elementType.byteCount) else {
            throw StoreError.tooLarge(file: file.url.path, path: target, elementCount: info.elementCount,
                                      elementByteCount: info.elementType.byteCount)
        }
        let (status, values) = try read(dataset, info)
        guard status >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target, operation: "read the dataset")
        }
        return (values, info.shape)
    }

    /// Reads a whole dataset of a trivial element type into a new array without zero-filling
    /// it first (the read overwrites every element; on failure the caller throws).
    func readWhole<Element: BitwiseCopyable>(_ dataset: hid_t, memoryType: hid_t, count: Int,
                                             as type: Element.Type) -> (herr_t, [Element]) {
        var status: herr_t = -1
        let values = [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            status = H5Dread(dataset, memoryType, lethe_H5S_ALL(), lethe_H5S_ALL(),
                             lethe_H5P_DEFAULT(), buffer.baseAddress)
            initialized = count
        }
        return (status, values)
    }

    func openDataset(atAbsolute target: String) throws -> hid_t {
        switch try kind(atAbsolute: target) {
        case nil: throw StoreError.missingObject(file: file.url.path, path: target)
        case .group:
            throw StoreError.typeMismatch(file: file.url.path, path: target, expected: "a dataset",
                                          found: "a group")
        case .dataset:
            let id = H5Dopen2(file.id, target, lethe_H5P_DEFAULT())
            guard id >= 0 else {
                throw HDF5Library.failure(file: file.url.path, path: target,
                                          operation: "open the dataset")
            }
            return id
        }
    }

    func datasetInfo(_ dataset: hid_t, path target: String) throws -> DatasetInfo {
        let type = H5Dget_type(dataset)
        let space = H5Dget_space(dataset)
        defer {
            if type >= 0 { _ = H5Tclose(type) }
            if space >= 0 { _ = H5Sclose(space) }
        }
        let rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1
        guard type >= 0, rank >= 0 else {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "read the dataset's type and shape")
        }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        if rank > 0, H5Sget_simple_extent_dims(space, &dims, nil) < 0 {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "read the dataset's shape")
        }
        guard let shape = ReadLimit.shape(dims) else {
            throw StoreError.corrupt(file: file.url.path, path: target,
                                     detail: "its shape \(dims) has more elements than a 64-bit count holds")
        }
        return DatasetInfo(elementType: ElementType(typeID: type), shape: shape)
    }

    private func creationList(shape: [Int], elementType: ElementType, options: DatasetOptions,
                              path target: String) throws -> PropertyList {
        let creation = try untimedCreationList(lethe_H5P_DATASET_CREATE(), for: target)
        let chunkable = !shape.isEmpty && !shape.contains(0)
        guard options.isChunked, chunkable else { return creation }
        let chunk: [Int]
        switch options.chunkDimensions(for: shape, elementByteCount: elementType.byteCount) {
        case .success(let dims): chunk = dims
        case .failure(let error):
            throw StoreError.invalidArgument(file: file.url.path, path: target, reason: error.reason)
        }
        var ok = H5Pset_chunk(creation.id, Int32(chunk.count), chunk.map { hsize_t($0) }) >= 0
        if let level = options.gzipLevel {
            ok = ok && H5Pset_shuffle(creation.id) >= 0
                && H5Pset_deflate(creation.id, UInt32(level)) >= 0
        }
        if options.checksum {
            ok = ok && H5Pset_fletcher32(creation.id) >= 0
        }
        guard ok else {
            throw HDF5Library.failure(file: file.url.path, path: target,
                                      operation: "set chunking and filters")
        }
        return creation
    }
}

/// How floats are stored on disk; both read back as `Float`.
public enum FloatStorage: Sendable {
    /// IEEE binary32, exact.
    case float32
    /// IEEE binary16: half the bytes, ~3 significant decimal digits, range ±65504.
    case float16
}
