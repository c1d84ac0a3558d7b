import CKernels
import Dispatch

/// A matrix B [k, n] converted to a precision and laid out once for products C = A·B through
/// oneDNN. Immutable after creation; any number of threads may multiply by it at once.
public final class PackedMatrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let precision: Precision
    private let handle: OpaquePointer

    /// Packs B, given row-major [k, n] or, with `transposed`, [n, k] (a PyTorch weight
    /// W [out, in] packs as Wᵀ: k = in, n = out, transposed).
    public init(_ b: UnsafePointer<Float>, rows k: Int, columns n: Int, transposed: Bool,
                precision: Precision) throws(KernelError) {
        precondition(k > 0 && n > 0, "packing an empty matrix")
        var message = [CChar](repeating: 0, count: 256)
        guard let handle = lethe_packed_matrix_create(b, k, n, transposed ? 1 : 0, precision.cPrecision,
                                                      &message, message.count) else {
            throw KernelError.packing(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                             as: UTF8.self), precision: precision)
        }
        self.handle = handle; rows = k; columns = n; self.precision = precision
    }

    deinit { lethe_packed_matrix_destroy(handle) }

    /// Bytes of the packed copy.
    public var byteCount: Int { lethe_packed_matrix_bytes(handle) }

    /// C[m, n] = A[m, k]·B (or += with `accumulate`); rows of A `lda` apart, of C `ldc` apart.
    /// The rows are split over BLASRuntime's current thread count (1 inside single-threaded
    /// regions, so thread groups share the cores as with OpenBLAS), each part one oneDNN call
    /// on its thread. Output rows depend only on their input rows, so the bits are the same
    /// for any thread count (tested).
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
        var message = [CChar](repeating: 0, count: 256)
        let status = lethe_packed_matrix_multiply(handle, a, m, lda, c, ldc, accumulate ? 1 : 0, &message, message.count)
        // Shapes and buffers were fixed at packing; a failure here is memory exhaustion.
        precondition(status == 0, String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                         as: UTF8.self))
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
