import CHDF5
import Foundation

/// An open HDF5 file: the root of its group hierarchy and the handle every read and write
/// goes through.
///
/// Open or create with `open(_:mode:)`, `create(at:replacing:)`, or — for anything a reader
/// must never see half-written — `writeAtomically(to:_:)`. The file is closed by `close()` or,
/// failing that, when the last reference goes away.
///
/// Format: files are written with HDF5 1.8+ structures (superblock v2, object headers v2),
/// whose metadata carries checksums, so altered bytes are reported as `StoreError.corrupt`
/// rather than read as nonsense; h5py and h5dump read them. Datasets and attributes use the
/// little-endian types of `ElementType`.
///
/// Threads: Debian's HDF5 1.10 is built thread-safe with one global lock, so the store may be
/// used from several threads at once but every HDF5 call is serialised. A handle is not
/// `Sendable`: use each `HDF5File` from one thread (or task) at a time, and open one per thread
/// for concurrent readers.
public final class HDF5File: HDF5Location {
    /// How an existing file is opened.
    public enum Mode: Sendable {
        case readOnly
        case readWrite
    }

    /// Where the file lives on disk.
    public let url: URL
    /// The mode it was opened or created with.
    public let mode: Mode
    /// The HDF5 file id, or -1 once closed.
    private(set) var id: hid_t

    /// The file itself, as an `HDF5Location`.
    public var file: HDF5File { self }
    /// The root group's path.
    public var path: String { "/" }

    /// Whether the handle is still open.
    public var isOpen: Bool { id >= 0 }

    private init(url: URL, mode: Mode, id: hid_t) {
        self.url = url
        self.mode = mode
        self.id = id
    }

    deinit {
        if id >= 0 {
            HDF5Library.silence()
            _ = H5Fclose(id)
        }
    }

    /// Opens an existing file.
    ///
    /// - Throws: `StoreError.fileNotFound` when nothing is there, `.notHDF5`, `.truncated` or
    ///   `.corrupt` when the bytes are not a readable HDF5 file.
    public static func open(_ url: URL, mode: Mode = .readOnly) throws -> HDF5File {
        HDF5Library.silence()
        let name = url.path
        guard FileManager.default.fileExists(atPath: name) else {
            throw StoreError.fileNotFound(file: name)
        }
        try RegularFile.check(name)
        let flags = mode == .readOnly ? lethe_H5F_ACC_RDONLY() : lethe_H5F_ACC_RDWR()
        let access = try fileAccessList(file: name)
        let id = H5Fopen(name, flags, access.id)
        guard id >= 0 else {
            throw HDF5Library.failure(file: name, path: "/", operation: "open the file")
        }
        return HDF5File(url: url, mode: mode, id: id)
    }

    /// Opens, read-only, the HDF5 file whose bytes (user block included) are `image`, without
    /// touching the disk: HDF5's "core" driver parses a copy of `image` in memory. `url` names
    /// the file in errors and in `self.url`.
    ///
    /// HDF5 identifies an open in-memory file by its name and refuses a name that exists on
    /// disk, so each open gets a fresh name below /dev/null, where nothing can exist.
    static func open(image: [UInt8], of url: URL) throws -> HDF5File {
        HDF5Library.silence()
        let name = url.path
        let access = try fileAccessList(file: name)
        let ready = image.withUnsafeBytes { bytes in   // HDF5 copies the image into the property list
            H5Pset_fapl_core(access.id, 1 << 16, false) >= 0
                && H5Pset_file_image(access.id, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count) >= 0
        }
        guard ready else {
            throw StoreError.hdf5Failure(file: name, path: "/", operation: "set up reading from memory",
                                         detail: HDF5Library.takeErrorDetail())
        }
        let id = H5Fopen("/dev/null/lethe-image-\(UUID().uuidString)", lethe_H5F_ACC_RDONLY(), access.id)
        guard id >= 0 else {
            throw HDF5Library.failure(file: name, path: "/", operation: "open the file")
        }
        return HDF5File(url: url, mode: .readOnly, id: id)
    }

    /// Creates a new file, open for reading and writing.
    ///
    /// - Parameter replacing: when false (the default) creation is exclusive and an existing
    ///   file gives `StoreError.fileExists`; when true an existing file is truncated.
    /// - Parameter userBlock: bytes reserved at the start of the file, which HDF5 skips (0, or a
    ///   power of two ≥ 512); `HDF5Seal` writes its seal there.
    public static func create(at url: URL, replacing: Bool = false, userBlock: Int = 0) throws -> HDF5File {
        HDF5Library.silence()
        let name = url.path
        if !replacing && FileManager.default.fileExists(atPath: name) {
            throw StoreError.fileExists(file: name)
        }
        let flags = replacing ? lethe_H5F_ACC_TRUNC() : lethe_H5F_ACC_EXCL()
        let access = try fileAccessList(file: name)
        let creation = PropertyList(class: lethe_H5P_FILE_CREATE())
        // The root group records no times either (see `untimedCreationList`).
        guard creation.id >= 0, H5Pset_obj_track_times(creation.id, false) >= 0,
              userBlock == 0 || H5Pset_userblock(creation.id, hsize_t(userBlock)) >= 0 else {
            throw StoreError.hdf5Failure(file: name, path: "/", operation: "reserve a user block of \(userBlock) bytes",
                                         detail: HDF5Library.takeErrorDetail())
        }
        errno = 0
        let id = H5Fcreate(name, flags, creation.id, access.id)
        guard id >= 0 else {
            // The system's reason, when HDF5 stopped on one: a full disk leaves a partly written
            // file behind, which is no "file already exists".
            let code = errno
            let detail = HDF5Library.takeErrorDetail()
            if code == ENOSPC || code == EDQUOT || code == EROFS || code == EACCES {
                throw StoreError.io(file: name, operation: "create", errno: code)
            }
            if !replacing && (code == EEXIST || (code == 0 && FileManager.default.fileExists(atPath: name))) {
                throw StoreError.fileExists(file: name)
            }
            throw StoreError.hdf5Failure(file: name, path: "/", operation: "create the file",
                                         detail: detail)
        }
        return HDF5File(url: url, mode: .readWrite, id: id)
    }

    /// Flushes and closes the file. Idempotent; later operations throw `notWritable`/`hdf5Failure`.
    public func close() throws {
        guard id >= 0 else { return }
        HDF5Library.silence()
        let status = H5Fclose(id)
        id = -1
        if status < 0 {
            throw HDF5Library.failure(file: url.path, path: "/", operation: "close the file")
        }
    }

    /// Writes buffered data of a read-write file to the operating system (not an fsync).
    public func flush() throws {
        try requireOpen(path: "/")
        HDF5Library.silence()
        if H5Fflush(id, H5F_SCOPE_LOCAL) < 0 {
            throw HDF5Library.failure(file: url.path, path: "/", operation: "flush the file")
        }
    }

    /// File-access properties: 1.8+ structures with checksummed metadata (readable by HDF5
    /// 1.8 and later, h5py included), a strong close so `close()` really releases the file, and
    /// no HDF5 file locking. HDF5's `flock` is taken on a descriptor opened without close-on-exec,
    /// so every child process started while a file is open inherits the lock and holds it for
    /// its lifetime, making unrelated opens fail ("unable to lock file"); and it protects nothing
    /// here: files are written whole under a temporary name and renamed into place, never
    /// changed under a reader, and concurrent writers of a run are ordered by its run lock.
    private static func fileAccessList(file: String) throws -> PropertyList {
        let access = PropertyList(class: lethe_H5P_FILE_ACCESS())
        guard access.id >= 0,
              H5Pset_libver_bounds(access.id, H5F_LIBVER_V18, H5F_LIBVER_V110) >= 0,
              H5Pset_fclose_degree(access.id, H5F_CLOSE_STRONG) >= 0,
              H5Pset_file_locking(access.id, false, true) >= 0 else {
            throw StoreError.hdf5Failure(file: file, path: "/", operation: "set up file access",
                                         detail: HDF5Library.takeErrorDetail())
        }
        return access
    }

    /// Throws unless the handle is open.
    func requireOpen(path: String) throws {
        guard id >= 0 else {
            throw StoreError.hdf5Failure(file: url.path, path: path, operation: "use the file",
                                         detail: "the handle was closed")
        }
    }

    /// Throws unless the handle is open for writing.
    func requireWritable(path: String) throws {
        guard id >= 0, mode == .readWrite else {
            throw StoreError.notWritable(file: url.path, path: path)
        }
    }
}
