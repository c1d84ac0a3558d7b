import Synchronization

/// A frozen dense layer y = x·Wᵀ + b (W [out, in], PyTorch orientation) whose products run
/// through oneDNN on weights prepared once (Wᵀ for forward; W itself, made on first use, for
/// the input gradient) in a chosen precision: `fp32` as they are, `bf16` rounded. Each product
/// is split over our threads (blocks of rows, or on AVX2 blocks of the weights' panels; see
/// PackedMatrix.multiply), one kernel call per thread. On the encoder's and
/// the decoder's shapes oneDNN's kernels beat OpenBLAS's sgemm by 10–15% on one thread, and
/// the row split spares the many small products of a training stage or a served batch
/// OpenBLAS's threads waiting and yielding between calls (docs/BENCHMARKS.md).
///
/// Shape glossary: N rows, I input features, O output features; x [N, I], y [N, O].
public final class FrozenLinear: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    public let precision: Precision
    private let packedTransposed: PackedMatrix
    private let packedForGradient = Mutex<PackedMatrix?>(nil)

    public init(weight: Tensor, bias: Tensor?, precision: Precision) throws(KernelError) {
        precondition(weight.shape.count == 2, "a linear weight is [out, in]")
        self.weight = weight; self.bias = bias; self.precision = precision
        packedTransposed = try PackedMatrix(weight.pointer, rows: weight.shape[1], columns: weight.shape[0],
                                            transposed: true, precision: precision)
    }

    public var outFeatures: Int { weight.shape[0] }
    public var inFeatures: Int { weight.shape[1] }

    /// y = x·Wᵀ + b (+ residual [N, O], which may be y itself); overwrites y.
    public func forward(_ x: UnsafePointer<Float>, residual: UnsafePointer<Float>? = nil,
                        into y: UnsafeMutablePointer<Float>, rows n: Int) {
        let o = outFeatures
        guard let residual else {
            packedTransposed.multiply(x, rows: n, into: y, accumulate: false, bias: bias?.pointer)
            return
        }
        if let bias {
            BiasAdd.forward(residual, bias: bias.pointer, into: y, rows: n, columns: o)
        } else if residual != UnsafePointer(y) {
            y.update(from: residual, count: n * o)
        }
        packedTransposed.multiply(x, rows: n, into: y, accumulate: true)
    }

    /// dX = dY·W (or dX += dY·W with `accumulate`); dY [N, O], dX [N, I], dY rows `dYRowStride`
    /// apart (default O).
    public func backwardInput(dY: UnsafePointer<Float>, into dX: UnsafeMutablePointer<Float>, rows n: Int,
                              accumulate: Bool, dYRowStride: Int? = nil) {
        gradientMatrix().multiply(dY, rows: n, lda: dYRowStride ?? outFeatures, into: dX, accumulate: accumulate)
    }

    /// W packed as the B of dY·W, made on the first backward (inference never needs it).
    private func gradientMatrix() -> PackedMatrix {
        packedForGradient.withLock { packed in
            if let packed { return packed }
            do {
                let made = try PackedMatrix(weight.pointer, rows: outFeatures, columns: inFeatures, transposed: false,
                                            precision: precision)
                packed = made
                return made
            } catch {
                // The forward packing of the same weights in the same precision succeeded.
                preconditionFailure("\(error)")
            }
        }
    }
}
