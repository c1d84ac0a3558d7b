/// Dense layer y = x·Wᵀ + b (PyTorch orientation, W is [out, in]), forward and backward.
///
/// Shape glossary: N rows (N = B·T), I input features, O output features;
/// x [N, I], W [O, I], b [O], y [N, O].
/// Backward accumulates: dX += dY·W, dW += dYᵀ·x, db += Σ_rows dY. Frozen weights pass nil
/// for dW/db; a first layer passes nil for dX.
public enum Linear {
    /// y = x·Wᵀ + b (+ residual), b and the residual [N, O] optional; overwrites y (the
    /// residual may be y itself). The bias and residual are written first and the product
    /// added by sgemm's β = 1: a residual connection costs no separate pass over y.
    public static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>? = nil,
                               into y: UnsafeMutablePointer<Float>,
                               rows n: Int, inFeatures i: Int, outFeatures o: Int) {
        if let residual {
            if let bias {
                BiasAdd.forward(residual, bias: bias, into: y, rows: n, columns: o)
            } else if residual != UnsafePointer(y) {
                y.update(from: residual, count: n * o)
            }
        } else if let bias {
            for r in 0..<n { (y + r * o).update(from: bias, count: o) }
        }
        MatMul.gemm(false, true, n, o, i, 1, x, i, weight, i, bias == nil && residual == nil ? 0 : 1, y, o)
    }

    /// Accumulates dX, dW, db (each optional) from dY.
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?,
                                dWeight: UnsafeMutablePointer<Float>?,
                                dBias: UnsafeMutablePointer<Float>?,
                                rows n: Int, inFeatures i: Int, outFeatures o: Int) {
        if let dX { MatMul.gemm(false, false, n, i, o, 1, dY, o, weight, i, 1, dX, i) }
        if let dWeight { MatMul.gemm(true, false, o, i, n, 1, dY, o, x, i, 1, dWeight, i) }
        if let dBias { BiasAdd.backward(dY: dY, dBias: dBias, rows: n, columns: o) }
    }
}
