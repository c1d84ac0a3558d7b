import Foundation
import Glibc

/// Reads a file the user names as input (a dataset, a deletion log, a text set).
///
/// A regular file is mapped. A named pipe is read to its end, so `--log <(grep … requests.jsonl)`
/// and `--data /dev/stdin` work as they do for `cat`; Foundation's `Data(contentsOf:)` refuses
/// a pipe as "permission denied". A device or socket is refused by `fileErrorReason`, which
/// names what it is (reading /dev/zero would never end).
public enum InputFile {
    public static func read(_ url: URL) throws -> Data {
        if isPipe(url.path) {
            // Opening a named pipe waits for its writer, as `cat` does; said once it lasts a
            // second, so that a FIFO nothing writes to is not a silent hang.
            let notice = DispatchWorkItem {
                FileHandle.standardError.write(Data(("waiting for \(url.path): it is a named pipe, and nothing writes to it "
                    + "yet; this command goes on once a writer opens it (Ctrl-C to stop).\n").utf8))
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + 1, execute: notice)
            let opened = Result { try FileHandle(forReadingFrom: url) }
            notice.cancel()
            let handle = try opened.get()
            defer { try? handle.close() }
            return try handle.readToEnd() ?? Data()
        }
        return try Data(contentsOf: url, options: .mappedIfSafe)
    }

    /// Whether `path` is a pipe (`<(…)`, /dev/stdin from a pipe, a FIFO): its data can be read
    /// once, and the path will not hold it later.
    public static func isPipe(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO
    }
}
