import CKernels
import Dispatch

/// A matrix B [k, n] converted to a precision and laid out once for products C = A·B.
/// Immutable after creation; any number of threads may multiply by it at once.
///
/// On CPUs with AVX-512 the products run through oneDNN: float32 on its gemm kernels, bf16 on its
/// brgemm kernels where the CPU has AVX512-BF16 (packed_matrix.c says why). On AVX2-only CPUs
/// they run through our own kernel on B laid out in 16-column panels (`lethe_panel_multiply`):
/// there oneDNN 2.6's float32 matmul, and OpenBLAS's sgemm as well, give a row different bits
/// depending on how many rows the call has and where the row sits (so a result would depend on
/// the thread count and the batch), and oneDNN has no bfloat16 kernel at all. bfloat16 on that path rounds B once and A at each product to bfloat16
/// and multiplies the rounded values in float32: products of two bf16 values are exact in
/// float32, so this is a bf16 product with float32 accumulation, at float32's speed.
public final class PackedMatrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let precision: Precision
    private let backend: Backend

    private enum Backend {
        case oneDNN(OpaquePointer)
        /// B (bf16-rounded for bf16) in 16-column panels.
        case panels(Tensor)
    }

    /// Whether products run through oneDNN on this CPU (else the panel kernel; see above).
    public static let usesOneDNN = lethe_cpu_has_avx512() != 0

    /// Packs B, given row-major [k, n] or, with `transposed`, [n, k] (a PyTorch weight
    /// W [out, in] packs as Wᵀ: k = in, n = out, transposed).
    public init(_ b: UnsafePointer<Float>, rows k: Int, columns n: Int, transposed: Bool,
                precision: Precision) throws(KernelError) {
        precondition(k > 0 && n > 0, "packing an empty matrix")
        rows = k; columns = n; self.precision = precision
        guard Self.usesOneDNN else {
            let panels = Tensor.scratch(shape: [lethe_panel_floats(k, n)])
            lethe_panel_pack(b, transposed ? k : n, k, n, transposed ? 1 : 0, 1, panels.data)
            if precision == .bf16 { lethe_round_to_bf16(panels.data, panels.data, panels.count) }
            backend = .panels(panels)
            return
        }
        var message = [CChar](repeating: 0, count: 256)
        guard let handle = lethe_packed_matrix_create(b, k, n, transposed ? 1 : 0, precision.cPrecision,
                                                      &message, message.count) else {
            throw KernelError.packing(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                             as: UTF8.self), precision: precision)
        }
        backend = .oneDNN(handle)
    }

    deinit { if case .oneDNN(let handle) = backend { lethe_packed_matrix_destroy(handle) } }

    /// Bytes of the packed copy.
    public var byteCount: Int {
        switch backend {
        case .oneDNN(let handle): lethe_packed_matrix_bytes(handle)
        case .panels(let panels): panels.count * MemoryLayout<Float>.stride
        }
    }

    /// C[m, n] = A[m, k]·B (or += with `accumulate`, or + `bias` [n] per row when given, which
    /// excludes `accumulate`); rows of A `lda` apart, of C `ldc` apart. The bits are those of the
    /// bias written into C and accumulated onto; bf16 on oneDNN's brgemm kernels adds it to each
    /// finished sum instead, which gives those bits without the pass over C.
    /// The work is split over BLASRuntime's current thread count (1 inside single-threaded
    /// regions, so thread groups share the cores as with OpenBLAS), each part one oneDNN or panel
    /// kernel call on its thread. oneDNN's parts are blocks of rows. The panel kernel's parts are
    /// blocks of B's panels when B has enough of them: every thread then reads all of A (small,
    /// from its own cache) and only its share of B (large, from L3 or memory), which is faster
    /// than splitting the rows (docs/BENCHMARKS.md). Every element of C depends only on its row
    /// of A and its column of B, so the bits are the same for any thread count (tested).
    public func multiply(_ a: UnsafePointer<Float>, rows m: Int, lda: Int? = nil,
                         into c: UnsafeMutablePointer<Float>, ldc: Int? = nil, accumulate: Bool,
                         bias: UnsafePointer<Float>? = nil) {
        guard m > 0 else { return }
        precondition(bias == nil || !accumulate, "a product adds C or a bias, not both")
        let (lda, ldc) = (lda ?? rows, ldc ?? columns)
        // A second part only for products of at least `Self.rowsPerPart` rows per part: smaller
        // ones cost more in call overhead than a second thread saves.
        let parts = max(1, min(BLASRuntime.activeThreadCount, m / Self.rowsPerPart))
        switch backend {
        case .oneDNN(let handle):
            let shared = UncheckedSendable((handle, a, c, bias))
            Self.inParallel(m, parts: parts) { first, count in
                let (handle, a, c, bias) = shared.value
                Self.multiplyOneDNN(handle, a + first * lda, rows: count, lda: lda, into: c + first * ldc, ldc: ldc,
                                    accumulate: accumulate, bias: bias)
            }
        case .panels(let panels):
            if let bias { for r in 0..<m { (c + r * ldc).update(from: bias, count: columns) } }
            multiplyPanels(panels.pointer, a, rows: m, lda: lda, into: c, ldc: ldc, accumulate: accumulate || bias != nil,
                           parts: parts)
        }
    }

    /// The fewest rows one thread's part of a product gets.
    static let rowsPerPart = 32
    /// The fewest 16-column panels of B a thread's part gets when the panel kernel splits B.
    static let panelsPerPart = 4
    /// Columns per panel of the panel kernel (PANEL in panel_product.c).
    static let panelWidth = 16

    /// Runs `body(first, count)` on `parts` consecutive blocks of `total` items, in parallel.
    private static func inParallel(_ total: Int, parts: Int, _ body: @Sendable (Int, Int) -> Void) {
        guard parts > 1 else { return body(0, total) }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let first = part * total / parts, last = (part + 1) * total / parts
            body(first, last - first)
        }
    }

    private static func multiplyOneDNN(_ handle: OpaquePointer, _ a: UnsafePointer<Float>, rows m: Int, lda: Int,
                                       into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
                                       bias: UnsafePointer<Float>?) {
        var message = [CChar](repeating: 0, count: 256)
        let status = lethe_packed_matrix_multiply(handle, a, m, lda, c, ldc, accumulate ? 1 : 0, bias, &message,
                                                  message.count)
        // Shapes and buffers were fixed at packing; a failure here is memory exhaustion.
        precondition(status == 0, String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                         as: UTF8.self))
    }

    private func multiplyPanels(_ panels: UnsafePointer<Float>, _ a: UnsafePointer<Float>, rows m: Int, lda: Int,
                                into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, parts: Int) {
        let (k, n) = (rows, columns)
        // bf16: A rounded once, before the parts share it.
        var input = a, inputStride = lda
        var rounded: UnsafeMutablePointer<Float>?
        if precision == .bf16 {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            for r in 0..<m { lethe_round_to_bf16(a + r * lda, buffer + r * k, k) }
            (input, inputStride, rounded) = (UnsafePointer(buffer), k, buffer)
        }
        defer { rounded?.deallocate() }
        let panelCount = (n + Self.panelWidth - 1) / Self.panelWidth, stride = inputStride
        let shared = UncheckedSendable((panels, input, c))
        if parts > 1 && panelCount >= parts * Self.panelsPerPart {
            // Blocks of whole panels: part p gets panels [p·count/parts, (p+1)·count/parts).
            Self.inParallel(panelCount, parts: parts) { first, count in
                let (panels, a, c) = shared.value
                let columns = min(n - first * Self.panelWidth, count * Self.panelWidth)
                lethe_panel_multiply(panels + first * Self.panelWidth * k, k, columns, a, m, stride, 1,
                                     c + first * Self.panelWidth, ldc, accumulate ? 1 : 0)
            }
        } else {
            Self.inParallel(m, parts: parts) { first, count in
                let (panels, a, c) = shared.value
                lethe_panel_multiply(panels, k, n, a + first * stride, count, stride, 1, c + first * ldc, ldc,
                                     accumulate ? 1 : 0)
            }
        }
    }

    /// Each value rounded to bfloat16 (nearest, ties to even) and widened back: what a bf16
    /// product sees of its float32 inputs.
    public static func roundedToBFloat16(_ values: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                if let xs = x.baseAddress, let ys = y.baseAddress { lethe_round_to_bf16(xs, ys, values.count) }
            }
        }
        return out
    }
}

/// Errors of the kernels that can fail at run time (everything else is a precondition).
public enum KernelError: Error, CustomStringConvertible, Equatable {
    case packing(String, precision: Precision)

    public var description: String {
        switch self {
        case .packing(let reason, let precision):
            "cannot prepare the frozen weights in \(precision): \(reason)"
                + (precision == .bf16 ? "; this CPU may lack bfloat16 support, use --precision fp32" : "")
        }
    }
}

extension Precision {
    var cPrecision: lethe_precision { self == .bf16 ? LETHE_PRECISION_BF16 : LETHE_PRECISION_FP32 }
}
