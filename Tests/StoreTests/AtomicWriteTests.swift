import Foundation
import Synchronization
import Testing
@testable import Store

/// Whole-file commits: complete new content or the untouched old one, and no temporary file
/// left behind either way.
@Suite struct AtomicWriteTests {
    private struct Interrupted: Error {}

    @Test func hdf5CommitLeavesOnlyTheFinalFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("stage-1.h5")
        let count = try HDF5File.writeAtomically(to: url) { file in
            try file.write([1, 2, 3] as [Float], shape: [3], at: "lora_A")
            try file.setAttribute(1, named: "stage")
            return 3
        }
        #expect(count == 3)
        #expect(try scratch.contents() == ["stage-1.h5"])
        let file = try HDF5File.open(url)
        #expect(try file.readFloats(at: "lora_A").values == [1, 2, 3])
        #expect(try file.intAttribute(named: "stage") == 1)
    }

    @Test func throwingWriterKeepsOldContentAndRemovesTemporary() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("plan.h5")
        try HDF5File.writeAtomically(to: url) { file in
            try file.write(["a", "b"], at: "ids")
        }
        let before = try Data(contentsOf: url)
        #expect(throws: Interrupted.self) {
            try HDF5File.writeAtomically(to: url) { file in
                try file.write(["c", "d", "e"], at: "ids")
                try file.write((0..<100_000).map(Float.init), shape: [100_000], at: "big")
                throw Interrupted()
            }
        }
        #expect(try Data(contentsOf: url) == before)
        #expect(try scratch.contents() == ["plan.h5"])
        #expect(try HDF5File.open(url).readStrings(at: "ids") == ["a", "b"])

        // A store error midway (writing the same path twice) behaves the same way.
        let error = storeError {
            try HDF5File.writeAtomically(to: url) { file in
                try file.write(["x"], at: "ids")
                try file.write(["y"], at: "ids")
            }
        }
        guard case .alreadyExists(_, let path) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(path == "/ids")
        #expect(try scratch.contents() == ["plan.h5"])
        #expect(try Data(contentsOf: url) == before)
    }

    @Test func replacingCommitSwapsWholeFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("stage.h5")
        try HDF5File.writeAtomically(to: url) { try $0.write([Int64(1)], shape: [1], at: "old") }
        let reader = try HDF5File.open(url)  // an open reader keeps seeing the old file
        try HDF5File.writeAtomically(to: url) { try $0.write([Int64(2)], shape: [1], at: "new") }
        #expect(try reader.readInt64s(at: "old").values == [1])
        let fresh = try HDF5File.open(url)
        #expect(try fresh.children() == ["new"])
        #expect(try scratch.contents() == ["stage.h5"])
    }

    @Test func smallFilesAreReplacedAtomically() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("served.json")
        try AtomicFile.write(#"{"shards":[0,1]}"#, to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == #"{"shards":[0,1]}"#)
        let big = Data((0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try AtomicFile.write(big, to: url)
        #expect(try Data(contentsOf: url) == big)
        #expect(try scratch.contents() == ["served.json"])

        let missingDirectory = scratch.file("no/such/dir/served.json")
        let error = storeError { try AtomicFile.write("x", to: missingDirectory) }
        guard case .io(let file, let operation, let code) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(file.hasPrefix(scratch.file("no/such/dir").path))
        #expect(operation == "create")
        #expect(code == ENOENT)
        #expect(try Data(contentsOf: url) == big)
    }

    @Test func createIfAbsentHasOneWinnerAmongRacingWriters() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("train.json")
        let winners = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { writer in
            if (try? AtomicFile.createIfAbsent(Data("writer \(writer)".utf8), at: url)) == true {
                winners.withLock { $0.append(writer) }
            }
        }
        let winner = try #require(winners.withLock { $0 }.first)
        #expect(winners.withLock { $0.count } == 1)
        #expect(try String(contentsOf: url, encoding: .utf8) == "writer \(winner)")
        #expect(try !AtomicFile.createIfAbsent(Data("late".utf8), at: url))
        #expect(try String(contentsOf: url, encoding: .utf8) == "writer \(winner)")
        #expect(try scratch.contents() == ["train.json"])  // no temporary file left
    }

    @Test func theSameContentWritesTheSameBytesAtAnyTime() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        func write(_ name: String) throws -> Data {
            let url = scratch.file(name)
            try HDF5File.writeAtomically(to: url, sealed: true) { file in
                try file.write([Float](repeating: 0.5, count: 12), shape: [3, 4], at: "adapters/layer.0/lora_A")
                try file.createGroup("head")
                try file.setAttribute(.string("stage"), named: "format")
            }
            return try Data(contentsOf: url)
        }
        let first = try write("first.h5")
        Thread.sleep(forTimeInterval: 1.1)  // object times, were they recorded, would differ now
        #expect(try write("second.h5") == first)
    }
}
