import CHDF5

/// Internal glue to the HDF5 C library: error-stack handling and small id helpers.
///
/// HDF5 1.10 keeps one error stack *per thread* (thread-safe build), and a new thread's stack
/// prints to stderr on every failure. `silence()` switches that printing off for the calling
/// thread; every public store operation calls it first, so no HDF5 trace ever reaches stderr
/// whichever thread the caller is on. Failures are read back from the stack with
/// `takeErrorDetail()` and turned into `StoreError`s.
enum HDF5Library {
    /// Turns off automatic error printing for the calling thread (cheap; idempotent).
    static func silence() {
        _ = skipsCleanupAtExit
        _ = H5Eset_auto2(lethe_H5E_DEFAULT(), nil, nil)
    }

    /// Before HDF5's first call: no library shutdown at process exit. A file whose close
    /// failed (a full disk) stays in HDF5's tables, and the shutdown would close it a second
    /// time and crash, turning a clean error exit into a segmentation fault. Every file this
    /// store writes is closed explicitly before it is renamed into place, so the shutdown has
    /// nothing of ours to flush.
    private static let skipsCleanupAtExit: Void = { _ = H5dont_atexit() }()

    /// The innermost distinct messages on the calling thread's error stack, innermost first,
    /// joined by "; "; then clears the stack.
    static func takeErrorDetail() -> String {
        let collector = ErrorCollector()
        _ = H5Ewalk2(lethe_H5E_DEFAULT(), H5E_WALK_UPWARD, { _, entry, context in
            guard let entry, let context else { return 0 }
            let collector = Unmanaged<ErrorCollector>.fromOpaque(context).takeUnretainedValue()
            if let text = entry.pointee.desc {
                collector.messages.append(String(cString: text))
            }
            return 0
        }, Unmanaged.passUnretained(collector).toOpaque())
        _ = H5Eclear2(lethe_H5E_DEFAULT())
        var distinct: [String] = []
        for message in collector.messages where !message.isEmpty && !distinct.contains(message) {
            distinct.append(message)
        }
        let detail = distinct.prefix(2).joined(separator: "; ")
        return detail.isEmpty ? "no detail from HDF5" : detail
    }

    /// Classifies the current HDF5 failure into the most specific `StoreError`.
    ///
    /// Checksum failures (superblock v2, object headers v2, Fletcher-32 chunks) and bad
    /// signatures mean the bytes were altered; "truncated file" means the file is shorter than
    /// its recorded end of allocation.
    static func failure(file: String, path: String, operation: String) -> StoreError {
        let detail = takeErrorDetail()
        // A failed system call (a full disk, a vanished directory) is said as such, not as
        // HDF5's dump of the write request.
        if let range = detail.range(of: "errno = "),
           let code = Int32(detail[range.upperBound...].prefix { $0.isNumber }), code > 0 {
            return .io(file: file, operation: operation, errno: code)
        }
        let lower = detail.lowercased()
        if lower.contains("truncated file") {
            return .truncated(file: file, detail: detail)
        }
        if lower.contains("file signature not found") {
            return .notHDF5(file: file, detail: detail)
        }
        let corruptionSigns = ["checksum", "bad ", "corrupt", "incorrect", "wrong", "invalid",
                               "signature", "unable to load", "unable to protect", "can't decode",
                               "unable to deserialize", "filter returned failure", "unknown"]
        if corruptionSigns.contains(where: { lower.contains($0) }) {
            return .corrupt(file: file, path: path, detail: detail)
        }
        return .hdf5Failure(file: file, path: path, operation: operation, detail: detail)
    }
}

/// Receives the messages of `H5Ewalk2`'s C callback (which cannot capture Swift context).
private final class ErrorCollector {
    var messages: [String] = []
}

/// A dataset-creation or link-creation property list that closes itself.
struct PropertyList: ~Copyable {
    let id: hid_t

    init(class classID: hid_t) {
        id = H5Pcreate(classID)
    }

    deinit {
        if id >= 0 { _ = H5Pclose(id) }
    }
}

/// The variable-length UTF-8 string type (h5py reads it as `str`); the caller closes it.
func makeVariableUTF8StringType() -> hid_t {
    let type = H5Tcopy(lethe_H5T_C_S1())
    guard type >= 0 else { return type }
    if H5Tset_size(type, lethe_H5T_VARIABLE()) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0 {
        _ = H5Tclose(type)
        return -1
    }
    return type
}
