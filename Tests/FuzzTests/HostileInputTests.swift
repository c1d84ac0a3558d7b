import Foundation
import Testing
@testable import Forgetting
@testable import Models
@testable import Planning
@testable import Training

/// Inputs built to claim absurd sizes, to overflow the arithmetic on sizes, or to nest without
/// end — what random mutants rarely hit. Each parser must refuse them with its own error before
/// allocating or recursing: an allocation of 10¹² elements, an overflow trap or a stack
/// overflow would end the test process.
@Suite struct HostileInputTests {
    // MARK: - safetensors

    /// A safetensors file: the header's length (u64 little-endian), the header, `dataBytes` zeros.
    static func safetensors(_ header: String, dataBytes: Int = 16) -> [UInt8] {
        GGUFBytes.u64(UInt64(header.utf8.count)) + Array(header.utf8) + [UInt8](repeating: 0, count: dataBytes)
    }

    @Test func safetensorsHeadersClaimingHugeTensorsAreRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("w.safetensors")
        let cases = [
            (#"{"w":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,16]}}"#, "needs 4000000000000 bytes"),
            (#"{"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,16]}}"#, "needs more than 2^63"),
            (#"{"w":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#, "overflows"),
            (#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1000000000000]}}"#, "beyond the data section"),
        ]
        for (header, reason) in cases {
            try Data(Self.safetensors(header)).write(to: url)
            #expect {
                _ = try SafeTensors(contentsOf: url.path)
            } throws: { error in
                guard case ModelsError.tensorInvalid(let path, "w", let why) = error else { return false }
                return path == url.path && why.contains(reason)
            }
        }
        // A header that claims 10^12 bytes in a 40-byte file.
        try Data(GGUFBytes.u64(1_000_000_000_000) + [UInt8](repeating: 0x20, count: 32)).write(to: url)
        #expect(throws: ModelsError.truncated(path: url.path, expectedByteCount: 1_000_000_000_008, foundByteCount: 40)) {
            _ = try SafeTensors(contentsOf: url.path)
        }
        // Arrays nested 100,000 deep.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        try Data(Self.safetensors("{\"w\":\(deep)}")).write(to: url)
        #expect {
            _ = try SafeTensors(contentsOf: url.path)
        } throws: { error in
            guard case ModelsError.headerInvalid(let path, _) = error else { return false }
            return path == url.path
        }
    }

    // MARK: - GGUF

    /// A GGUF file holding one tensor info, padded with zeros to `size` bytes.
    static func gguf(dimensions: [UInt64], type: UInt32 = 0, offset: UInt64 = 0, size: Int = 1_024) -> [UInt8] {
        let bytes = GGUFBytes.header(tensors: 1, metadata: 0)
            + GGUFBytes.tensor("w", dimensions: dimensions, type: type, offset: offset)
        return bytes + [UInt8](repeating: 0, count: max(0, size - bytes.count))
    }

    /// What `GGUFFile(data:)` throws for `bytes`, with every tensor it accepts read as well.
    static func ggufRefusal(_ bytes: [UInt8]) -> ModelsError? {
        do {
            let file = try GGUFFile(data: Data(bytes), path: "hostile.gguf")
            for tensor in file.tensors { _ = try file.floats(named: tensor.name) }
            return nil
        } catch let error as ModelsError {
            return error
        } catch {
            return .fileUnreadable(path: "hostile.gguf", reason: "unexpected error \(error)")
        }
    }

    @Test func ggufTensorsWhoseSizesOverflowOrExceedTheFileAreRefused() {
        // 8 dimensions of 256: 2^64 elements, more than an Int counts.
        guard case .tensorInvalid(_, "w", let reason)? = Self.ggufRefusal(Self.gguf(dimensions: Array(repeating: 256, count: 8))) else {
            Issue.record("2^64 elements were not refused as a tensor error")
            return
        }
        #expect(reason.contains("64-bit"))
        // 2^62 F32 elements: the element count fits, the byte count does not.
        let huge = Self.ggufRefusal(Self.gguf(dimensions: Array(repeating: 256, count: 7) + [64]))
        guard case .ggufTruncated(_, let what, _)? = huge else {
            Issue.record("2^62 floats were not refused as truncated: \(String(describing: huge))")
            return
        }
        #expect(what.contains("more than 2^63 bytes"))
        // 10^12 F32 and Q8_0 elements in a 1 KiB file; a tensor that starts at the file's end.
        for bytes in [Self.gguf(dimensions: [1_000, 1_000, 1_000, 1_000]),
                      Self.gguf(dimensions: [1_000, 1_000, 1_000, 1_000], type: 8),
                      Self.gguf(dimensions: [4], offset: 1_024)] {
            guard case .ggufTruncated? = Self.ggufRefusal(bytes) else {
                Issue.record("an oversized tensor was not refused as truncated")
                continue
            }
        }
    }

    @Test func ggufCountsBeyondTheFileAndEndlessNestingAreRefused() {
        // 10^12 tensors, or a metadata array of 10^12 strings, in a small file.
        let manyTensors = GGUFBytes.header(tensors: 1_000_000_000_000, metadata: 0) + [UInt8](repeating: 0, count: 64)
        let manyStrings = GGUFBytes.header(tensors: 0, metadata: 1) + GGUFBytes.text("k") + GGUFBytes.u32(9)
            + GGUFBytes.u32(8) + GGUFBytes.u64(1_000_000_000_000) + [UInt8](repeating: 0, count: 64)
        // More tensor infos than the bytes left can hold, and more array elements than they can hold.
        let tooManyTensors = GGUFBytes.header(tensors: 100, metadata: 0) + [UInt8](repeating: 0, count: 200)
        let tooManyStrings = GGUFBytes.header(tensors: 0, metadata: 1) + GGUFBytes.text("k") + GGUFBytes.u32(9)
            + GGUFBytes.u32(8) + GGUFBytes.u64(100) + [UInt8](repeating: 0, count: 200)
        for bytes in [manyTensors, manyStrings, tooManyTensors, tooManyStrings] {
            guard case .ggufTruncated? = Self.ggufRefusal(bytes) else {
                Issue.record("a count beyond the file was not refused as truncated")
                continue
            }
        }
        // An array of 2^24 + 1 bytes: more elements than any tokenizer table.
        let bigArray = GGUFBytes.header(tensors: 0, metadata: 1) + GGUFBytes.text("k") + GGUFBytes.u32(9)
            + GGUFBytes.u32(0) + GGUFBytes.u64(UInt64(GGUFReader.maximumArrayCount + 1))
            + [UInt8](repeating: 0, count: GGUFReader.maximumArrayCount + 1)
        #expect(Self.ggufRefusal(bigArray) == .ggufInvalid(path: "hostile.gguf", what: "metadata 'k'", reason:
            "an array of \(GGUFReader.maximumArrayCount + 1) elements (at most \(GGUFReader.maximumArrayCount))"))
        // Arrays of arrays 100,000 deep: each level is an element type (9) and a count of 1.
        var nested = GGUFBytes.header(tensors: 0, metadata: 1) + GGUFBytes.text("k") + GGUFBytes.u32(9)
        for _ in 0..<100_000 { nested += GGUFBytes.u32(9) + GGUFBytes.u64(1) }
        nested += GGUFBytes.u32(0) + GGUFBytes.u64(1) + [7]
        #expect(Self.ggufRefusal(nested) == .ggufInvalid(path: "hostile.gguf", what: "metadata 'k'",
                                                        reason: "arrays nested more than 8 deep"))
        // An alignment of 2^62 (a power of two, so only its size gives it away).
        let aligned = GGUFBytes.header(tensors: 0, metadata: 1) + GGUFBytes.text("general.alignment")
            + GGUFBytes.u32(10) + GGUFBytes.u64(1 << 62)
        guard case .missingMetadata(_, "general.alignment", _)? = Self.ggufRefusal(aligned) else {
            Issue.record("an alignment of 2^62 was not refused")
            return
        }
    }

    // MARK: - JSON and text formats

    /// Brackets nested 100,000 deep, balanced or not, in each JSON format Lethe reads.
    @Test func deeplyNestedJSONIsReadOrRefusedWithoutRecursion() throws {
        let open = String(repeating: "[", count: 100_000), close = String(repeating: "]", count: 100_000)
        // A dataset line skips nested values of other fields without recursing.
        let balanced = #"{"id": "a", "text": "t", "label": "l", "extra": "# + open + close + "}\n"
        #expect(try Dataset.parse(Data(balanced.utf8), source: "d.jsonl").examples.map(\.id) == ["a"])
        let unbalanced = #"{"id": "a", "text": "t", "label": "l", "extra": "# + open + "}\n"
        #expect {
            try Dataset.parse(Data(unbalanced.utf8), source: "d.jsonl")
        } throws: { error in
            guard case PlanningError.malformedJSON(file: "d.jsonl", line: 1, _, _) = error else { return false }
            return true
        }
        #expect {
            try RequestLog.parse(Data((#"{"id": "a", "x": "# + open + close + "}\n").utf8), source: "log.jsonl")
        } throws: { error in
            guard case ForgettingError.malformedRequest(file: "log.jsonl", line: 1, _) = error else { return false }
            return true
        }
        #expect(throws: PlanningError.self) { try Prior.parse(Data((open + close).utf8), sliceCount: 2, source: "p") }

        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("nested.json")
        try Data((#"{"format": "# + open + close + "}").utf8).write(to: url)
        for load in [{ _ = try ServedComposition.load(from: url) }, { _ = try TrainingSettings.load(from: url) }] {
            #expect {
                try load()
            } throws: { error in
                guard case TrainingError.fileInvalid(let file, _) = error else { return false }
                return file == url.path
            }
        }
    }
}
