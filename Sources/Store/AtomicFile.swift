import Foundation

/// Crash-safe replacement of whole files: write a temporary file in the same directory, fsync
/// it, rename it over the destination, fsync the directory.
///
/// `rename(2)` within one file system is atomic, so a reader opening the destination sees
/// either the complete old file or the complete new one, never a mix or a prefix. The fsync of
/// the file before the rename makes sure the new name never points at data still in the page
/// cache (ext4 and xfs may otherwise persist the rename first); the fsync of the directory
/// makes the rename itself survive power loss. Temporary names start with "." and end in
/// ".tmp-XXXXXXXX", and a failed write removes its temporary file.
public enum AtomicFile {
    /// Atomically replaces (or creates) the file at `url` with `data` (JSON, text, …).
    public static func write(_ data: Data, to url: URL) throws {
        let temporary = temporaryURL(for: url)
        do {
            try writeNew(data, to: temporary)
            try commit(temporary, to: url)
        } catch {
            unlink(temporary.path)
            throw error
        }
    }

    /// Atomically replaces (or creates) the file at `url` with `text` in UTF-8.
    public static func write(_ text: String, to url: URL) throws {
        try write(Data(text.utf8), to: url)
    }

    /// Creates the file at `url` with `data` only if no file has that name, atomically: the
    /// complete file appears under its name (a hard link of a synced temporary file) or nothing
    /// changes. Returns false when the name was taken, by another process too.
    public static func createIfAbsent(_ data: Data, at url: URL) throws -> Bool {
        let temporary = temporaryURL(for: url)
        defer { unlink(temporary.path) }
        try writeNew(data, to: temporary)
        try fsyncPath(temporary.path, directory: false)
        if link(temporary.path, url.path) != 0 {
            if errno == EEXIST { return false }
            throw StoreError.io(file: url.path, operation: "link \(temporary.lastPathComponent) into place", errno: errno)
        }
        try fsyncPath(url.deletingLastPathComponent().path, directory: true)
        return true
    }

    /// A fresh temporary name beside `url`.
    static func temporaryURL(for url: URL) -> URL {
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(suffix)")
    }

    /// fsyncs `temporary`, renames it to `url`, fsyncs the directory.
    static func commit(_ temporary: URL, to url: URL) throws {
        try fsyncPath(temporary.path, directory: false)
        if rename(temporary.path, url.path) != 0 {
            throw StoreError.io(file: url.path, operation: "rename \(temporary.lastPathComponent) "
                                + "into place", errno: errno)
        }
        try fsyncPath(url.deletingLastPathComponent().path, directory: true)
    }

    /// Creates `url` exclusively and writes all of `data` to it.
    private static func writeNew(_ data: Data, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw StoreError.io(file: url.path, operation: "create", errno: errno)
        }
        defer { close(descriptor) }
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Foundation.write(descriptor, raw.baseAddress! + offset,
                                               raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw StoreError.io(file: url.path, operation: "write", errno: errno)
                }
                offset += written
            }
        }
    }

    /// Fsyncs the directory that holds `url`, making a file created there durable by name.
    public static func syncDirectory(of url: URL) throws {
        try fsyncPath(url.deletingLastPathComponent().path, directory: true)
    }

    /// Opens `path` (a file or a directory) and fsyncs it.
    static func fsyncPath(_ path: String, directory: Bool) throws {
        let flags = directory ? (O_RDONLY | O_DIRECTORY | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC)
        let descriptor = open(path, flags)
        guard descriptor >= 0 else {
            throw StoreError.io(file: path, operation: "open for fsync", errno: errno)
        }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 {
            throw StoreError.io(file: path, operation: "fsync", errno: errno)
        }
    }
}

extension HDF5File {
    /// Writes a whole HDF5 file so that readers see the old file or the complete new one.
    ///
    /// `body` fills a new file created under a temporary name in `url`'s directory; the file
    /// is then closed, fsynced, renamed over `url`, and the directory fsynced. If `body`
    /// throws (or anything fails), the temporary file is deleted, `url` is left untouched and
    /// the error is rethrown. Do not keep the `HDF5File` passed to `body` beyond it.
    /// - Parameter sealed: write the file with a user block and seal it once complete
    ///   (`HDF5Seal`), so readers that open it with `openSealed` detect any later change.
    public static func writeAtomically<Result>(to url: URL, sealed: Bool = false,
                                               _ body: (HDF5File) throws -> Result) throws -> Result {
        let temporary = AtomicFile.temporaryURL(for: url)
        do {
            let file = try HDF5File.create(at: temporary, userBlock: sealed ? HDF5Seal.userBlockSize : 0)
            let result: Result
            do {
                result = try body(file)
            } catch {
                try? file.close()
                throw error
            }
            try file.close()
            if sealed { try HDF5Seal.seal(fileAt: temporary) }
            try AtomicFile.commit(temporary, to: url)
            return result
        } catch {
            unlink(temporary.path)
            throw error
        }
    }
}
