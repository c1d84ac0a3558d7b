import Foundation
import Testing
import Support

/// Paths a run records to its inputs: relative to the run, so any working directory finds them.
@Suite struct RunRelativePathTests {
    /// `url` written relative to the working directory (as a user types it).
    private func fromWorkingDirectory(_ url: URL) -> String {
        let depth = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.pathComponents.count - 1
        return (Array(repeating: "..", count: depth) + url.standardizedFileURL.pathComponents.dropFirst()).joined(separator: "/")
    }

    private func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-paths-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("Checkpoints/runs/r"),
                                                withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: url.appendingPathComponent("Datasets"), withIntermediateDirectories: true)
        return url
    }

    @Test func aRelativePathIsRecordedFromTheRunAndResolvedFromAnywhere() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("Datasets/train.jsonl"), run = root.appendingPathComponent("Checkpoints/runs/r")
        try Data("{}\n".utf8).write(to: data)
        let recorded = RunRelativePath.recorded(fromWorkingDirectory(data), run: run)
        #expect(recorded == "../../../Datasets/train.jsonl")
        #expect(RunRelativePath.resolve(recorded, run: run).path == data.standardizedFileURL.path)
        // An absolute path stays absolute.
        #expect(RunRelativePath.recorded(data.path, run: run) == data.standardizedFileURL.path)
        #expect(RunRelativePath.resolve(data.path, run: run).path == data.path)
    }

    @Test func aPathRecordedRelativeToTheWorkingDirectoryIsStillFound() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("Datasets/old.jsonl")
        try Data("{}\n".utf8).write(to: data)
        // Plans made before paths were kept relative to the run recorded the path as given.
        let found = RunRelativePath.resolve(fromWorkingDirectory(data), run: root.appendingPathComponent("Checkpoints/runs/r"))
        #expect(found.path == data.standardizedFileURL.path)
    }
}
