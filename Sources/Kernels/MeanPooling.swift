/// Mean over the real (unmasked) tokens of each sequence, forward and backward.
///
///     y[b, :] = Σ_t m[b,t]·x[b,t,:] / max(1, Σ_t m[b,t])
///     dx[b,t,:] += m[b,t]·dy[b,:] / max(1, Σ_t m[b,t])
///
/// Shape glossary: B sequences, T tokens, C channels; x [B·T, C], mask m [B·T] (Int32, 1 real
/// 0 padding; nil = all real), y [B, C]. A sequence with no real token pools to zero.
/// Packed sequences (`lengths`, rows back to back, no padding) sum the same rows in the same
/// order as the padded layout, so they pool to the same bits.
public enum MeanPooling {
    /// y = mean of x over each packed sequence's rows.
    public static func forward(_ x: UnsafePointer<Float>, lengths: [Int], into y: UnsafeMutablePointer<Float>,
                               columns c: Int) {
        var first = 0
        for (s, length) in lengths.enumerated() {
            let yr = y + s * c
            yr.update(repeating: 0, count: c)
            for i in first..<first + length {
                let xr = x + i * c
                for j in 0..<c { yr[j] += xr[j] }
            }
            let inv = 1 / Float(max(1, length))
            for j in 0..<c { yr[j] *= inv }
            first += length
        }
    }

    /// dX += spread of dY over each packed sequence's rows.
    public static func backward(dY: UnsafePointer<Float>, lengths: [Int], dX: UnsafeMutablePointer<Float>,
                                columns c: Int) {
        var first = 0
        for (s, length) in lengths.enumerated() {
            let inv = 1 / Float(max(1, length)), dyr = dY + s * c
            for i in first..<first + length {
                let dxr = dX + i * c
                for j in 0..<c { dxr[j] += dyr[j] * inv }
            }
            first += length
        }
    }

    /// y = masked mean of x over tokens.
    public static func forward(_ x: UnsafePointer<Float>, mask: UnsafePointer<Int32>?,
                               into y: UnsafeMutablePointer<Float>,
                               batch b: Int, tokens t: Int, columns c: Int) {
        for s in 0..<b {
            let yr = y + s * c
            yr.update(repeating: 0, count: c)
            var count = 0
            for i in 0..<t where mask.map({ $0[s * t + i] != 0 }) ?? true {
                count += 1
                let xr = x + (s * t + i) * c
                for j in 0..<c { yr[j] += xr[j] }
            }
            let inv = 1 / Float(max(1, count))
            for j in 0..<c { yr[j] *= inv }
        }
    }

    /// dX += spread of dY over the real tokens.
    public static func backward(dY: UnsafePointer<Float>, mask: UnsafePointer<Int32>?,
                                dX: UnsafeMutablePointer<Float>,
                                batch b: Int, tokens t: Int, columns c: Int) {
        for s in 0..<b {
            var count = 0
            for i in 0..<t where mask.map({ $0[s * t + i] != 0 }) ?? true { count += 1 }
            let inv = 1 / Float(max(1, count))
            let dyr = dY + s * c
            for i in 0..<t where mask.map({ $0[s * t + i] != 0 }) ?? true {
                let dxr = dX + (s * t + i) * c
                for j in 0..<c { dxr[j] += dyr[j] * inv }
            }
        }
    }
}
