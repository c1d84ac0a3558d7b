import Foundation
import RunFixtures
import Testing

/// Datasets/convert.py on bad input: it stops naming the file (and the CSV row) and writes
/// nothing, rather than a Python traceback or a data set with holes.
@Suite struct ConvertScriptTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Datasets/convert.py").path

    /// Runs the script; its exit status and everything it printed.
    static func convert(_ arguments: [String]) throws -> (status: Int32, error: String) {
        let (status, output) = try LetheProcess.runTool("/usr/bin/env", ["python3", script] + arguments)
        return (status, output)
    }

    static func bzip2(_ text: String, to url: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import bz2,sys; sys.stdout.buffer.write(bz2.compress(sys.stdin.buffer.read()))"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        try input.fileHandleForWriting.close()
        try output.fileHandleForReading.readDataToEndOfFile().write(to: url)
        process.waitUntilExit()
    }

    @Test func badInputIsNamedAndNothingIsWritten() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-convert-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out")
        // BBC: an empty article; then two folders of one label giving the same id.
        let bbc = scratch.appendingPathComponent("bbc")
        for folder in ["sport", "tech"] {
            try FileManager.default.createDirectory(at: bbc.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try Data("Headline\n\nBody.\n".utf8).write(to: bbc.appendingPathComponent("tech/001.txt"))
        try Data().write(to: bbc.appendingPathComponent("sport/001.txt"))
        let empty = try Self.convert(["bbc-news", bbc.path, out.path])
        #expect(empty.status == 1 && empty.error.contains("sport/001.txt: the article is empty"), "\(empty.error)")
        try Data("Match\n".utf8).write(to: bbc.appendingPathComponent("sport/001.txt"))
        try FileManager.default.createDirectory(at: bbc.appendingPathComponent("sports"), withIntermediateDirectories: true)
        try Data("Match again\n".utf8).write(to: bbc.appendingPathComponent("sports/001.txt"))
        let twice = try Self.convert(["bbc-news", bbc.path, out.path])
        #expect(twice.status == 1 && twice.error.contains("gives the id sport/001"), "\(twice.error)")

        // Rotten Tomatoes: not bzip2, a missing column, a short row, an empty text, an empty movie.
        let csv = scratch.appendingPathComponent("rt.csv.bz2")
        try Data("plain text".utf8).write(to: csv)
        let cases: [(String?, String)] = [
            (nil, "rt.csv.bz2: not a bzip2 file"),
            ("category,text\nfresh,good\n", "no column movie_name"),
            ("category,text,movie_name\nfresh,good,M\nrotten,bad\n", "row 1: has fewer fields than the header"),
            ("category,text,movie_name\nfresh,good,M\nrotten,  ,N\n", "row 1: the review text is empty"),
            ("category,text,movie_name\nfresh,good,\n", "row 0: the movie name (the example's group) is empty"),
        ]
        for (content, message) in cases {
            if let content { try Self.bzip2(content, to: csv) }
            let result = try Self.convert(["rotten-tomatoes", csv.path, out.path])
            #expect(result.status == 1 && result.error.contains(message) && !result.error.contains("Traceback"),
                    "\(message): \(result.error)")
        }
        #expect(!FileManager.default.fileExists(atPath: out.path), "nothing is written for bad input")
        // A good CSV converts (the split puts every fifth row of a label into test).
        try Self.bzip2("category,text,movie_name\n" + (0..<5).map { "fresh,review \($0),M\($0)\n" }.joined(), to: csv)
        #expect(try Self.convert(["rotten-tomatoes", csv.path, out.path]).status == 0)
        let test = try String(contentsOf: out.appendingPathComponent("test.jsonl"), encoding: .utf8)
        #expect(test == #"{"id": "rt/00004", "text": "review 4", "label": "fresh", "group": "M4"}"# + "\n")
    }
}
