/// Bias add over rows: y[n, c] = x[n, c] + b[c], forward and backward.
///
/// Shape glossary: N rows, C columns; x, y [N, C], b [C]. In place when x == y.
/// Backward: dX += dY (callers usually alias it away), db += Σ_n dY[n, :], summed in fixed
/// row blocks in order, so the bits never depend on threads.
public enum BiasAdd {
    /// y = x + b broadcast over rows (x may equal y).
    public static func forward(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, rows n: Int, columns c: Int) {
        for r in 0..<n {
            let xr = x + r * c, yr = y + r * c
            for j in 0..<c { yr[j] = xr[j] + bias[j] }
        }
    }

    /// db += Σ_rows dY.
    public static func backward(dY: UnsafePointer<Float>, dBias: UnsafeMutablePointer<Float>,
                                rows n: Int, columns c: Int) {
        ColumnSum.accumulate(dY, rows: n, columns: c, into: dBias)
    }
}

/// Column sums of a row-major [N, C] matrix, added into `out` [C], in a fixed order:
/// rows are summed in blocks of 64 (each block sequentially), then the blocks in order.
enum ColumnSum {
    static func accumulate(_ m: UnsafePointer<Float>, rows n: Int, columns c: Int,
                           into out: UnsafeMutablePointer<Float>) {
        let block = 64
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: c)
        defer { partial.deallocate() }
        var r0 = 0
        while r0 < n {
            let r1 = min(n, r0 + block)
            partial.update(from: m + r0 * c, count: c)
            for r in (r0 + 1)..<max(r0 + 1, r1) {
                let row = m + r * c
                for j in 0..<c { partial[j] += row[j] }
            }
            for j in 0..<c { out[j] += partial[j] }
            r0 = r1
        }
    }
}
