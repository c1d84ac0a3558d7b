import CommandSupport
import Foundation

/// A program the benchmarks run to completion (wrk, the `lethe` binary itself).
enum ChildProcess {
    /// Runs `binary` with `arguments` (OPENBLAS_CORETYPE removed from its environment, as
    /// OpenBLAS's AVX2 override halves sgemm here); returns the exit status and everything it
    /// printed on stdout and stderr.
    static func run(_ binary: URL, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = nil
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // A benchmark ended by SIGINT or SIGTERM stops its load generator too.
        let cleanup = InterruptCleanup.shared.stop(process)
        defer { InterruptCleanup.shared.release(cleanup) }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
