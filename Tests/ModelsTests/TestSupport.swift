import Foundation
@testable import Models

/// Paths and shared loads for the model tests.
enum TestSupport {
    /// The repository root, found from this file's location (Tests/ModelsTests/…).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// The real SmolLM2 model (fetched by `make setup`).
    static let smolLMPath = root.appendingPathComponent("Checkpoints/base/SmolLM2-135M-Instruct/model.gguf").path

    /// The parsed reference fixture written by Tools/make_gguf_fixtures.py.
    static func reference() throws -> [String: Any] {
        let url = try #require(Bundle.module.url(forResource: "smollm2_reference", withExtension: "json",
                                                 subdirectory: "Fixtures/gguf"))
        let data = try Data(contentsOf: url)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The real GGUF file, parsed once per process.
    static let smolLM: Result<GGUFFile, Error> = Result { try GGUFFile(contentsOf: smolLMPath) }
}

import Testing

/// A minimal GGUF v3 writer for tests: metadata, tensor infos, aligned data.
struct GGUFBuilder {
    var metadata: [(String, UInt32, [UInt8])] = []
    var tensors: [(name: String, dims: [Int], type: UInt32, bytes: [UInt8])] = []
    var alignment = 32
    /// Added to every recorded tensor offset (not to where the data is written): a misplaced file.
    var offsetShift = 0

    static func string(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }
    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    mutating func add(_ key: String, type: UInt32, _ payload: [UInt8]) { metadata.append((key, type, payload)) }

    func build() -> [UInt8] {
        var out = Array("GGUF".utf8) + Self.le(UInt32(3)) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(metadata.count))
        for (k, t, p) in metadata { out += Self.string(k) + Self.le(t) + p }
        var offsets: [Int] = []
        var dataSize = 0
        for t in tensors {
            offsets.append(dataSize)
            dataSize = (dataSize + t.bytes.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            out += Self.string(t.name) + Self.le(UInt32(t.dims.count))
            for d in t.dims { out += Self.le(UInt64(d)) }
            out += Self.le(t.type) + Self.le(UInt64(off + offsetShift))
        }
        while out.count % alignment != 0 { out.append(0) }
        let base = out.count
        for (t, off) in zip(tensors, offsets) {
            while out.count < base + off { out.append(0) }
            out += t.bytes
        }
        return out
    }
}
