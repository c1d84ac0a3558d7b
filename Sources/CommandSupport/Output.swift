import CMalloc
import Foundation
import Glibc
import Synchronization

/// Writes a line to stdout unbuffered, so a log file or pipe sees each stage as it finishes.
public func writeLine(_ line: String) {
    StandardOutput.write(line + "\n")
}

/// Standard output, with its failures remembered rather than fatal.
///
/// `lethe` ignores SIGPIPE (`ignoreBrokenPipes`): a reader that goes away — `lethe forget … |
/// head -1` — must not kill a command between accepting a deletion and publishing it. Writes
/// then fail with EPIPE instead; the first failure is kept, and `failure()` (checked when a
/// command ends) turns it into an error, so output that did not arrive is never reported as a
/// success.
public enum StandardOutput {
    private static let firstError = Mutex<Int32>(0)

    /// Ignores SIGPIPE for the whole process.
    public static func ignoreBrokenPipes() { signal(SIGPIPE, SIG_IGN) }

    /// Writes `text` to file descriptor 1 directly (after whatever `print` buffered).
    public static func write(_ text: String) {
        fflush(nil)
        if let code = writeAll(Array(text.utf8), to: 1) { firstError.withLock { if $0 == 0 { $0 = code } } }
    }

    /// Why output was lost, or nil: flushes `print`'s buffer and reports the first failed
    /// write of either path.
    public static func failure() -> String? {
        if fflush(nil) != 0 {
            let code = errno
            firstError.withLock { if $0 == 0 { $0 = code == 0 ? EIO : code } }
        }
        // A flush that failed earlier (a full buffer written to a full device) discarded its
        // bytes and left only stdout's error flag: the last flush then has nothing to report.
        if lethe_stdout_error() != 0 { firstError.withLock { if $0 == 0 { $0 = EIO } } }
        let code = firstError.withLock { $0 }
        return code == 0 ? nil : "\(String(cString: strerror(code))) (errno \(code))"
    }
}

/// Standard error, written without failing: FileHandle's write traps when the descriptor is a
/// closed pipe, and a message about a finished command must not turn it into a crash.
public enum StandardError {
    /// Writes `data` to file descriptor 2; a failed write (EPIPE, a closed descriptor) is dropped.
    public static func write(_ data: Data) {
        _ = writeAll(Array(data), to: 2)
    }
}

/// Writes every byte of `bytes` to `descriptor`, retrying after a signal; the errno of a failed
/// write, or nil.
private func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Int32? {
    var rest = bytes[...]
    while !rest.isEmpty {
        let count = rest.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { return count < 0 ? errno : EIO }
        rest = rest.dropFirst(count)
    }
    return nil
}

/// Writes `object` as one key-sorted JSON line (the `--json` output of training).
public func writeJSONLine(_ object: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
    writeLine(String(decoding: data, as: UTF8.self))
}

/// CPU seconds used by this process so far (all threads): on a shared, oversubscribed machine
/// the CPU time of a 1-thread run is a steadier measure of work than wall time.
public func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// `text` with its control characters shown escaped (`\u{1B}`), so printing it to a terminal
/// cannot move the cursor, clear the screen or change the terminal's state; the scalars in
/// `kept` (e.g. a newline in generated prose) are printed as they are.
public func terminalSafe(_ text: String, keeping kept: Set<Unicode.Scalar> = []) -> String {
    text.unicodeScalars.map { scalar in
        scalar.properties.generalCategory == .control && !kept.contains(scalar) ? scalar.escaped(asASCII: true) : String(scalar)
    }.joined()
}
