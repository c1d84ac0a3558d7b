import Foundation

/// Everything that can go wrong in the store, with the facts needed to act on it.
///
/// Every case names the file on disk and, where it applies, the path of the object inside
/// it (`/stage/1/lora_A`). HDF5's own error stack never reaches stderr: the store silences it
/// and folds its innermost messages into `detail`. Each message ends with what to do.
public enum StoreError: Error, CustomStringConvertible, Equatable, Sendable {
    /// No file exists at the given location.
    case fileNotFound(file: String)
    /// `create` without `replacing` found a file already there.
    case fileExists(file: String)
    /// The file exists but does not start with an HDF5 signature.
    case notHDF5(file: String, detail: String)
    /// The file is shorter than HDF5 recorded when it was written (an interrupted copy or write).
    case truncated(file: String, detail: String)
    /// HDF5 found inconsistent or checksum-failing bytes while reading `path`.
    case corrupt(file: String, path: String, detail: String)
    /// No group, dataset or attribute holder exists at `path`.
    case missingObject(file: String, path: String)
    /// The object at `path` has no attribute called `name`.
    case missingAttribute(file: String, path: String, name: String)
    /// Something already exists at `path` and the store never overwrites silently.
    case alreadyExists(file: String, path: String)
    /// The object at `path` holds another element type (or kind of object) than the caller asked for.
    case typeMismatch(file: String, path: String, expected: String, found: String)
    /// The dataset at `path` has another shape than the caller required.
    case shapeMismatch(file: String, path: String, expected: [Int], found: [Int])
    /// The caller passed inconsistent arguments (value count vs shape, a bad path, a bad option).
    case invalidArgument(file: String, path: String, reason: String)
    /// A write was attempted on a file opened read-only (or already closed).
    case notWritable(file: String, path: String)
    /// Any other failure reported by the HDF5 library.
    case hdf5Failure(file: String, path: String, operation: String, detail: String)
    /// A dataset or attribute claims more elements than this machine's memory holds (`ReadLimit`):
    /// refused before anything is allocated.
    case tooLarge(file: String, path: String, elementCount: Int, elementByteCount: Int)
    /// A sealed file's content does not match its seal (`HDF5Seal`): it was damaged or edited.
    case sealBroken(file: String, reason: String)
    /// A system call on the file or its directory failed (create, write, fsync, rename).
    case io(file: String, operation: String, errno: Int32)
    /// A file Lethe reads whole (a run's files) is a directory, FIFO, device or socket.
    case notRegularFile(file: String, kind: String)
    /// A lock file that cannot be opened as one (it is a directory).
    case unusableLock(file: String, kind: String)

    /// What to do about a file that lacks what Lethe writes into it (a user reads these when a
    /// plan, stage or adapter file is not as Lethe left it).
    static let notAsWritten = "The file is not as Lethe writes it (another program's file, another version's, "
        + "or an edited one); restore it from its source, or have Lethe write it again."

    public var description: String {
        switch self {
        case .fileNotFound(let file):
            return "\(file): no such file. Check the path, or create the file first."
        case .fileExists(let file):
            return "\(file): the file already exists. Choose another name, delete it, "
                + "or create with replacing: true."
        case .notHDF5(let file, let detail):
            return "\(file): not an HDF5 file (\(detail)). Check that the path points at a "
                + "checkpoint or plan written by Lethe or h5py."
        case .truncated(let file, let detail):
            return "\(file): the file is truncated (\(detail)). It was cut short by an interrupted "
                + "copy or write; restore it from its source or rewrite it."
        case .corrupt(let file, let path, let detail):
            return "\(file): corrupt data at \(path) (\(detail)). The bytes on disk were altered; "
                + "restore the file from its source or rewrite it."
        case .missingObject(let file, let path):
            return "\(file): nothing at \(path). \(Self.notAsWritten)"
        case .missingAttribute(let file, let path, let name):
            return "\(file): \(path) has no attribute '\(name)'. \(Self.notAsWritten)"
        case .alreadyExists(let file, let path):
            return "\(file): \(path) already exists. Remove it first or write to a new path "
                + "(checkpoints are written whole with HDF5File.writeAtomically)."
        case .typeMismatch(let file, let path, let expected, let found):
            return "\(file): \(path) holds \(found), expected \(expected). \(Self.notAsWritten)"
        case .shapeMismatch(let file, let path, let expected, let found):
            return "\(file): \(path) has shape \(found), expected \(expected). The file was "
                + "written with another configuration; check which run produced it."
        case .invalidArgument(let file, let path, let reason):
            return "\(file): invalid request for \(path): \(reason). Fix the call's arguments."
        case .notWritable(let file, let path):
            return "\(file): cannot write \(path): the file is open read-only or closed. Open it "
                + "with mode .readWrite."
        case .hdf5Failure(let file, let path, let operation, let detail):
            return "\(file): HDF5 could not \(operation) at \(path) (\(detail)). Check that the "
                + "file is a valid HDF5 file and that the disk is writable and not full."
        case .tooLarge(let file, let path, let count, let size):
            return "\(file): \(path) claims \(count) elements of \(size) bytes, more than this machine's "
                + "\(ReadLimit.byteCount) bytes of memory. The file is damaged, or was written for a far larger "
                + "machine; restore it from its source."
        case .sealBroken(let file, let reason):
            return "\(file): the file is damaged or was modified since Lethe wrote it: \(reason). Lethe does not "
                + "read it; restore it from a backup, or delete it and have Lethe write it again."
        case .io(let file, let operation, let code):
            let reason = String(cString: strerror(code))
            return "\(file): \(operation) failed: \(reason) (errno \(code)). Check permissions and "
                + "free space in its directory."
        case .notRegularFile(let file, let kind):
            return "\(file): is \(kind), not a regular file. Put the real file back (from a backup), or remove "
                + "what is there."
        case .unusableLock(let file, let kind):
            return "\(file): is \(kind), so the run cannot be locked. A lock file holds no data: remove it "
                + "(`rm -r \(file)`) and the next command creates it again."
        }
    }
}
