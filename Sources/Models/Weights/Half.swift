/// IEEE 754 binary16 → binary32 conversion, done on bits so it works on every platform.
enum Half {
    /// The float32 value of the half-precision bit pattern `h` (exact: every half is a float).
    static func float(fromBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x03FF)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 0x1F:
            // Infinity or NaN keep their mantissa bits.
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            // Rebias the exponent from 15 to 127.
            return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}
