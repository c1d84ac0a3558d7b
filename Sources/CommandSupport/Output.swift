import Foundation

/// Writes a line to stdout unbuffered, so a log file or pipe sees each stage as it finishes.
public func writeLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Writes `object` as one key-sorted JSON line (the `--json` output of training).
public func writeJSONLine(_ object: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
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
