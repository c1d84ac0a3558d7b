import Foundation
import Support
import Synchronization

/// An exclusive advisory lock on a file (`flock(2)`), shared by threads and processes.
///
/// A run directory's `.run.lock` orders every change a deletion binds (a forget, a stage commit,
/// a publish of `served.json`); see docs/FORMAT.md, "The run lock". A lock belongs to one open file description, so the same process
/// must not take one lock twice (it would wait for itself). The kernel drops the lock when the
/// holder dies, so a `kill -9` never leaves a run locked.
///
/// The lock is on the file the path names when it is granted: one removed or replaced while a
/// process waited (an operator deleting a "stale" lock) is not a lock at all, since the next
/// process would lock the new file beside it. After `flock` succeeds the descriptor is compared
/// with the path (device and inode), and on a mismatch the lock is taken again on the new file.
public enum FileLock {
    /// Called once per wait that lasts longer than `patience` for a blocking lock, with the lock
    /// file: the command line tells its user why nothing happens.
    public static let onLongWait = Mutex<(@Sendable (URL) -> Void)?>(nil)
    static let patience: TimeInterval = 1

    /// Runs `body` while holding the exclusive lock on `url` (created if missing); waits for it.
    public static func withExclusiveLock<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        try holding(url, exclusive: true, until: .distantFuture, body)!
    }

    /// Runs `body` holding the lock on `url` shared, for a process that only reads and may not
    /// write there: the file is opened read-only (never created), and the call waits while a
    /// writer holds the exclusive lock. A missing lock file means no writer ever locked the
    /// directory; `body` then runs unlocked.
    public static func withSharedLockForReading<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        try holding(url, exclusive: false, until: .distantFuture, body)!
    }

    /// `withSharedLockForReading` waiting at most `seconds` for the lock: nil (and `body` not
    /// run) when a writer kept it that long.
    public static func withSharedLockForReading<T>(_ url: URL, waitingAtMost seconds: TimeInterval,
                                                   _ body: () throws -> T) throws -> T? {
        try holding(url, exclusive: false, until: Date().addingTimeInterval(seconds), body)
    }

    /// Runs `body` holding the exclusive lock on `url`, waiting for it at most `seconds`; nil
    /// (and `body` not run) when another holder kept it that long.
    public static func withExclusiveLock<T>(_ url: URL, waitingAtMost seconds: TimeInterval,
                                            _ body: () throws -> T) throws -> T? {
        try holding(url, exclusive: true, until: Date().addingTimeInterval(seconds), body)
    }

    /// Runs `body` holding the lock on `url` if nobody holds it; returns nil without waiting
    /// when another holder has it.
    public static func withLockIfFree<T>(_ url: URL, _ body: () throws -> T) throws -> T? {
        try holding(url, exclusive: true, until: .distantPast, body)
    }

    /// Takes the lock (waiting until `deadline`; `.distantFuture` waits for ever and tells
    /// `onLongWait` after `patience`), runs `body`, releases it. nil when the deadline passed.
    private static func holding<T>(_ url: URL, exclusive: Bool, until deadline: Date,
                                   _ body: () throws -> T) throws -> T? {
        var told = false
        while true {
            // A reader never creates the file: a missing one means no writer ever locked here.
            // O_NONBLOCK: opening a FIFO put in the lock's place would otherwise wait for a
            // writer for ever (flock ignores the flag).
            let descriptor = exclusive ? open(url.path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o644)
                                       : open(url.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard descriptor >= 0 else {
                if !exclusive && errno == ENOENT { return try body() }
                throw exclusive || errno == EISDIR ? openFailure(url, errno)
                                                   : StoreError.io(file: url.path, operation: "open (lock)", errno: errno)
            }
            defer { close(descriptor) }
            var opened = stat()
            if fstat(descriptor, &opened) == 0, let kind = FileKind.irregular(opened.st_mode) {
                throw StoreError.unusableLock(file: url.path, kind: kind)
            }
            let mode = exclusive ? LOCK_EX : LOCK_SH
            if deadline == .distantFuture {
                // A blocking wait, as the kernel wakes waiters (polling would lose the lock to a
                // holder that takes it again at once); a timer tells `onLongWait` if it lasts.
                let notice = DispatchWorkItem { onLongWait.withLock { $0 }?(url) }
                if !told { DispatchQueue.global().asyncAfter(deadline: .now() + patience, execute: notice) }
                defer { notice.cancel() }
                while flock(descriptor, mode) != 0 {
                    guard errno == EINTR else { throw StoreError.io(file: url.path, operation: "flock", errno: errno) }
                }
                told = true
            } else {
                while flock(descriptor, mode | LOCK_NB) != 0 {
                    guard errno == EWOULDBLOCK || errno == EINTR else {
                        throw StoreError.io(file: url.path, operation: "flock", errno: errno)
                    }
                    guard Date() < deadline else { return nil }
                    if errno == EWOULDBLOCK { usleep(2_000) }
                }
            }
            defer { flock(descriptor, LOCK_UN) }
            // Still the file the path names? If it was removed or replaced meanwhile, lock again.
            var held = stat(), named = stat()
            guard fstat(descriptor, &held) == 0 else { throw StoreError.io(file: url.path, operation: "fstat (lock)", errno: errno) }
            if stat(url.path, &named) != 0 || named.st_dev != held.st_dev || named.st_ino != held.st_ino { continue }
            return try body()
        }
    }

    /// Why the lock file could not be opened for writing.
    private static func openFailure(_ url: URL, _ code: Int32) -> StoreError {
        code == EISDIR ? .unusableLock(file: url.path, kind: "a directory") : .io(file: url.path, operation: "open (lock)", errno: code)
    }
}
