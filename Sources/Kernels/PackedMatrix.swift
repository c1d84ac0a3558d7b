import CKernels
import Dispatch

/// A matrix B [k, n] converted to a precision and laid out once for products C = A·B.
/// Immutable after creation; any number of threads may multiply by it at once.
///
/// On CPUs with AVX-512 the products run through oneDNN (its brgemm kernels, bf16 ones where the
/// CPU has AVX512-BF16). On AVX2-only CPUs they run through our own kernel on B laid out in
/// 16-column panels (`lethe_panel_multiply`): there oneDNN 2.6's float32 matmul, and OpenBLAS's
/// sgemm as well, give a row different bits depending on how many rows the call has and where
/// the row sits (so a result would depend on the thread count and the batch), and oneDNN has no
/// bfloat16 kernel at all. bfloat16 on that path rounds B once and A at each product to bfloat16
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

    /// C[m, n] = A[m, k]·B (or += with `accumulate`); rows of A `lda` apart, of C `ldc` apart.
    /// The rows are split over BLASRuntime's current thread count (1 inside single-threaded
    /// regions, so thread groups share the cores as with OpenBLAS), each part one oneDNN
    /// (or panel kernel) call on its thread. Output rows depend only on their input rows, so the bits are
    /// the same for any thread count (tested).
    public func multiply(_ a: UnsafePointer<Float>, rows m: Int, lda: Int? = nil,
                         into c: UnsafeMutablePointer<Float>, ldc: Int? = nil, accumulate: Bool) {
        guard m > 0 else { return }
        let (lda, ldc) = (lda ?? rows, ldc ?? columns)
        // Parts of at least `Self.rowsPerPart` rows: smaller ones cost more in call overhead
        // than a second thread saves.
        let parts = max(1, min(BLASRuntime.activeThreadCount, m / Self.rowsPerPart))
        if parts == 1 {
            multiplyOnThisThread(a, rows: m, lda: lda, into: c, ldc: ldc, accumulate: accumulate)
            return
        }
        let shared = UncheckedSendable((a, c))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let (a, c) = shared.value
            let first = part * m / parts, last = (part + 1) * m / parts
            multiplyOnThisThread(a + first * lda, rows: last - first, lda: lda, into: c + first * ldc, ldc: ldc,
                                 accumulate: accumulate)
        }
    }

    /// The fewest rows one thread's part of a product gets.
    static let rowsPerPart = 32

    private func multiplyOnThisThread(_ a: UnsafePointer<Float>, rows m: Int, lda: Int,
                                      into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        switch backend {
        case .oneDNN(let handle):
            var message = [CChar](repeating: 0, count: 256)
            let status = lethe_packed_matrix_multiply(handle, a, m, lda, c, ldc, accumulate ? 1 : 0,
                                                      &message, message.count)
            // Shapes and buffers were fixed at packing; a failure here is memory exhaustion.
            precondition(status == 0, String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                             as: UTF8.self))
        case .panels(let panels):
            let (k, n) = (rows, columns)
            guard precision == .bf16 else {
                return lethe_panel_multiply(panels.pointer, k, n, a, m, lda, 1, c, ldc, accumulate ? 1 : 0)
            }
            let rounded = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            defer { rounded.deallocate() }
            for r in 0..<m { lethe_round_to_bf16(a + r * lda, rounded + r * k, k) }
            lethe_panel_multiply(panels.pointer, k, n, rounded, m, k, 1, c, ldc, accumulate ? 1 : 0)
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
