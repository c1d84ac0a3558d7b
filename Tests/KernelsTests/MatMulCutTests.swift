import Foundation
@testable import Kernels
import Testing

/// `MatMul.gemm` cuts large products into parts by rows (or columns) of C and runs them on the
/// products' thread count: every transpose combination must give the same bits on 1, 2 and 3
/// threads and follow a float64 product, and the cut must cover C exactly.
@Suite(.serialized) struct MatMulCutTests {
    @Test func cutsCoverTheOutputAndDependOnShapeAlone() {
        for (m, n, k) in [(1, 1, 1), (16, 384, 4096), (384, 16, 4096), (2048, 384, 384), (1, 1536, 4096),
                          (64, 64, 64), (63, 4096, 512), (5000, 16, 384)] {
            let cut = MatMul.Cut(m: m, n: n, k: k)
            let length = cut.byRows ? m : n
            #expect(cut.parts >= 1 && cut.parts <= 16, "\(m)×\(n)×\(k): \(cut.parts) parts")
            #expect((cut.parts - 1) * cut.size < length && cut.parts * cut.size >= length)
            if 2 * m * n * k < 1 << 22 { #expect(cut.parts == 1, "a small product is cut") }
            if cut.parts > 1 { #expect(cut.size >= 32 && cut.size % 8 == 0) }
        }
        #expect(MatMul.Cut(m: 2048, n: 384, k: 384).parts > 1)
        #expect(!MatMul.Cut(m: 16, n: 384, k: 4096).byRows, "a short C is cut by columns")
    }

    @Test(arguments: [false, true], [false, true])
    func bitsDoNotDependOnThreads(transposeA: Bool, transposeB: Bool) {
        // Rows cut (m = 300) and columns cut (m = 20), both above the 4 MFLOP floor.
        for (m, n, k) in [(300, 96, 160), (20, 700, 400)] {
            var random = TestRandom(seed: UInt64(m + n))
            let a = random.tensor([m * k]), b = random.tensor([k * n]), c0 = random.tensor([m * n])
            let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
            let previous = BLASRuntime.threadCount
            defer { BLASRuntime.setThreadCount(previous) }
            var results: [[UInt32]] = []
            for threads in [1, 2, 3] {
                BLASRuntime.setThreadCount(threads)
                let c = Tensor(shape: [m * n], values: c0.values)
                MatMul.gemm(transposeA, transposeB, m, n, k, 0.5, a.pointer, lda, b.pointer, ldb, 1, c.data, n)
                results.append(c.values.map(\.bitPattern))
            }
            #expect(results[1] == results[0] && results[2] == results[0], "\(m)×\(n)×\(k)")
            // C = 0.5·op(A)·op(B) + C₀ against float64, within float32 accumulation error.
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0, size = 0.0
                    for l in 0..<k {
                        let x = Double(transposeA ? a[l * lda + i] : a[i * lda + l])
                        let y = Double(transposeB ? b[j * ldb + l] : b[l * ldb + j])
                        s += x * y; size += abs(x * y)
                    }
                    let want = 0.5 * s + Double(c0[i * n + j])
                    let got = Double(Float(bitPattern: results[0][i * n + j]))
                    worst = max(worst, abs(got - want) / (0.5 * size + abs(Double(c0[i * n + j]))))
                }
            }
            #expect(worst < 1e-5, "relative error \(worst)")
        }
    }
}
