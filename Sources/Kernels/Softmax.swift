/// Row-wise softmax, forward and backward.
///
///     y = e^(x − max x) / Σ e^(x − max x)
///     dx += y·(dy − Σ_j dy_j·y_j)
///
/// Shape glossary: N rows, C columns; x, y [N, C]. Forward saves y (the output).
/// exp is the vectorised approximation of `VectorMath`. Rows are independent: same bits for
/// every thread count.
public enum Softmax {
    static let rowChunk = 16

    /// y = softmax(x) per row (x may equal y).
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               rows n: Int, columns c: Int, threads: Int) {
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { _, rows in
            for r in rows { row(x + r * c, into: y + r * c, count: c) }
        }
    }

    /// dX += y·(dY − ⟨dY, y⟩) per row.
    public static func backward(dY: UnsafePointer<Float>, y: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>,
                                rows n: Int, columns c: Int, threads: Int) {
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { _, rows in
            for r in rows {
                let yr = y + r * c, dyr = dY + r * c, dxr = dX + r * c
                let k = vdot(dyr, yr, c)
                forEach8(c) { j, w in
                    let v = loadPartial(dxr + j, w) + loadPartial(yr + j, w) * (loadPartial(dyr + j, w) - k)
                    storePartial(v, dxr + j, w)
                }
            }
        }
    }

    /// Softmax of one row of `count` values.
    @inline(__always)
    static func row(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count c: Int) {
        var mx = Float8(repeating: -.greatestFiniteMagnitude)
        forEach8(c) { j, w in mx = vmax(mx, loadPartial(x + j, w, pad: -.greatestFiniteMagnitude)) }
        let m = vhmax(mx)
        var acc = Float8()
        forEach8(c) { j, w in
            let e = vfirst(vexp(loadPartial(x + j, w) - m), w)
            acc += e
            storePartial(e, y + j, w)
        }
        let inv = 1 / acc.sum()
        forEach8(c) { j, w in storePartial(loadPartial(y + j, w) * inv, y + j, w) }
    }
}
