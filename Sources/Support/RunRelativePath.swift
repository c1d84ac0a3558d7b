import Foundation

/// Paths a run records to files outside it (its dataset, its base model): relative to the run
/// directory when the two share more than the root, so a run and its inputs can move together
/// and every command finds them whatever directory it runs in.
public enum RunRelativePath {
    /// `path` (absolute, or relative to the working directory) as it is recorded in `run`.
    public static func recorded(_ path: String, run: URL) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL
        let target = absolute.pathComponents
        let base = run.standardizedFileURL.pathComponents
        var common = 0
        while common < min(target.count, base.count), target[common] == base[common] { common += 1 }
        // Sharing only the root ("/"): the run and the file move independently; keep it absolute.
        if common <= 1 || path.hasPrefix("/") { return absolute.path }
        let ups = Array(repeating: "..", count: base.count - common)
        return (ups + target[common...]).joined(separator: "/")
    }

    /// The file a recorded `path` names: absolute as it is; relative, against the run directory,
    /// or, when nothing is there but something is relative to the working directory, there
    /// (runs recorded before paths were kept relative to the run).
    public static func resolve(_ path: String, run: URL) -> URL {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path) }
        let underRun = run.appendingPathComponent(path).standardizedFileURL
        let legacy = URL(fileURLWithPath: path).standardizedFileURL
        if !FileManager.default.fileExists(atPath: underRun.path), FileManager.default.fileExists(atPath: legacy.path) {
            return legacy
        }
        return underRun
    }
}
