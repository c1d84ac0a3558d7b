import Foundation
import Testing
@testable import Store

/// Every dtype, attribute kind, layout and hierarchy operation survives a write, close and
/// reopen unchanged.
@Suite struct RoundTripTests {
    @Test func float32Int64AndBytesRoundTripExactly() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("tensors.h5")
        let floats: [Float] = (0..<60).map { Float($0) * 0.1 - 2.5 } + [.infinity, -0.0, .leastNonzeroMagnitude]
        let ints: [Int64] = [.min, -1, 0, 1, 42, .max]
        let bytes = (0...255).map { UInt8($0) }
        do {
            let file = try HDF5File.create(at: url)
            try file.write(floats, shape: [3, 21], at: "w")
            try file.write(ints, shape: [2, 3], at: "ids/counts")
            try file.write(bytes, shape: [16, 16], at: "raw")
            try file.write([Float(7.5)], shape: [], at: "scalar")
            try file.write([Float](), shape: [0, 4], at: "empty")
            try file.close()
        }
        let file = try HDF5File.open(url)
        let w = try file.readFloats(at: "w")
        #expect(w.shape == [3, 21])
        #expect(w.values.map(\.bitPattern) == floats.map(\.bitPattern))
        #expect(try file.readInt64s(at: "/ids/counts") == (ints, [2, 3]))
        #expect(try file.readBytes(at: "raw").values == bytes)
        #expect(try file.readFloats(at: "scalar") == ([7.5], []))
        #expect(try file.readFloats(at: "empty") == ([], [0, 4]))
        #expect(try file.info(at: "ids/counts") == DatasetInfo(elementType: .int64, shape: [2, 3]))
        #expect(try file.info(at: "raw").elementType == .uint8)
    }

    @Test func float16StoresHalfPrecisionAndReadsBackAsFloat() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("half.h5")
        // 0.1 is not representable in binary16: the nearest half is 1638/16384 = 0.0999755859375.
        let values: [Float] = [0, 1, -2.5, 0.1, 65504, 1e5, 6e-8]
        let file = try HDF5File.create(at: url)
        try file.write(values, shape: [7], at: "h", storage: .float16)
        try file.close()
        let reopened = try HDF5File.open(url)
        #expect(try reopened.info(at: "h").elementType == .float16)
        let read = try reopened.readFloats(at: "h", expectedShape: [7]).values
        #expect(read == [0, 1, -2.5, 0.0999755859375, 65504, .infinity, 5.9604645e-08])
    }

    @Test func stringDatasetsKeepUnicodeEmptyStringsAndOrder() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("plan.h5")
        let ids = ["bbc-0001", "", "dokument-ä", "映画の批評", "tab\tand\nnewline"]
        let file = try HDF5File.create(at: url)
        try file.write(ids, at: "shards/0/slices/3/member_ids")
        try file.write([String](), at: "shards/0/slices/4/member_ids")
        try file.close()
        let reopened = try HDF5File.open(url)
        #expect(try reopened.readStrings(at: "shards/0/slices/3/member_ids") == ids)
        #expect(try reopened.readStrings(at: "shards/0/slices/4/member_ids") == [])
        #expect(try reopened.info(at: "shards/0/slices/3/member_ids")
                == DatasetInfo(elementType: .string, shape: [5]))
    }

    @Test func attributesOfEveryKindOnFileGroupAndDataset() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("attrs.h5")
        let file = try HDF5File.create(at: url)
        try file.write([Float](repeating: 1, count: 4), shape: [2, 2], at: "stage/1/lora_A")
        let stage = try file.group("stage/1")
        let values: [String: AttributeValue] = [
            "software": "lethe 0.1.0",
            "slice_ids": .strings(["s0", "s3", "ünï"]),
            "seed": 1234,
            "shape": .ints([8, 384, -1]),
            "lora_alpha": 16.5,
            "losses": .doubles([0.25, 1e-300, -3]),
            "empty": .ints([]),
        ]
        for (name, value) in values {
            try file.setAttribute(value, named: name)
            try stage.setAttribute(value, named: name)
            try stage.setAttribute(value, named: name, at: "lora_A")
        }
        try file.setAttribute(2, named: "seed")  // replacing keeps one attribute of that name
        try file.close()

        let reopened = try HDF5File.open(url)
        #expect(try reopened.intAttribute(named: "seed") == 2)
        for (name, value) in values where name != "seed" {
            #expect(try reopened.attribute(named: name) == value)
        }
        for (name, value) in values {
            #expect(try reopened.attribute(named: name, at: "stage/1") == value)
            #expect(try reopened.group("stage").attribute(named: name, at: "1/lora_A") == value)
        }
        #expect(try reopened.attributeNames() == values.keys.sorted())
        #expect(try reopened.stringAttribute(named: "software") == "lethe 0.1.0")
        #expect(try reopened.stringsAttribute(named: "slice_ids") == ["s0", "s3", "ünï"])
        #expect(try reopened.intsAttribute(named: "shape") == [8, 384, -1])
        #expect(try reopened.doubleAttribute(named: "lora_alpha") == 16.5)
        #expect(try reopened.doublesAttribute(named: "losses") == [0.25, 1e-300, -3])
        #expect(try reopened.hasAttribute(named: "seed", at: "stage/1/lora_A"))
        #expect(try !reopened.hasAttribute(named: "nope"))
        let missing = storeError { _ = try reopened.attribute(named: "nope", at: "stage") }
        #expect(missing == .missingAttribute(file: url.path, path: "/stage", name: "nope"))
        let wrongKind = storeError { _ = try reopened.intAttribute(named: "software") }
        #expect(wrongKind == .typeMismatch(file: url.path, path: "/@software", expected: "int",
                                           found: "string"))
    }

    @Test func nestedGroupsAreCreatedListedAndRemoved() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = try HDF5File.create(at: scratch.file("tree.h5"))
        try file.write([Int64(1)], shape: [1], at: "a/b/c/d/leaf")
        let b = try file.createGroup("a/b")           // exists already: returns it
        try b.createGroup("empty/deeper")
        try b.write([UInt8(9)], shape: [1], at: "c/other")
        #expect(b.path == "/a/b")
        #expect(try file.children() == ["a"])
        #expect(try file.children(of: "a/b") == ["c", "empty"])
        #expect(try b.children(of: "c") == ["d", "other"])
        #expect(try file.kind(of: "a/b/c/d") == .group)
        #expect(try file.kind(of: "a/b/c/d/leaf") == .dataset)
        #expect(try file.kind(of: "a/x/y") == nil)
        #expect(try file.exists("/a/b/empty/deeper/"))
        #expect(try b.readBytes(at: "c/other").values == [9])
        try file.remove("a/b/c")
        #expect(try file.children(of: "a/b") == ["empty"])
        #expect(try !file.exists("a/b/c/d/leaf"))
        let badPath = storeError { _ = try file.exists("a//b") }
        guard case .invalidArgument = badPath else {
            Issue.record("expected invalidArgument for an empty component, got \(String(describing: badPath))")
            return
        }
    }

    @Test func chunkedGzipAndChecksummedDatasetsRoundTripAndCompress() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let plain = scratch.file("plain.h5")
        let packed = scratch.file("packed.h5")
        // Repetitive data compresses well; 256 KiB of float32.
        let values = (0..<65_536).map { Float($0 % 64) * 0.5 }
        for (url, options) in [(plain, DatasetOptions.contiguous),
                               (packed, .gzip(level: 6, chunkShape: [64, 128], checksum: true))] {
            let file = try HDF5File.create(at: url)
            try file.write(values, shape: [512, 128], at: "x", options: options)
            try file.write(values.map { Int64($0) }, shape: [65_536], at: "y",
                           options: .gzip(level: 1))
            try file.write(["a", "b"], at: "z", options: .gzip(level: 1))
            try file.close()
        }
        let sizes = try [plain, packed].map {
            try FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int ?? 0
        }
        #expect(sizes[1] < sizes[0] / 4, "gzip should shrink repetitive data: \(sizes)")
        let file = try HDF5File.open(packed)
        #expect(try file.readFloats(at: "x", expectedShape: [512, 128]).values == values)
        #expect(try file.readInt64s(at: "y").values == values.map { Int64($0) })
        #expect(try file.readStrings(at: "z") == ["a", "b"])
    }

    @Test func typeShapeAndWriteChecksFailWithPreciseErrors() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("checks.h5")
        let name = url.path
        let file = try HDF5File.create(at: url)
        try file.write([1, 2, 3, 4] as [Float], shape: [2, 2], at: "w")
        #expect(storeError { try file.write([1, 2, 3] as [Float], shape: [2, 2], at: "v") }
                == .invalidArgument(file: name, path: "/v",
                                    reason: "3 values do not fill shape [2, 2] (4 elements)"))
        #expect(storeError { try file.write([1] as [Float], shape: [1], at: "w") }
                == .alreadyExists(file: name, path: "/w"))
        #expect(storeError { _ = try file.readInt64s(at: "w") }
                == .typeMismatch(file: name, path: "/w", expected: "int64", found: "float32"))
        #expect(storeError { _ = try file.readStrings(at: "w") }
                == .typeMismatch(file: name, path: "/w", expected: "string", found: "float32"))
        #expect(storeError { _ = try file.readFloats(at: "w", expectedShape: [4]) }
                == .shapeMismatch(file: name, path: "/w", expected: [4], found: [2, 2]))
        #expect(storeError { _ = try file.readFloats(at: "/") }
                == .typeMismatch(file: name, path: "/", expected: "a dataset", found: "a group"))
        let badChunk = storeError {
            try file.write([1, 2, 3, 4] as [Float], shape: [4], at: "c",
                           options: .gzip(level: 6, chunkShape: [8]))
        }
        #expect(badChunk == .invalidArgument(file: name, path: "/c",
                                             reason: "chunk shape [8] must lie within 1...4 for dataset shape [4]"))
        let checksummedStrings = storeError {
            try file.write(["a"], at: "s", options: DatasetOptions(checksum: true))
        }
        guard case .invalidArgument(_, "s", _) = checksummedStrings else {
            Issue.record("got \(String(describing: checksummedStrings))")
            return
        }
        try file.close()
        #expect(storeError { _ = try HDF5File.create(at: url) } == .fileExists(file: name))

        let readOnly = try HDF5File.open(url)
        #expect(storeError { try readOnly.write([Int64(1)], shape: [1], at: "n") }
                == .notWritable(file: name, path: "/n"))
        #expect(storeError { try readOnly.setAttribute(1, named: "a") }
                == .notWritable(file: name, path: "/"))
        try readOnly.close()  // HDF5 refuses a read-write open while a read-only one is live
        let writable = try HDF5File.open(url, mode: .readWrite)
        try writable.write([Int64(5)], shape: [1], at: "n")
        try writable.close()
        #expect(try HDF5File.open(url).readInt64s(at: "n").values == [5])
        let replaced = try HDF5File.create(at: url, replacing: true)
        #expect(try replaced.children() == [])
    }

    @Test func descriptionsNameFileAndPathAndSayWhatToDo() {
        let error = StoreError.typeMismatch(file: "/runs/a/stage.h5", path: "/lora_A",
                                            expected: "float32 or float16", found: "int64")
        #expect(error.description == "/runs/a/stage.h5: /lora_A holds int64, expected float32 or "
                + "float16. The file is not as Lethe writes it (another program's file, another version's, or an "
                + "edited one); restore it from its source, or have Lethe write it again.")
    }
}
