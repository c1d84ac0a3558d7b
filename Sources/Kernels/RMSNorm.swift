/// Root-mean-square normalisation (Llama), forward and backward.
///
///     σ⁻¹ = 1/√(mean(x²) + ε),  y = x·σ⁻¹·γ
///
/// Shape glossary: N rows, C channels; x, y [N, C], γ [C]; saved rstd [N].
/// Backward (accumulates):
///     dx += σ⁻¹·(g − x·σ⁻²·mean(g·x)),  g = dy·γ
///     dγ += Σ_n dy·x·σ⁻¹   (fixed 64-row blocks summed in order)
public enum RMSNorm {
    static let rowChunk = 64

    /// y = RMSNorm(x); writes the saved rstd [N].
    public static func forward(_ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, epsilon: Float,
                               into y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               rows n: Int, columns c: Int, threads: Int) {
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { _, rows in
            for r in rows {
                let xr = x + r * c, yr = y + r * c
                let s = 1 / (vdot(xr, xr, c) / Float(c) + epsilon).squareRoot()
                rstd[r] = s
                forEach8(c) { j, w in
                    storePartial(loadPartial(xr + j, w) * s * loadPartial(gamma + j, w), yr + j, w)
                }
            }
        }
    }

    /// Accumulates dX (optional) and dGamma (optional).
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                gamma: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                rows n: Int, columns c: Int, threads: Int) {
        let chunks = Parallel.chunkCount(n, chunkSize: rowChunk)
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: dGamma != nil ? chunks * c : 1)
        defer { partial.deallocate() }
        if dGamma != nil { partial.initialize(repeating: 0, count: chunks * c) }
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { chunk, rows in
            let pg = partial + chunk * c
            for r in rows {
                let xr = x + r * c, dyr = dY + r * c, s = rstd[r]
                if let dX {
                    var a = Float8()
                    forEach8(c) { j, w in
                        a += loadPartial(dyr + j, w) * loadPartial(gamma + j, w) * loadPartial(xr + j, w)
                    }
                    let k = a.sum() / Float(c) * s * s
                    let dxr = dX + r * c
                    forEach8(c) { j, w in
                        let g = loadPartial(dyr + j, w) * loadPartial(gamma + j, w)
                        let v = loadPartial(dxr + j, w) + s * (g - loadPartial(xr + j, w) * k)
                        storePartial(v, dxr + j, w)
                    }
                }
                if dGamma != nil {
                    forEach8(c) { j, w in
                        let v = loadPartial(pg + j, w) + loadPartial(dyr + j, w) * loadPartial(xr + j, w) * s
                        storePartial(v, pg + j, w)
                    }
                }
            }
        }
        guard let dGamma else { return }
        for chunk in 0..<chunks {
            let pg = partial + chunk * c
            for j in 0..<c { dGamma[j] += pg[j] }
        }
    }
}
