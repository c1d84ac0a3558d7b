/// Embedding lookup, forward (gather) and backward (scatter-add).
///
///     y[n, :] = E[id_n, :],   dE[id_n, :] += dy[n, :]
///
/// Shape glossary: N rows, V vocabulary, C channels; ids [N] (Int32), E [V, C], y [N, C].
/// Backward adds rows in row order on one thread: deterministic (repeated ids collide).
public enum Embedding {
    /// y = E[ids].
    public static func forward(ids: UnsafePointer<Int32>, table: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, rows n: Int, vocabulary v: Int,
                               columns c: Int) {
        for r in 0..<n {
            let id = Int(ids[r])
            precondition(id >= 0 && id < v, "token id \(id) of row \(r) outside 0..<\(v)")
            (y + r * c).update(from: table + id * c, count: c)
        }
    }

    /// dE[ids] += dY.
    public static func backward(dY: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
                                dTable: UnsafeMutablePointer<Float>, rows n: Int, vocabulary v: Int,
                                columns c: Int) {
        for r in 0..<n {
            let id = Int(ids[r])
            precondition(id >= 0 && id < v, "token id \(id) of row \(r) outside 0..<\(v)")
            let dst = dTable + id * c, src = dY + r * c
            forEach8(c) { j, w in storePartial(loadPartial(dst + j, w) + loadPartial(src + j, w), dst + j, w) }
        }
    }
}
