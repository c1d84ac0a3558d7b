import Glibc

/// Whether anything in one directory changed since the last look, from Linux's inotify: a
/// file created, written, renamed in or out, deleted, or its attributes changed. One thread
/// looks at a time.
///
/// One non-blocking read per look, where checking served.json and asking the ledger cost a
/// stat, SQLite's file locks and a query. When inotify is not available (or the watch cannot
/// be added) every look answers "changed", so the caller falls back to checking every time.
/// Writes by other machines to a shared filesystem raise no events here; callers still check
/// now and then without one.
final class DirectoryChanges: @unchecked Sendable {
    private let descriptor: Int32
    /// Where the queued events are read into (and dropped): one buffer for every look.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)

    init(directory: String) {
        let mask = UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_CLOSE_WRITE)
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd >= 0, inotify_add_watch(fd, directory, mask) >= 0 {
            descriptor = fd
        } else {
            if fd >= 0 { close(fd) }
            descriptor = -1
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        buffer.deallocate()
    }

    /// Whether inotify watches the directory (else `changed()` is always true).
    var isWatching: Bool { descriptor >= 0 }

    /// True when an event arrived since the last call (an overflow of the event queue is an
    /// event too), or when the directory is not watched. Drains the queued events.
    func changed() -> Bool {
        guard descriptor >= 0 else { return true }
        var any = false
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 { any = true; continue }
            if count < 0, errno == EINTR { continue }
            // EAGAIN: drained. Any other error: say "changed" so that the caller checks.
            return any || (count < 0 && errno != EAGAIN)
        }
    }
}
