/// Converts GGUF tensor storage (F32, F16, Q8_0, Q4_1) to float32.
///
/// Block layouts (32 weights each; ASSETS.md):
/// - Q8_0, 34 bytes: f16 scale d, 32 × int8 q; w_j = d·q_j.
/// - Q4_1, 20 bytes: f16 scale d, f16 minimum m, 16 bytes of nibbles;
///   w_j = d·(q_j & 15) + m and w_{j+16} = d·(q_j >> 4) + m for j < 16.
enum GGUFDequantizer {
    /// Writes `count` floats decoded from `source` into `out`; `source` holds at least the
    /// tensor's bytes (the caller has checked the bounds).
    static func dequantize(type: GGUFTensorType, source: UnsafeRawBufferPointer, count: Int,
                           into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            for i in 0 ..< count {
                out[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0 ..< count {
                out[i] = half(source, 2 * i)
            }
        case .q8_0:
            for b in 0 ..< count / 32 {
                let base = 34 * b
                let d = half(source, base)
                let o = out + 32 * b
                for j in 0 ..< 32 {
                    o[j] = d * Float(Int8(bitPattern: source[base + 2 + j]))
                }
            }
        case .q4_1:
            for b in 0 ..< count / 32 {
                let base = 20 * b
                let d = half(source, base)
                let m = half(source, base + 2)
                let o = out + 32 * b
                for j in 0 ..< 16 {
                    let q = source[base + 4 + j]
                    o[j] = d * Float(q & 15) + m
                    o[j + 16] = d * Float(q >> 4) + m
                }
            }
        }
    }

    /// The IEEE half-precision value at `offset`, widened exactly to float32.
    @inline(__always)
    static func half(_ source: UnsafeRawBufferPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }
}
