import Foundation
import Support

/// A run's files are regular files. A FIFO in the place of one would block its reader forever
/// (opening it waits for a writer), and a link to a device such as /dev/zero would feed it
/// endless bytes; both are refused with the file named instead.
public enum RegularFile {
    /// Throws `StoreError.notRegularFile` when `path` exists and (after symbolic links) is not a
    /// regular file. A missing file passes: its reader reports that in its own words.
    public static func check(_ path: String) throws {
        if let kind = FileKind.irregular(atPath: path) { throw StoreError.notRegularFile(file: path, kind: kind) }
    }

    /// Opens `path` read-only without waiting on a FIFO, and refuses anything but a regular file.
    /// Returns the descriptor, or -1 with `errno` set when `open` itself fails.
    public static func openForReading(_ path: String) throws -> Int32 {
        // O_NONBLOCK only matters for the open of a FIFO; reads of a regular file ignore it.
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { return descriptor }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let code = errno
            close(descriptor)
            throw StoreError.io(file: path, operation: "fstat", errno: code)
        }
        if let kind = FileKind.irregular(status.st_mode) {
            close(descriptor)
            throw StoreError.notRegularFile(file: path, kind: kind)
        }
        return descriptor
    }
}
