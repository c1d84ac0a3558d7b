import Foundation
import Testing
@testable import Serving

/// `DirectoryChanges`: the inotify look the server's watcher takes before checking the run.
@Suite struct DirectoryChangesTests {
    /// Creating, writing, renaming in and deleting a file are changes, each seen once; reading
    /// a file and doing nothing are not.
    @Test func writesAndRenamesAreChangesReadsAreNot() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-changes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let changes = DirectoryChanges(directory: directory.path)
        #expect(changes.isWatching)
        #expect(!changes.changed())
        let file = directory.appendingPathComponent("served.json")
        try Data("{}".utf8).write(to: file)
        #expect(changes.changed())
        #expect(!changes.changed())
        _ = try Data(contentsOf: file)
        #expect(!changes.changed())
        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(" ".utf8))
        try handle.close()
        #expect(changes.changed())
        let staged = directory.appendingPathComponent("served.json.tmp")
        try Data("{\"a\":1}".utf8).write(to: staged)
        _ = changes.changed()
        #expect(rename(staged.path, file.path) == 0)
        #expect(changes.changed())
        try FileManager.default.removeItem(at: file)
        #expect(changes.changed())
        #expect(!changes.changed())
    }

    /// A directory that cannot be watched answers "changed" every time, so the caller checks.
    @Test func anUnwatchableDirectoryAlwaysSaysChanged() {
        let changes = DirectoryChanges(directory: "/nonexistent-\(UUID().uuidString)")
        #expect(!changes.isWatching)
        #expect(changes.changed() && changes.changed())
    }
}
