import Foundation
import RunFixtures
import Testing

/// Every subcommand's `--help` equals its committed text (Fixtures/help), so a change to what
/// users read shows up in review. After an intended change run
/// `bash Tools/update_help_fixtures.sh` and commit the new texts with it.
@Suite struct HelpTextTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let root = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var commands: [String] {
        ((try? String(contentsOf: fixtures.appendingPathComponent("commands.txt"), encoding: .utf8)) ?? "")
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Runs `lethe` on a terminal `columns` wide (help text wraps at the terminal's width).
    static func run(_ arguments: [String], columns: Int = 100) throws -> (status: Int32, output: String) {
        try LetheProcess.run(arguments, environment: ["COLUMNS": String(columns)])
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
