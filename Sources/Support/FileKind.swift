import Foundation

/// What a path holds when it is not a regular file, for messages that refuse it: "a FIFO
/// (named pipe)", "a directory". Readers of run and model files refuse anything but regular
/// files (opening a FIFO waits for a writer; a device can feed endless bytes).
public enum FileKind {
    /// The kind of a file of `mode` (from `stat`), or nil for a regular file.
    public static func irregular(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: nil
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR, S_IFBLK: "a device"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }

    /// The kind of what `path` (links followed) holds when it exists and is not a regular file.
    public static func irregular(atPath path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return irregular(status.st_mode)
    }
}
