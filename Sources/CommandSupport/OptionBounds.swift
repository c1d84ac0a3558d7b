import ArgumentParser
import Foundation
import Support

/// The documented range of a numeric option, stated once: its `--help` text prints `text`, and
/// the command's `validate()` calls `check`, so a value outside it is refused before any work
/// as a usage error (exit 64) that names the option, the value and the range.
public struct OptionBounds<Value: Comparable & Sendable>: Sendable {
    public let range: ClosedRange<Value>
    /// Why the range ends where it does (e.g. "the encoder's positions"), or nil.
    public let reason: String?

    public init(_ range: ClosedRange<Value>, reason: String? = nil) {
        self.range = range; self.reason = reason
    }

    /// "1…256", as the help text and the error print it.
    public var text: String { rangeText(range) }

    /// Refuses `value` outside the range, e.g. `--rank 100000: give 1…256.` A NaN is outside
    /// every range of floating-point values.
    public func check(_ value: Value, option: String) throws {
        try requireWithin(value, range) { ValidationError("\(option) \($0): give \($1)" + (reason.map { " (\($0))" } ?? "") + ".") }
    }

    /// `check` for an option that may be left out.
    public func check(_ value: Value?, option: String) throws {
        if let value { try check(value, option: option) }
    }
}

/// Bounds that several commands share.
public enum CommonBounds {
    /// Threads of one process (OpenBLAS and our kernels).
    public static let threads = OptionBounds(1...256)
    /// The thread count every command uses when `--threads` is left out: the two cores of the
    /// machines Lethe is built on. A fixed number, not the core count, so a command gives the
    /// same bits on every machine.
    public static let defaultThreads = 2
    /// Any seed: every 64-bit unsigned integer is valid (the parser refuses the rest).
    public static let seedText = "0…18446744073709551615"
}

/// Files a command reads, checked in `validate()`: a path that is missing, a directory or
/// unreadable is a usage error naming the option and the path, before any work.
public enum InputFiles {
    /// Refuses the first `(option, path)` whose path is not a readable file; nil paths are
    /// options left out.
    public static func check(_ files: [(option: String, path: String?)]) throws {
        for (option, path) in files {
            guard let path else { continue }
            var isDirectory: ObjCBool = false
            let reason: String
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                // A link whose target is missing, or a loop of links, exists as a link.
                var status = stat()
                let isLink = lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK
                reason = !isLink ? "no such file"
                    : stat(path, &status) != 0 && errno == ELOOP ? "a loop of symbolic links, which leads to no file"
                    : "a symbolic link to a file that does not exist"
            } else if isDirectory.boolValue {
                reason = "a directory, not a file"
            } else if !isFileOrPipe(path) {
                reason = "a device or a socket, not a file (reading it may never end)"
            } else if !FileManager.default.isReadableFile(atPath: path) {
                reason = "not readable (check its permissions)"
            } else {
                continue
            }
            throw ValidationError("\(option) \(path): \(reason). Check the path.")
        }
    }

    /// Whether `path` (symbolic links followed) is a regular file or a pipe (`--log /dev/stdin`
    /// fed by a pipe ends when the writer does; /dev/zero never ends).
    static func isFileOrPipe(_ path: String) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0 else { return true }  // the read names what is wrong
        return (status.st_mode & S_IFMT) == S_IFREG || (status.st_mode & S_IFMT) == S_IFIFO
    }
}
