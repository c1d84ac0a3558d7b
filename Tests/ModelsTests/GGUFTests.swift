import Foundation
import Testing
@testable import Models

@Suite struct GGUFTests {
    /// A hand-built file with every metadata type, a nested array, a custom alignment and one
    /// tensor of each supported storage type; every value is checked after parsing.
    func smallFile(alignment: Int = 64, offsetShift: Int = 0) -> [UInt8] {
        typealias B = GGUFBuilder
        var b = GGUFBuilder()
        b.alignment = alignment
        b.offsetShift = offsetShift
        b.add("general.alignment", type: 4, B.le(UInt32(alignment)))
        b.add("u8", type: 0, [200]); b.add("i8", type: 1, B.le(Int8(-5)))
        b.add("u16", type: 2, B.le(UInt16(60000))); b.add("i16", type: 3, B.le(Int16(-300)))
        b.add("i32", type: 5, B.le(Int32(-70000))); b.add("f32", type: 6, B.le(Float(1.5).bitPattern))
        b.add("bool", type: 7, [1]); b.add("str", type: 8, B.string("héllo"))
        b.add("u64", type: 10, B.le(UInt64(1) << 40)); b.add("i64", type: 11, B.le(Int64(-1) << 40))
        b.add("f64", type: 12, B.le(Double(-2.25).bitPattern))
        b.add("strs", type: 9, B.le(UInt32(8)) + B.le(UInt64(2)) + B.string("a b") + B.string(""))
        b.add("nested", type: 9, B.le(UInt32(9)) + B.le(UInt64(1)) + B.le(UInt32(5)) + B.le(UInt64(2))
              + B.le(Int32(7)) + B.le(Int32(-7)))
        // F32 [2, 3] (3 rows of 2).
        let f32: [Float] = [0, 1, -2, 3.5, 1e-3, -7]
        b.tensors.append(("w.f32", [2, 3], 0, f32.flatMap { B.le($0.bitPattern) }))
        // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff.
        b.tensors.append(("w.f16", [4], 1, [0x3c00, 0xc000, 0x3800, 0x7bff].flatMap { B.le(UInt16($0)) }))
        // Q8_0: d = 0.5 (0x3800), q = -16 … 15.
        b.tensors.append(("w.q8", [32], 8, B.le(UInt16(0x3800)) + (0 ..< 32).map { UInt8(bitPattern: Int8($0 - 16)) }))
        // Q4_1: d = 2 (0x4000), m = -1 (0xbc00), byte j = (15 - j % 16) << 4 | j % 16.
        b.tensors.append(("w.q4", [32], 3, B.le(UInt16(0x4000)) + B.le(UInt16(0xbc00))
                          + (0 ..< 16).map { UInt8(((15 - $0) << 4) | $0) }))
        return b.build()
    }

    @Test func parsesEveryMetadataTypeAndTensorType() throws {
        let file = try GGUFFile(data: Data(smallFile()), path: "small.gguf")
        #expect(file.version == 3 && file.alignment == 64 && file.dataOffset % 64 == 0)
        #expect(file.metadata["u8"] == .uint8(200) && file.metadata["i8"] == .int8(-5))
        #expect(file.metadata["u16"] == .uint16(60000) && file.metadata["i16"] == .int16(-300))
        #expect(file.metadata["i32"] == .int32(-70000) && file.metadata["f32"] == .float32(1.5))
        #expect(file.metadata["bool"] == .bool(true) && file.metadata["str"] == .string("héllo"))
        #expect(file.metadata["u64"]?.integer == 1 << 40 && file.metadata["i64"]?.integer == -(1 << 40))
        #expect(file.metadata["f64"] == .float64(-2.25))
        #expect(try file.strings("strs") == ["a b", ""])
        #expect(file.metadata["nested"] == .array(elementType: 9, [.array(elementType: 5, [.int32(7), .int32(-7)])]))
        #expect(file.tensors.map(\.name) == ["w.f32", "w.f16", "w.q8", "w.q4"])
        #expect(file.info(named: "w.f32")?.rowMajorShape == [3, 2])
        #expect(try file.floats(named: "w.f32") == [0, 1, -2, 3.5, 1e-3, -7])
        #expect(try file.floats(named: "w.f16") == [1, -2, 0.5, 65504])
        #expect(try file.floats(named: "w.q8") == (0 ..< 32).map { 0.5 * Float($0 - 16) })
        let low: [Float] = (0 ..< 16).map { (j: Int) -> Float in 2 * Float(j) - 1 }
        let high: [Float] = (0 ..< 16).map { (j: Int) -> Float in 2 * Float(15 - j) - 1 }
        let q4 = low + high
        #expect(try file.floats(named: "w.q4") == q4)
    }

    @Test func rejectsBadFilesWithClearErrors() throws {
        var bytes = smallFile()
        bytes[0] = UInt8(ascii: "X")
        #expect(throws: ModelsError.badMagic(path: "bad.gguf", found: "58475546")) {
            try GGUFFile(data: Data(bytes), path: "bad.gguf")
        }
        var v2 = smallFile()
        v2[4] = 2
        #expect(throws: ModelsError.unsupportedVersion(path: "v2.gguf", found: 2)) { try GGUFFile(data: Data(v2), path: "v2.gguf") }
        // Cut inside the metadata: the error names the entry being read.
        do {
            _ = try GGUFFile(data: Data(smallFile().prefix(60)), path: "cut.gguf")
            Issue.record("truncated header accepted")
        } catch let error as ModelsError {
            guard case let .ggufTruncated(path, what, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(path == "cut.gguf" && what.contains("metadata"))
            #expect(error.description.hasSuffix("Re-fetch the file (it is truncated or corrupt)."))
        }
        // Cut inside the last tensor's data: the error names the tensor.
        let full = smallFile()
        do {
            _ = try GGUFFile(data: Data(full.prefix(full.count - 3)), path: "cut.gguf")
            Issue.record("truncated data accepted")
        } catch let error as ModelsError {
            #expect(error.description.contains("w.q4"))
        }
        // A tensor placed off the alignment would be read from the wrong bytes.
        #expect(throws: ModelsError.ggufInvalid(path: "shifted.gguf", what: "tensor 'w.f32'",
                                                reason: "its offset 8 is not a multiple of the alignment 64")) {
            try GGUFFile(data: Data(smallFile(offsetShift: 8)), path: "shifted.gguf")
        }
        let file = try GGUFFile(data: Data(full), path: "small.gguf")
        #expect(throws: ModelsError.tensorMissing(path: "small.gguf", tensor: "nope")) { try file.floats(named: "nope") }
    }

    @Test func realModelMetadataAndTensorTable() throws {
        let file = try TestSupport.smolLM.get()
        let ref = try TestSupport.reference()
        #expect(file.tensors.count == ref["tensor_count"] as? Int)
        #expect(file.metadata.count == ref["metadata_count"] as? Int)
        #expect(file.metadata["general.architecture"]?.string == "llama")
        #expect(try file.integer("llama.block_count") == 30)
        #expect(try file.integer("llama.attention.head_count_kv") == 3)
        #expect(try file.double("llama.rope.freq_base") == 100000)
        #expect(try file.strings("tokenizer.ggml.tokens").count == 49152)
        #expect(try file.strings("tokenizer.ggml.merges").count == 48900)
        #expect(try file.strings("general.languages") == ["en"])
        let counts = Dictionary(grouping: file.tensors, by: \.typeCode).mapValues(\.count)
        #expect(counts == [0: 61, 3: 210, 8: 1])
        #expect(file.info(named: "blk.0.ffn_down.weight")?.dimensions == [1536, 576])
    }

    @Test func realModelDequantisedSlicesMatchReference() throws {
        let file = try TestSupport.smolLM.get()
        let slices = try #require(try TestSupport.reference()["slices"] as? [[String: Any]])
        #expect(slices.count == 6)
        for s in slices {
            let name = try #require(s["tensor"] as? String)
            let start = try #require(s["start"] as? Int)
            let expected = try #require(s["values"] as? [Double]).map(Float.init)
            let values = try file.floats(named: name)
            #expect(Array(values[start ..< start + expected.count]) == expected, "\(name)")
        }
    }
}
