/// Little-endian GGUF fields as bytes, for building fixtures by hand: strings are a u64 length
/// and their UTF-8 bytes; a metadata entry is its key, a u32 type code and the value.
enum GGUFBytes {
    static func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func text(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

    /// The file header: magic, version 3, tensor count, metadata count.
    static func header(tensors: UInt64, metadata: UInt64) -> [UInt8] {
        Array("GGUF".utf8) + u32(3) + u64(tensors) + u64(metadata)
    }

    /// A tensor info: name, dimensions (innermost first), ggml type code, data offset.
    static func tensor(_ name: String, dimensions: [UInt64], type: UInt32, offset: UInt64) -> [UInt8] {
        text(name) + u32(UInt32(dimensions.count)) + dimensions.flatMap(u64) + u32(type) + u64(offset)
    }

    /// A GGUF v3 file: a few metadata values (a string array among them) and an F32 and a Q8_0
    /// tensor, laid out as the format specifies (little-endian, 32-byte aligned data).
    static func small() -> [UInt8] {
        var out = header(tensors: 2, metadata: 3)
        out += text("general.name") + u32(8) + text("fuzz")
        out += text("tokens") + u32(9) + u32(8) + u64(2) + text("a") + text("bc")
        out += text("general.alignment") + u32(4) + u32(32)
        out += tensor("w.f32", dimensions: [2, 2], type: 0, offset: 0)
        out += tensor("w.q8", dimensions: [32], type: 8, offset: 32)
        while out.count % 32 != 0 { out.append(0) }
        out += [0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64]   // 1, 2, 3, 4 as f32
        out += [UInt8](repeating: 0, count: 16)
        out += [0x00, 0x38] + (0..<32).map { UInt8($0) }                  // d = 0.5, q = 0…31
        return out
    }
}
