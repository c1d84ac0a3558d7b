import Foundation
import Testing
@testable import Models

/// Builds safetensors bytes from a raw header string and data, so tests can craft broken files.
private func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let json = Array(header.utf8)
    var bytes: [UInt8] = []
    var length = UInt64(json.count)
    for _ in 0..<8 { bytes.append(UInt8(length & 0xFF)); length >>= 8 }
    return bytes + json + data
}

/// A test's directory of crafted files, each written under a fresh number, removed by `remove()`.
private final class CraftedFiles {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-st-\(UUID().uuidString)")
    private var count = 0

    init() throws { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }

    func write(_ bytes: [UInt8], name: String = "t.safetensors") throws -> String {
        count += 1
        let folder = directory.appendingPathComponent("\(count)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

private func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v -> [UInt8] in let b = v.bitPattern; return (0..<4).map { UInt8((b >> (8 * $0)) & 0xFF) } }
}

@Suite struct SafeTensorsTests {
    @Test func readsAllDTypes() throws {
        // F32 [2,2] = 1,-2,3.5,0.25; F16 [3] = 1, -2, 65504; BF16 [2] = 1.5, -0.0078125; I64 [2] = 7, -3.
        var data = littleEndianBytes([1, -2, 3.5, 0.25])                    // 0..<16
        data += [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B]                         // 16..<22
        data += [0xC0, 0x3F, 0x00, 0xBC]                                     // 22..<26
        data += [7, 0, 0, 0, 0, 0, 0, 0] + [0xFD] + [UInt8](repeating: 0xFF, count: 7) // 26..<42
        let header = """
            {"__metadata__":{"format":"pt"},
             "a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
             "h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},
             "b":{"dtype":"BF16","shape":[2],"data_offsets":[22,26]},
             "i":{"dtype":"I64","shape":[2],"data_offsets":[26,42]}}
            """
        let files = try CraftedFiles()
        defer { files.remove() }
        let file = try SafeTensors(contentsOf: try files.write(safetensorsBytes(header: header, data: data)))
        #expect(file.metadata == ["format": "pt"])
        #expect(try file.floats("a", shape: [2, 2]) == [1, -2, 3.5, 0.25])
        #expect(try file.floats("h") == [1, -2, 65504])
        #expect(try file.floats("b") == [1.5, -0.0078125])
        #expect(try file.int64s("i") == [7, -3])
        #expect(throws: ModelsError.self) { try file.floats("i") }
        #expect(throws: ModelsError.self) { try file.int64s("a") }
        #expect(throws: ModelsError.self) { try file.floats("a", shape: [4]) }
        #expect(throws: ModelsError.self) { try file.floats("missing") }
    }

    @Test func halfConversionCoversSpecialValues() {
        #expect(Half.float(fromBits: 0x0001) == 0x1p-24)            // smallest subnormal
        #expect(Half.float(fromBits: 0x8000).sign == .minus)        // −0
        #expect(Half.float(fromBits: 0x7C00) == .infinity)
        #expect(Half.float(fromBits: 0x7E00).isNaN)
        #expect(Half.float(fromBits: 0x3555) == 0.333251953125)
    }

    @Test func rejectsTruncatedAndCorruptFiles() throws {
        let good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        let data = littleEndianBytes([1, 2])
        let files = try CraftedFiles()
        defer { files.remove() }
        func error(_ bytes: [UInt8]) throws -> ModelsError? {
            let path = try files.write(bytes)
            do { _ = try SafeTensors(contentsOf: path); return nil } catch let e as ModelsError { return e }
        }
        // Shorter than the length prefix.
        guard case .truncated = try error([1, 2, 3]) else { Issue.record("3-byte file accepted"); return }
        // Header length beyond the end.
        let full = safetensorsBytes(header: good, data: data)
        guard case .truncated = try error(Array(full.prefix(20))) else { Issue.record("cut header accepted"); return }
        // Data cut short: the tensor's end offset lies beyond the file.
        guard case let .tensorInvalid(_, tensor, reason)? = try error(Array(full.dropLast(2))) else {
            Issue.record("cut data accepted"); return
        }
        #expect(tensor == "w")
        #expect(reason.contains("beyond the data section"))
        // Byte count does not match shape × dtype.
        let wrongShape = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}"
        guard case .tensorInvalid(_, "w", _)? = try error(safetensorsBytes(header: wrongShape, data: data)) else {
            Issue.record("shape/size mismatch accepted"); return
        }
        // Overlapping tensors.
        let overlap = """
            {"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}
            """
        guard case let .tensorsOverlap(_, first, second)? = try error(safetensorsBytes(header: overlap, data: data)) else {
            Issue.record("overlap accepted"); return
        }
        #expect(Set([first, second]) == ["x", "y"])
        // Not JSON, unknown dtype, reversed offsets.
        guard case .headerInvalid? = try error(safetensorsBytes(header: "{nope", data: data)) else {
            Issue.record("bad JSON accepted"); return
        }
        let badType = "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        guard case .tensorInvalid(_, "w", _)? = try error(safetensorsBytes(header: badType, data: data)) else {
            Issue.record("unknown dtype accepted"); return
        }
        let reversed = "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}"
        guard case .tensorInvalid(_, "w", _)? = try error(safetensorsBytes(header: reversed, data: data)) else {
            Issue.record("reversed offsets accepted"); return
        }
        // The message names the file and the tensor and says what to do.
        let path = try files.write(safetensorsBytes(header: wrongShape, data: data), name: "broken.safetensors")
        do { _ = try SafeTensors(contentsOf: path); Issue.record("accepted") } catch {
            let text = "\(error)"
            #expect(text.contains("broken.safetensors") && text.contains("'w'") && text.contains("fetch it again"))
        }
        #expect(throws: ModelsError.self) { try SafeTensors(contentsOf: "/nonexistent/x.safetensors") }
    }

    @Test func readsTheRealMiniLMFile() throws {
        let file = try SafeTensors(contentsOf: TestAssets.miniLMDirectory + "/model.safetensors")
        let words = try file.info("embeddings.word_embeddings.weight")
        #expect(words.shape == [30522, 384] && words.dtype == .f32)
        #expect(try file.int64s("embeddings.position_ids") == (0..<512).map(Int64.init))
        let gamma = try file.floats("encoder.layer.5.output.LayerNorm.weight", shape: [384])
        #expect(gamma.allSatisfy { $0.isFinite } && gamma.contains { $0 != 0 })
    }
}
