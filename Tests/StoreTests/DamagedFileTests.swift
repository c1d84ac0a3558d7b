import Foundation
import Testing
@testable import Store

/// Missing, truncated and corrupt files and missing datasets give `StoreError`s that name the
/// file and the path inside it — never a crash and never HDF5 output on stderr.
@Suite struct DamagedFileTests {
    /// A small checkpoint-like file: one contiguous and one checksummed tensor, attributes.
    private func writeSample(_ url: URL) throws {
        let file = try HDF5File.create(at: url)
        try file.write((0..<4096).map { Float($0) }, shape: [64, 64], at: "stage/1/lora_A")
        try file.write((0..<4096).map { Float($0) + 0.5 }, shape: [4096], at: "stage/1/lora_B",
                       options: DatasetOptions(chunkShape: [1024], checksum: true))
        try file.setAttribute("lethe", named: "format")
        try file.close()
    }

    @Test func missingFileNamesTheFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("absent.h5")
        let error = storeError { _ = try HDF5File.open(url) }
        #expect(error == .fileNotFound(file: url.path))
        #expect(error?.description.contains(url.path) == true)
    }

    @Test func missingDatasetNamesFileAndPath() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("sample.h5")
        try writeSample(url)
        let file = try HDF5File.open(url)
        for path in ["stage/2/lora_A", "stage/1/lora_C", "nothing"] {
            let error = storeError { _ = try file.readFloats(at: path) }
            #expect(error == .missingObject(file: url.path, path: "/" + path))
            #expect(error?.description.hasPrefix("\(url.path): nothing at /\(path).") == true)
        }
        #expect(storeError { _ = try file.children(of: "stage/9") }
                == .missingObject(file: url.path, path: "/stage/9"))
        #expect(storeError { _ = try file.attribute(named: "x", at: "stage/9") }
                == .missingObject(file: url.path, path: "/stage/9"))
    }

    @Test func truncatedFileIsReportedAsTruncated() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("sample.h5")
        try writeSample(url)
        let bytes = try Data(contentsOf: url)
        for keep in [bytes.count - 1, bytes.count / 2, 100] {
            try bytes.prefix(keep).write(to: url)
            let error = storeError { _ = try HDF5File.open(url).readFloats(at: "stage/1/lora_A") }
            guard case .truncated(let file, let detail) = error else {
                Issue.record("keeping \(keep) of \(bytes.count) bytes gave \(String(describing: error))")
                continue
            }
            #expect(file == url.path)
            #expect(detail.contains("truncated"))
            #expect(error?.description.contains("restore it") == true)
        }
        try Data().write(to: url)
        let empty = storeError { _ = try HDF5File.open(url) }
        #expect(empty?.description.contains(url.path) == true, "\(String(describing: empty))")
    }

    @Test func overwrittenSignatureIsNotHDF5() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("sample.h5")
        try writeSample(url)
        var bytes = try Data(contentsOf: url)
        bytes.replaceSubrange(0..<512, with: Data(repeating: 0x5A, count: 512))
        try bytes.write(to: url)
        let error = storeError { _ = try HDF5File.open(url) }
        guard case .notHDF5(let file, _) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(file == url.path)
    }

    @Test func overwrittenMetadataIsCorruptNotACrash() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("sample.h5")
        try writeSample(url)
        let original = try Data(contentsOf: url)
        // Superblock v2 is 48 bytes; everything after it (object headers, B-trees, heaps and
        // data) is overwritten. The v2 metadata checksums must catch it.
        var bytes = original
        bytes.replaceSubrange(48..<bytes.count, with: Data(repeating: 0xA5, count: bytes.count - 48))
        try bytes.write(to: url)
        let error = storeError { _ = try HDF5File.open(url).readFloats(at: "stage/1/lora_A") }
        guard case .corrupt(let file, let path, let detail) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(file == url.path)
        #expect(path.hasPrefix("/"))
        #expect(!detail.isEmpty)
    }

    @Test func overwrittenChecksummedChunkIsCorruptAtItsPath() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("sample.h5")
        try writeSample(url)
        var bytes = try Data(contentsOf: url)
        // Find lora_B's first float (0.5 = 0x3F000000, little-endian) and flip bits in it.
        let needle = Data([0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0xC0, 0x3F])  // 0.5, 1.5
        let found = try #require(bytes.range(of: needle))
        bytes[found.lowerBound + 3] ^= 0x40
        try bytes.write(to: url)
        let file = try HDF5File.open(url)
        #expect(try file.readFloats(at: "stage/1/lora_A").values.count == 4096)
        let error = storeError { _ = try file.readFloats(at: "stage/1/lora_B") }
        guard case .corrupt(let name, let path, _) = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(name == url.path)
        #expect(path == "/stage/1/lora_B")
    }
}
