import Foundation

/// An exclusive advisory lock on a file (`flock(2)`), shared by threads and processes.
///
/// A run directory's `.run.lock` orders every change a deletion binds (a forget, a stage commit,
/// a publish of `served.json`); see docs/FORMAT.md, "The run lock". A lock belongs to one open file description, so the same process
/// must not take one lock twice (it would wait for itself). The kernel drops the lock when the
/// holder dies, so a `kill -9` never leaves a run locked.
public enum FileLock {
    /// Runs `body` while holding the exclusive lock on `url` (created if missing); waits for it.
    public static func withExclusiveLock<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw openFailure(url, errno) }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StoreError.io(file: url.path, operation: "flock", errno: errno) }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// Runs `body` holding the lock on `url` shared, for a process that only reads and may not
    /// write there: the file is opened read-only (never created), and the call waits while a
    /// writer holds the exclusive lock. A missing lock file means no writer ever locked the
    /// directory; `body` then runs unlocked.
    public static func withSharedLockForReading<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        guard let descriptor = try openForSharedLock(url) else { return try body() }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_SH) != 0 {
            guard errno == EINTR else { throw StoreError.io(file: url.path, operation: "flock", errno: errno) }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// `withSharedLockForReading` waiting at most `seconds` for the lock: nil (and `body` not
    /// run) when a writer kept it that long.
    public static func withSharedLockForReading<T>(_ url: URL, waitingAtMost seconds: TimeInterval,
                                                   _ body: () throws -> T) throws -> T? {
        guard let descriptor = try openForSharedLock(url) else { return try body() }
        defer { close(descriptor) }
        let deadline = Date().addingTimeInterval(seconds)
        while flock(descriptor, LOCK_SH | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw StoreError.io(file: url.path, operation: "flock", errno: errno)
            }
            guard Date() < deadline else { return nil }
            usleep(2_000)
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// Runs `body` holding the exclusive lock on `url`, waiting for it at most `seconds`; nil
    /// (and `body` not run) when another holder kept it that long.
    public static func withExclusiveLock<T>(_ url: URL, waitingAtMost seconds: TimeInterval,
                                            _ body: () throws -> T) throws -> T? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let result = try withLockIfFree(url, body) { return result }
            guard Date() < deadline else { return nil }
            usleep(5_000)
        }
    }

    /// Runs `body` holding the lock on `url` if nobody holds it; returns nil without waiting
    /// when another holder has it.
    public static func withLockIfFree<T>(_ url: URL, _ body: () throws -> T) throws -> T? {
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw openFailure(url, errno) }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            if errno == EWOULDBLOCK { return nil }
            guard errno == EINTR else { throw StoreError.io(file: url.path, operation: "flock", errno: errno) }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// The lock file opened read-only (never created), or nil when it does not exist: no writer
    /// ever locked the directory.
    private static func openForSharedLock(_ url: URL) throws -> Int32? {
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw StoreError.io(file: url.path, operation: "open (lock)", errno: errno)
        }
        return descriptor
    }

    /// Why the lock file could not be opened for writing.
    private static func openFailure(_ url: URL, _ code: Int32) -> StoreError {
        code == EISDIR ? .unusableLock(file: url.path, kind: "a directory") : .io(file: url.path, operation: "open (lock)", errno: code)
    }
}
