import CKernels

/// A frozen linear layer plus a low-rank adapter (LoRA, PEFT orientation), forward and backward.
///
///     y = x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ
///
/// Shape glossary: N rows, I input features, O output features, R rank;
/// x [N, I], W [O, I] (frozen), b [O] (frozen, optional), A = `lora_A` [R, I],
/// B = `lora_B` [O, R], s = scale (α/R, or α/√R for rsLoRA), y [N, O].
/// Saved by forward: xa = drop(x)·Aᵀ [N, R], and drop(x) [N, I] when dropout is on.
/// Backward (accumulates):
///     dB += s·dYᵀ·xa            dA += (s·dY·B)ᵀ·drop(x)
///     dX += dY·W + drop'(s·dY·B·A)
/// The frozen W and b get no gradient. Five BLAS products, no transposes copied.
public enum LoRALinear {
    /// The sizes of one LoRA linear layer.
    public struct Shape: Sendable, Equatable {
        public var inFeatures: Int
        public var outFeatures: Int
        public var rank: Int
        public init(inFeatures: Int, outFeatures: Int, rank: Int) {
            self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.rank = rank
        }
    }

    /// Writes y and the saved `xa` (and `xDropped` when `dropout` is given; it must then be a
    /// buffer of N·I floats). An optional `residual` [N, O] is added to y (see `Linear`).
    public static func forward(_ x: UnsafePointer<Float>, rows n: Int, shape: Shape,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>, scale: Float,
                               dropout: Dropout? = nil, xDropped: UnsafeMutablePointer<Float>? = nil,
                               xa: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                               into y: UnsafeMutablePointer<Float>) {
        Linear.forward(x, weight: weight, bias: bias, residual: residual, into: y, rows: n,
                       inFeatures: shape.inFeatures, outFeatures: shape.outFeatures)
        addAdapter(x, rows: n, shape: shape, loraA: loraA, loraB: loraB, scale: scale, dropout: dropout,
                   xDropped: xDropped, xa: xa, into: y)
    }

    /// The adapter term alone: y += s·(drop(x)·Aᵀ)·Bᵀ, with y rows `outputRowStride` apart
    /// (default O), so adapters can add into column blocks of a fused output such as [N, 3C].
    public static func addAdapter(_ x: UnsafePointer<Float>, rows n: Int, shape: Shape,
                                  loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>, scale: Float,
                                  dropout: Dropout? = nil, xDropped: UnsafeMutablePointer<Float>? = nil,
                                  xa: UnsafeMutablePointer<Float>,
                                  into y: UnsafeMutablePointer<Float>, outputRowStride: Int? = nil) {
        let (i, o, r) = (shape.inFeatures, shape.outFeatures, shape.rank)
        var loraInput = x
        if let dropout {
            guard let xDropped else { preconditionFailure("dropout needs an xDropped buffer") }
            dropout.forward(x, into: xDropped, count: n * i)
            loraInput = UnsafePointer(xDropped)
        }
        MatMul.gemm(false, true, n, r, i, 1, loraInput, i, loraA, i, 0, xa, r)
        MatMul.gemm(false, true, n, o, r, scale, xa, r, loraB, r, 1, y, outputRowStride ?? o)
    }

    /// An adapter's A and s·B laid out once for `addAdapterForInference`: Aᵀ [I, R] and (s·B)ᵀ
    /// [R, O] in the panel kernel's 16-column panels, R·(I + O) floats. A copy of the weights
    /// as they are when it is made: it does not follow later changes to them.
    public final class InferencePanels: @unchecked Sendable {
        public let shape: Shape
        let panels: UnsafeMutablePointer<Float>
        let aFloats: Int

        public init(shape: Shape, loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>, scale: Float) {
            let (i, o, r) = (shape.inFeatures, shape.outFeatures, shape.rank)
            self.shape = shape
            aFloats = lethe_panel_floats(i, r)
            panels = .allocate(capacity: aFloats + lethe_panel_floats(r, o))
            // Aᵀ from A [R, I]; (s·B)ᵀ from B [O, R].
            lethe_panel_pack(loraA, i, i, r, 1, 1, panels)
            lethe_panel_pack(loraB, r, r, o, 1, scale, panels + aFloats)
        }

        deinit { panels.deallocate() }
    }

    /// The adapter term for inference (no dropout, nothing kept for backward): y += xa·(s·B)ᵀ
    /// with xa = x·Aᵀ, both products on the panel kernel. OpenBLAS's sgemm on these skinny
    /// shapes (R = 16 columns, or a 16-term inner product) spends a fifth of its time copying
    /// operands, and on AVX2 CPUs a row's bits depend on the rows around it; here each element
    /// is one multiply-add chain, whatever the batch. Served answers take these bits; training keeps
    /// `addAdapter` (its stage files and their replays stay as they were). `xa` holds N·R floats.
    public static func addAdapterForInference(_ x: UnsafePointer<Float>, rows n: Int, panels: InferencePanels,
                                              xa: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>,
                                              outputRowStride: Int? = nil) {
        let (i, o, r) = (panels.shape.inFeatures, panels.shape.outFeatures, panels.shape.rank)
        lethe_panel_multiply(panels.panels, i, r, x, n, i, 1, xa, r, 0)
        lethe_panel_multiply(panels.panels + panels.aFloats, r, o, xa, n, r, 1, y, outputRowStride ?? o, 1)
    }

    /// The same, laying out A and s·B for this call (R·(I + O) floats: a quarter of the products'
    /// time at a few dozen rows, so a model that infers repeatedly keeps `InferencePanels`).
    public static func addAdapterForInference(_ x: UnsafePointer<Float>, rows n: Int, shape: Shape,
                                              loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>,
                                              scale: Float, xa: UnsafeMutablePointer<Float>,
                                              into y: UnsafeMutablePointer<Float>, outputRowStride: Int? = nil) {
        addAdapterForInference(x, rows: n, panels: InferencePanels(shape: shape, loraA: loraA, loraB: loraB, scale: scale),
                               xa: xa, into: y, outputRowStride: outputRowStride)
    }

    /// Accumulates dA, dB and (when non-nil) dX. `scratch` holds N·R floats (s·dY·B).
    /// `xDropped` must be the buffer forward filled when dropout was on (else nil).
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, rows n: Int,
                                shape: Shape, weight: UnsafePointer<Float>,
                                loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>, scale: Float,
                                dropout: Dropout? = nil, xDropped: UnsafePointer<Float>? = nil,
                                xa: UnsafePointer<Float>,
                                dLoraA: UnsafeMutablePointer<Float>, dLoraB: UnsafeMutablePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?,
                                scratch: UnsafeMutablePointer<Float>) {
        adapterBackward(dY: dY, x: x, rows: n, shape: shape, loraA: loraA, loraB: loraB, scale: scale,
                        dropout: dropout, xDropped: xDropped, xa: xa, dLoraA: dLoraA, dLoraB: dLoraB,
                        dX: dX, scratch: scratch)
        if let dX {
            MatMul.gemm(false, false, n, shape.inFeatures, shape.outFeatures, 1, dY, shape.outFeatures,
                        weight, shape.inFeatures, 1, dX, shape.inFeatures)
        }
    }

    /// The adapter term's backward alone: dB += s·dYᵀ·xa, dA += (s·dY·B)ᵀ·drop(x), and
    /// dX += drop′(s·dY·B·A) when dX is given (the frozen W's dY·W is the caller's). dY rows
    /// are `dYRowStride` apart (default O). With `dLoraA` and `dLoraB` nil (an adapter that is
    /// active but not trained) only the input gradient is computed: two products, not four.
    public static func adapterBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, rows n: Int,
                                       shape: Shape, loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>,
                                       scale: Float, dropout: Dropout? = nil, xDropped: UnsafePointer<Float>? = nil,
                                       xa: UnsafePointer<Float>,
                                       dLoraA: UnsafeMutablePointer<Float>?, dLoraB: UnsafeMutablePointer<Float>?,
                                       dX: UnsafeMutablePointer<Float>?,
                                       scratch: UnsafeMutablePointer<Float>, dYRowStride: Int? = nil) {
        let (i, o, r) = (shape.inFeatures, shape.outFeatures, shape.rank)
        let ldy = dYRowStride ?? o
        precondition(dropout == nil || xDropped != nil, "dropout needs the saved xDropped")
        precondition((dLoraA == nil) == (dLoraB == nil), "give both adapter gradients or neither")
        guard dLoraA != nil || dX != nil else { return }
        let loraInput = dropout == nil ? x : (xDropped ?? x)
        // dB[O,R] += s·dYᵀ·xa
        if let dLoraB { MatMul.gemm(true, false, o, r, n, scale, dY, ldy, xa, r, 1, dLoraB, r) }
        // g = s·dY·B [N,R]
        MatMul.gemm(false, false, n, r, o, scale, dY, ldy, loraB, r, 0, scratch, r)
        // dA[R,I] += gᵀ·drop(x)
        if let dLoraA { MatMul.gemm(true, false, r, i, n, 1, scratch, r, loraInput, i, 1, dLoraA, i) }
        guard let dX else { return }
        if let dropout {
            // The adapter path's input gradient goes through the dropout mask.
            let t = UnsafeMutablePointer<Float>.allocate(capacity: n * i)
            defer { t.deallocate() }
            MatMul.gemm(false, false, n, i, r, 1, scratch, r, loraA, i, 0, t, i)
            dropout.backward(dY: t, dX: dX, count: n * i)
        } else {
            MatMul.gemm(false, false, n, i, r, 1, scratch, r, loraA, i, 1, dX, i)
        }
    }
}
