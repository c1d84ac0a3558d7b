/// Layer normalisation over the last dimension, forward and backward.
///
///     μ = mean(x),  σ⁻¹ = 1/√(var(x) + ε),  x̂ = (x − μ)·σ⁻¹,  y = x̂·γ + β
///
/// Shape glossary: N rows, C channels; x, y [N, C], γ, β [C]; saved mean, rstd [N].
/// Backward (accumulates):
///     dx += σ⁻¹·(g − mean(g) − x̂·mean(g·x̂)),  g = dy·γ
///     dγ += Σ_n dy·x̂,  dβ += Σ_n dy
/// Rows are independent; the dγ/dβ reductions use fixed 64-row blocks summed in order, so the
/// bits are the same for every thread count.
public enum LayerNorm {
    static let rowChunk = 64

    /// y = LayerNorm(x); writes the saved mean and rstd [N].
    public static func forward(_ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                               beta: UnsafePointer<Float>, epsilon: Float,
                               into y: UnsafeMutablePointer<Float>,
                               mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               rows n: Int, columns c: Int, threads: Int) {
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { _, rows in
            for r in rows {
                let xr = x + r * c, yr = y + r * c
                let mu = vsum(xr, c) / Float(c)
                var acc = Float8()
                forEach8(c) { j, w in
                    let d = loadPartial(xr + j, w, pad: mu) - mu
                    acc += d * d
                }
                let s = 1 / (acc.sum() / Float(c) + epsilon).squareRoot()
                mean[r] = mu; rstd[r] = s
                forEach8(c) { j, w in
                    let v = (loadPartial(xr + j, w) - mu) * s * loadPartial(gamma + j, w)
                        + loadPartial(beta + j, w)
                    storePartial(v, yr + j, w)
                }
            }
        }
    }

    /// Accumulates dX (optional) and dGamma/dBeta (optional, for trainable norms).
    /// `accumulateDX: false` overwrites dX instead (no zero fill needed by the caller).
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                gamma: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?,
                                dGamma: UnsafeMutablePointer<Float>?, dBeta: UnsafeMutablePointer<Float>?,
                                rows n: Int, columns c: Int, accumulateDX: Bool = true, threads: Int) {
        let chunks = Parallel.chunkCount(n, chunkSize: rowChunk)
        let wantParams = dGamma != nil || dBeta != nil
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: wantParams ? chunks * 2 * c : 1)
        defer { partial.deallocate() }
        if wantParams { partial.initialize(repeating: 0, count: chunks * 2 * c) }
        Parallel.forEachChunk(count: n, chunkSize: rowChunk, threads: threads) { chunk, rows in
            let pg = partial + chunk * 2 * c, pb = pg + c
            for r in rows {
                let xr = x + r * c, dyr = dY + r * c
                let mu = mean[r], s = rstd[r]
                if let dX {
                    // mean(g) and mean(g·x̂) in one pass.
                    var a1 = Float8(), a2 = Float8()
                    forEach8(c) { j, w in
                        let g = loadPartial(dyr + j, w) * loadPartial(gamma + j, w)
                        a1 += g
                        a2 += g * (loadPartial(xr + j, w) - mu) * s
                    }
                    let mg = a1.sum() / Float(c), mgx = a2.sum() / Float(c)
                    let dxr = dX + r * c
                    forEach8(c) { j, w in
                        let xh = (loadPartial(xr + j, w) - mu) * s
                        let g = loadPartial(dyr + j, w) * loadPartial(gamma + j, w)
                        let before = accumulateDX ? loadPartial(dxr + j, w) : Float8()
                        let v = vfma(Float8(repeating: s), g - mg - xh * mgx, before)
                        storePartial(v, dxr + j, w)
                    }
                }
                if wantParams {
                    forEach8(c) { j, w in
                        let dy = loadPartial(dyr + j, w)
                        let xh = (loadPartial(xr + j, w) - mu) * s
                        storePartial(loadPartial(pg + j, w) + dy * xh, pg + j, w)
                        storePartial(loadPartial(pb + j, w) + dy, pb + j, w)
                    }
                }
            }
        }
        guard wantParams else { return }
        for chunk in 0..<chunks {
            let pg = partial + chunk * 2 * c, pb = pg + c
            if let dGamma { for j in 0..<c { dGamma[j] += pg[j] } }
            if let dBeta { for j in 0..<c { dBeta[j] += pb[j] } }
        }
    }
}
