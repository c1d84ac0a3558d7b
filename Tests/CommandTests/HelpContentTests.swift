import Foundation
import Testing

/// What the help texts promise: every command lists its exit codes, the README's exit-code
/// table is the list `lethe --help` prints, and every example names ids, groups and files that
/// exist in the default data or that an example (or the README) creates.
@Suite struct HelpContentTests {
    static var helpTexts: [String: String] {
        let folder = HelpTextTests.fixtures.appendingPathComponent("help")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return Dictionary(uniqueKeysWithValues: names.map { name in
            (name, (try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)) ?? "")
        })
    }

    /// (code, meaning) rows of an exit-code list, backticks dropped.
    static func exitRows(_ lines: [Substring]) -> [(Int, String)] {
        lines.compactMap { line in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let parts = cells.count >= 2 ? cells : line.trimmingCharacters(in: .whitespaces)
                .split(separator: " ", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let code = Int(parts[0]) else { return nil }
            return (code, parts[1].replacingOccurrences(of: "`", with: ""))
        }
    }

    @Test func theReadmeTableIsTheListLetheHelpPrints() throws {
        let readme = try String(contentsOf: HelpTextTests.root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = readme.components(separatedBy: "## Exit codes").dropFirst().first?
            .components(separatedBy: "\n## ").first ?? ""
        let table = Self.exitRows(section.split(separator: "\n"))
        let (_, help) = try OptionBoundsTests.run(["--help"])
        let listed = Self.exitRows(help.components(separatedBy: "Exit codes:").dropFirst().first?
            .split(separator: "\n").prefix { $0.hasPrefix("  ") } ?? [])
        #expect(table.map(\.0) == [0, 1, 2, 3, 4, 5, 64, 75])
        #expect(table.map(\.0) == listed.map(\.0) && table.map(\.1) == listed.map(\.1), "README: \(table)\nhelp: \(listed)")
    }

    @Test func everyCommandListsItsExitCodes() {
        let texts = Self.helpTexts
        #expect(texts.count >= 29)
        for (name, text) in texts {
            #expect(text.contains("Exit codes:\n  0   done\n  1   failed or refused"), "\(name) lists no exit codes")
            #expect(text.contains("  64  usage: a missing, malformed or out-of-range option"), "\(name) lacks 64")
        }
        // Each benchmark lists what `lethe bench --help` lists for all of them.
        func codes(_ text: String?) -> String? { text?.components(separatedBy: "Exit codes:").dropFirst().first?
            .components(separatedBy: "\n\n").first }
        for (name, text) in texts where name.hasPrefix("bench-") {
            #expect(codes(text) == codes(texts["bench.txt"]), "\(name): \(codes(text) ?? "none")")
        }
        #expect(texts["forget.txt"]?.contains("  5   forget: done, but some ids or groups are unknown") == true)
        #expect(texts["audit.txt"]?.contains("  2   audit: a forgotten example is still served") == true)
        #expect(texts["verify.txt"]?.contains("  3   verify: problems found") == true)
        #expect(texts["retrain.txt"]?.contains("  4   retrain: a shard was left on a truncated prefix") == true)
    }

    /// Ids and groups of the bundled datasets (Datasets/*/*.jsonl).
    static func datasetNames() throws -> (ids: Set<String>, groups: Set<String>) {
        var ids = Set<String>(), groups = Set<String>()
        let datasets = HelpTextTests.root.appendingPathComponent("Datasets")
        for name in try FileManager.default.contentsOfDirectory(atPath: datasets.path) {
            let folder = datasets.appendingPathComponent(name)
            for file in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where file.hasSuffix(".jsonl") {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    if let id = object?["id"] as? String { ids.insert(id) }
                    if let group = object?["group"] as? String { groups.insert(group) }
                }
            }
        }
        return (ids, groups)
    }

    /// Every match of `pattern`'s first capture group in `text`.
    static func captures(_ pattern: String, in text: String) throws -> [String] {
        let regex = try NSRegularExpression(pattern: pattern)
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    @Test func examplesNameIdsGroupsAndFilesThatExist() throws {
        let (ids, groups) = try Self.datasetNames()
        #expect(ids.contains("business/001"), "the bundled data is missing: run make setup")
        let texts = Self.helpTexts
        let readme = try String(contentsOf: HelpTextTests.root.appendingPathComponent("README.md"), encoding: .utf8)
        let everything = texts.values.joined(separator: "\n") + "\n" + readme
        // What the examples themselves create: redirected output and --out/--run directories.
        let created = Set(try Self.captures(#">\s+(\S+)"#, in: everything) + Self.captures(#"--out ([^\s<]\S*)"#, in: everything))
        var checked = 0
        for (name, help) in texts {
            // The examples: command lines and the printf that writes a deletion log.
            let text = help.split(separator: "\n").filter { $0.hasPrefix("  lethe ") || $0.hasPrefix("  printf ") }
                .joined(separator: "\n")
            for id in try Self.captures(#"--id ([^\s<]\S*)"#, in: text) + Self.captures(#""id": "([^"]+)""#, in: text) {
                #expect(ids.contains(id), "\(name): example id \(id) is in no Datasets/*/*.jsonl")
                checked += 1
            }
            for group in try Self.captures(#"--group ([^\s<]\S*)"#, in: text) {
                #expect(groups.contains(group), "\(name): example group \(group) is in no Datasets/*/*.jsonl")
                checked += 1
            }
            let inputs = #"--(?:data|forget|retain|general|unseen|test-data|log|prior|adapter|model) ([^\s<]\S*)"#
            for path in try Self.captures(inputs, in: text) {
                let exists = FileManager.default.fileExists(atPath: HelpTextTests.root.appendingPathComponent(path).path)
                #expect(exists || created.contains(path), "\(name): example file \(path) neither exists nor is created by an example")
                checked += 1
            }
        }
        #expect(checked >= 20)
    }
}
