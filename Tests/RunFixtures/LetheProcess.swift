import Foundation

/// The built `lethe` executable run as a real process, for tests that exercise the command line
/// (exit codes, messages, kills). It is found under `.build/release` or `.build/debug` of this
/// checkout, where `swift build --build-tests` puts it beside the tests.
public enum LetheProcess {
    /// A run that exited non-zero: the arguments, the status and everything it printed.
    public struct Failed: Error, CustomStringConvertible {
        public let arguments: [String]
        public let status: Int32
        public let output: String
        public var description: String { "lethe \(arguments.joined(separator: " ")): exit \(status): \(output)" }

        public init(arguments: [String], status: Int32, output: String) {
            self.arguments = arguments; self.status = status; self.output = output
        }
    }

    /// The repository this file belongs to.
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static func binary() throws -> URL {
        for configuration in ["release", "debug"] {
            let url = root.appendingPathComponent(".build/\(configuration)/lethe")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: root.appendingPathComponent(".build/release/lethe").path])
    }

    /// Runs `lethe` to completion; returns the exit status and everything it printed (stdout
    /// and stderr), with `environment` added to the test's own.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try runTool(try binary().path, arguments, environment: environment)
    }

    /// Runs any program (`lethe`, a Slurm client) to completion, with `environment` added to the
    /// test's own; returns the exit status and everything it printed (stdout and stderr).
    public static func runTool(_ path: String, _ arguments: [String], environment: [String: String] = [:])
        throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs `lethe` as a user who may read `run` but not write it: as root, on a read-only bind
    /// mount of it in a mount namespace of its own; otherwise with its write bits removed for the
    /// call. Returns the exit status and everything it printed.
    public static func runReadOnly(_ run: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let lethe = try binary().path
        guard getuid() == 0 else {
            _ = try runTool("/bin/chmod", ["-R", "a-w", run.path])
            defer { _ = try? runTool("/bin/chmod", ["-R", "u+w", run.path]) }
            return try self.run(arguments)
        }
        let script = "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && shift && exec \"$@\""
        return try runTool("/usr/bin/unshare", ["--mount", "sh", "-c", script, "sh", run.path, lethe] + arguments)
    }

    /// Runs `lethe` to completion; returns the exit status and its stdout and stderr apart.
    public static func runApart(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // stderr is drained on another thread so that neither pipe fills while the other is read.
        nonisolated(unsafe) var errorData = Data()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { errorData = errors.fileHandleForReading.readDataToEndOfFile(); done.signal() }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
    }

    /// Runs `lethe` to completion and returns what it printed; throws `Failed` on a non-zero exit.
    @discardableResult
    public static func succeed(_ arguments: [String]) throws -> String {
        let (status, output) = try run(arguments)
        guard status == 0 else { throw Failed(arguments: arguments, status: status, output: output) }
        return output
    }

    /// Starts `lethe` in the background with its output discarded (to be waited for or killed).
    public static func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}
