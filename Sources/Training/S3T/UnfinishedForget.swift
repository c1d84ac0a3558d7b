import Foundation
import Store

/// A one-byte flag file in the run directory, `1` while a forget has recorded requests in the
/// ledger that are not yet tombstoned in the plan, `0` otherwise.
///
/// A forget raises it (durably) before it records requests and lowers it once their tombstones
/// are durable, all under the run lock. A forget that dies in between leaves it raised until a
/// forget or a recovery on the coordinating host finishes the work. Training processes that
/// never open the ledger — the tasks of a cluster array, which may run on other nodes — read
/// the flag instead: while it is raised, the plan's tombstones are not every accepted
/// deletion, so they train and commit nothing.
///
/// The file is created once and then rewritten in place, so raising it costs one write and one
/// `fdatasync`; lowering it needs no sync (a flag left raised by a crash only makes tasks wait
/// for recovery, which lowers it).
public enum UnfinishedForget {
    public static func url(_ layout: RunLayout) -> URL { layout.directory.appendingPathComponent(".forget-unfinished") }

    /// Raises the flag and makes it durable; the caller holds the run lock.
    public static func raise(_ layout: RunLayout) throws {
        try write(UInt8(ascii: "1"), layout: layout, sync: true)
    }

    /// Lowers a raised flag; the caller holds the run lock and has made every recorded request's
    /// tombstones durable.
    public static func lower(_ layout: RunLayout) throws {
        if isRaised(layout) { try write(UInt8(ascii: "0"), layout: layout, sync: false) }
    }

    /// True when the flag file exists and does not read `0` (an unreadable flag counts as raised).
    public static func isRaised(_ layout: RunLayout) -> Bool {
        let path = url(layout).path
        guard FileManager.default.fileExists(atPath: path) else { return false }
        // Not a regular file (a FIFO would block the read): unreadable, so raised.
        guard (try? RegularFile.check(path)) != nil, let data = FileManager.default.contents(atPath: path) else { return true }
        return data.first != UInt8(ascii: "0")
    }

    /// Throws `TrainingError.unfinishedForget` while the flag is raised.
    public static func requireLowered(_ layout: RunLayout) throws {
        if isRaised(layout) { throw TrainingError.unfinishedForget(run: layout.directory.path) }
    }

    private static func write(_ byte: UInt8, layout: RunLayout, sync: Bool) throws {
        let path = url(layout).path
        let existed = FileManager.default.fileExists(atPath: path)
        try RegularFile.check(path)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StoreError.io(file: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var value = byte
        guard pwrite(descriptor, &value, 1, 0) == 1 else { throw StoreError.io(file: path, operation: "write", errno: errno) }
        if sync {
            guard fdatasync(descriptor) == 0 else { throw StoreError.io(file: path, operation: "fdatasync", errno: errno) }
            if !existed { try AtomicFile.syncDirectory(of: url(layout)) }
        }
    }
}
