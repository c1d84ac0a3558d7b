import Foundation

/// Mean cross-entropy of logits against integer targets, with an ignore index, forward and
/// backward.
///
///     ℓ_n = logsumexp(z_n) − z_n[y_n],   L = (1/M)·Σ_{n: y_n ≠ ignore} ℓ_n,  M = #counted rows
///     dz_n += (dL/M)·(softmax(z_n) − onehot(y_n))   for counted rows, nothing for ignored ones
///
/// Shape glossary: N rows, V classes; logits z [N, V], targets y [N] (Int32), saved
/// logsumexp [N]. The row losses are summed in Double in row order: deterministic.
public enum CrossEntropy {
    static let rowChunk = 8

    /// Returns the mean loss over counted rows and their count M (loss 0 when M = 0);
    /// writes the saved logsumexp [N].
    @discardableResult
    public static func forward(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                               ignoreIndex: Int32 = -100, logSumExp: UnsafeMutablePointer<Float>,
                               rows n: Int, classes v: Int, threads: Int) -> (loss: Float, count: Int) {
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { _, rows in
            for r in rows { logSumExp[r] = rowLogSumExp(logits + r * v, v) }
        }
        var total = 0.0, counted = 0
        for r in 0..<n where targets[r] != ignoreIndex {
            let y = Int(targets[r])
            precondition(y >= 0 && y < v, "target \(y) of row \(r) outside 0..<\(v)")
            total += Double(logSumExp[r]) - Double(logits[r * v + y])
            counted += 1
        }
        return (counted == 0 ? 0 : Float(total / Double(counted)), counted)
    }

    /// dLogits += (dLoss/M)·(softmax − onehot) on counted rows.
    public static func backward(dLoss: Float, logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                                ignoreIndex: Int32 = -100, logSumExp: UnsafePointer<Float>,
                                dLogits: UnsafeMutablePointer<Float>,
                                rows n: Int, classes v: Int, threads: Int) {
        var counted = 0
        for r in 0..<n where targets[r] != ignoreIndex { counted += 1 }
        guard counted > 0 else { return }
        let k = dLoss / Float(counted)
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { _, rows in
            for r in rows where targets[r] != ignoreIndex {
                let z = logits + r * v, dz = dLogits + r * v
                let lse = logSumExp[r]
                forEach8(v) { j, w in
                    let p = vexp(loadPartial(z + j, w) - lse)
                    storePartial(loadPartial(dz + j, w) + k * p, dz + j, w)
                }
                dz[Int(targets[r])] -= k
            }
        }
    }

    @inline(__always)
    static func rowLogSumExp(_ z: UnsafePointer<Float>, _ v: Int) -> Float {
        var mx = Float8(repeating: -.greatestFiniteMagnitude)
        forEach8(v) { j, w in mx = vmax(mx, loadPartial(z + j, w, pad: -.greatestFiniteMagnitude)) }
        let m = vhmax(mx)
        var acc = Float8()
        forEach8(v) { j, w in
            let e = vfirst(vexp(loadPartial(z + j, w) - m), w)
            acc += e
        }
        return m + Float(log(Double(acc.sum())))
    }
}
