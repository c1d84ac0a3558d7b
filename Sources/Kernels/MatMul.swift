import CBLAS

/// General matrix product through `cblas_sgemm`, forward and backward.
///
///     C = α·op(A)·op(B) + β·C,   op(X) = X or Xᵀ
///
/// Shape glossary: op(A) is [M, K], op(B) is [K, N], C is [M, N]; all row-major and dense
/// (A stored [M, K], or [K, M] when transposed; likewise B). Backward:
///     dA += α·dC·op(B)ᵀ   (stored orientation of A)
///     dB += α·op(A)ᵀ·dC   (stored orientation of B)
/// Large products run on the process-wide thread count (`BLASRuntime.setThreadCount`).
public enum MatMul {
    /// C = α·op(A)·op(B) + β·C.
    public static func forward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                               into c: UnsafeMutablePointer<Float>,
                               m: Int, n: Int, k: Int,
                               transposeA: Bool = false, transposeB: Bool = false,
                               alpha: Float = 1, beta: Float = 0) {
        gemm(transposeA, transposeB, m, n, k, alpha,
             a, transposeA ? m : k, b, transposeB ? k : n, beta, c, n)
    }

    /// Accumulates dA and/or dB (either may be nil) from dC for `forward` with the same shapes.
    public static func backward(dC: UnsafePointer<Float>,
                                _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                                m: Int, n: Int, k: Int,
                                transposeA: Bool = false, transposeB: Bool = false,
                                alpha: Float = 1) {
        if let dA {
            if !transposeA {
                // dA[M,K] += dC[M,N]·op(B)ᵀ; op(B)ᵀ is B [N,K] when B was transposed.
                gemm(false, !transposeB, m, k, n, alpha, dC, n, b, transposeB ? k : n, 1, dA, k)
            } else {
                // dA[K,M] += op(B)[K,N]·dCᵀ.
                gemm(transposeB, true, k, m, n, alpha, b, transposeB ? k : n, dC, n, 1, dA, m)
            }
        }
        if let dB {
            if !transposeB {
                // dB[K,N] += op(A)ᵀ[K,M]·dC.
                gemm(!transposeA, false, k, n, m, alpha, a, transposeA ? m : k, dC, n, 1, dB, n)
            } else {
                // dB[N,K] += dCᵀ[N,M]·op(A)[M,K].
                gemm(true, transposeA, n, k, m, alpha, dC, n, a, transposeA ? m : k, 1, dB, k)
            }
        }
    }

    /// Raw strided sgemm: C[m,n] = α·op(A)·op(B) + β·C with leading dimensions (row-major).
    /// OpenBLAS runs on the calling thread; a large product is cut into parts by rows of C (or
    /// by columns when C has few rows), never along k, and the parts run on BLASRuntime's
    /// current thread count. The cut depends on (m, n, k) alone, so the bits do not depend on
    /// the thread count.
    public static func gemm(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int,
                            _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                            _ b: UnsafePointer<Float>, _ ldb: Int,
                            _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
            return
        }
        BLASRuntime.keepOpenBLASOnCallingThread()
        let cut = Cut(m: m, n: n, k: k)
        guard cut.parts > 1 else {
            sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        let shared = UncheckedSendable((a, b, c))
        Parallel.forEachChunk(count: cut.parts, chunkSize: 1, threads: BLASRuntime.activeThreadCount) { part, _ in
            let (a, b, c) = shared.value
            let first = part * cut.size, count = min(cut.size, (cut.byRows ? m : n) - first)
            if cut.byRows {
                sgemm(transposeA, transposeB, count, n, k, alpha, transposeA ? a + first : a + first * lda, lda,
                      b, ldb, beta, c + first * ldc, ldc)
            } else {
                sgemm(transposeA, transposeB, m, count, k, alpha, a, lda,
                      transposeB ? b + first * ldb : b + first, ldb, beta, c + first, ldc)
            }
        }
    }

    /// How a product is cut: `parts` pieces of `size` rows (or columns) of C, the last one
    /// shorter. Products under 4 MFLOP stay whole (a part must outweigh handing it to a thread);
    /// larger ones get up to 16 parts of at least 32 rows or columns.
    struct Cut: Equatable {
        let byRows: Bool
        let size: Int
        let parts: Int

        init(m: Int, n: Int, k: Int) {
            let whole = 2 * m * n * k < 1 << 22
            let byRows = m >= 64 || n < 64
            let length = byRows ? m : n
            // A sixteenth of the length, rounded up to a multiple of 8.
            let sixteenth = ((length + 15) / 16 + 7) / 8 * 8
            let size = whole ? length : max(32, sixteenth)
            self.byRows = byRows
            self.size = size
            parts = (length + size - 1) / size
        }
    }

    @inline(__always)
    private static func sgemm(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int,
                              _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                              _ b: UnsafePointer<Float>, _ ldb: Int,
                              _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }
}
