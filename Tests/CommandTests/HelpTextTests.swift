import Foundation
import Testing

/// Every subcommand's `--help` equals its committed text (Fixtures/help), so a change to what
/// users read shows up in review. After an intended change run
/// `bash Tools/update_help_fixtures.sh` and commit the new texts with it.
@Suite struct HelpTextTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let root = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func letheBinary() throws -> URL {
        for configuration in ["release", "debug"] {
            let url = root.appendingPathComponent(".build/\(configuration)/lethe")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: ".build/release/lethe"])
    }

    static var commands: [String] {
        ((try? String(contentsOf: fixtures.appendingPathComponent("commands.txt"), encoding: .utf8)) ?? "")
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Runs `lethe` with `arguments` on a terminal `columns` wide; returns the exit status and
    /// everything it printed (stdout and stderr).
    static func run(_ arguments: [String], columns: Int = 100) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try letheBinary()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = String(columns)
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(arguments: HelpTextTests.commands)
    func helpMatchesTheCommittedText(command: String) throws {
        let text = try Self.run(command.split(separator: " ").map(String.init) + ["--help"]).output
        let name = command.isEmpty ? "lethe" : command.replacingOccurrences(of: " ", with: "-")
        let expected = try String(contentsOf: Self.fixtures.appendingPathComponent("help/\(name).txt"), encoding: .utf8)
        #expect(text == expected, "`lethe \(command) --help` changed; review it and run Tools/update_help_fixtures.sh")
    }

    @Test func everySubcommandHasACommittedText() throws {
        let listed = Set(Self.commands.map { $0.isEmpty ? "lethe" : $0.replacingOccurrences(of: " ", with: "-") })
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.appendingPathComponent("help").path)
        #expect(Set(files.map { String($0.dropLast(4)) }) == listed)
        #expect(listed.count >= 29)
    }
}
