import ArgumentParser
import Foundation

/// `--run RUN`: the run directory every run command works on (`lethe plan` creates it).
public struct RunOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("run"), help: "Run directory (made by `lethe plan`: plan.h5, stages/, served.json, ledger.sqlite).")
    public var runDirectory: String

    /// The run directory as a file URL.
    public var url: URL { URL(fileURLWithPath: runDirectory) }

    public func validate() throws {
        try Self.checkUTF8(runDirectory, option: "--run")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDirectory), !isDirectory.boolValue {
            let parent = URL(fileURLWithPath: runDirectory).deletingLastPathComponent().path
            throw ValidationError("--run \(runDirectory): is a file, not a run directory; give the directory that holds "
                                  + "plan.h5 (here perhaps --run \(parent)).")
        }
    }

    /// Arguments reach Swift as UTF-8 text, and bytes that are not UTF-8 arrive replaced by
    /// U+FFFD: the path would name another directory than the one typed (two names can even
    /// meet in one), so such a path is refused rather than used.
    /// An empty path is refused too: it would mean the working directory, which an unset shell
    /// variable (`--run "$RUN"`) must never silently become.
    public static func checkUTF8(_ path: String, option: String) throws {
        guard !path.isEmpty else {
            throw ValidationError("\(option) is empty; give the run directory (an unset shell variable gives an empty "
                                  + "value; write --run . for the working directory).")
        }
        guard !path.unicodeScalars.contains("\u{FFFD}") else {
            throw ValidationError("\(option) \(path): the path holds bytes that are not UTF-8 (shown as \u{FFFD}), so "
                                  + "Lethe cannot name that directory exactly. Rename it to a UTF-8 name.")
        }
    }
}
