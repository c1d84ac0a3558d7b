import Foundation
@testable import Kernels
import Testing

/// Products on pre-packed frozen weights (oneDNN): bfloat16 products equal a float64 product of
/// the bf16-rounded inputs up to float32 accumulation error, float32 ones equal a float64
/// product up to float32 error, and the bits never depend on how the rows are split over threads.
/// `FrozenLinear` (bias, residual, input gradient) follows the same references in both precisions.
@Suite(.serialized) struct PackedProductTests {
    /// Float64 reference of y = x·Wᵀ (+ c0) with x [m, k], W [n, k].
    static func reference(_ x: [Float], _ w: [Float], m: Int, k: Int, n: Int, initial: [Float]? = nil) -> [Double] {
        var y = [Double](repeating: 0, count: m * n)
        for r in 0..<m {
            for c in 0..<n {
                var s = initial.map { Double($0[r * n + c]) } ?? 0
                for j in 0..<k { s += Double(x[r * k + j]) * Double(w[c * k + j]) }
                y[r * n + c] = s
            }
        }
        return y
    }

    /// Largest |a − b| relative to the largest |b|, and relative to Σ|x||w| per entry.
    static func worstError(_ got: Tensor, _ want: [Double], scale: [Double]) -> Double {
        zip(zip(got.values, want), scale).map { abs(Double($0.0) - $0.1) / max($1, 1e-30) }.max() ?? 0
    }

    /// Σ_j |x_rj|·|w_cj|: the size that bounds a float32 sum's rounding error.
    static func magnitude(_ x: [Float], _ w: [Float], m: Int, k: Int, n: Int) -> [Double] {
        reference(x.map(abs), w.map(abs), m: m, k: k, n: n)
    }

    /// Row counts that end in blocks of every height the kernel has (1…6 rows: 37, 8, 9, 130,
    /// 11, and 6 · 35 = 210, which also takes two chunks); B's last panel whole, or 8, 1 or 13
    /// columns wide (13: one 8 × 8 tile group and five columns laid out one by one, and k = 37
    /// leaves five rows past the tiles).
    @Test(arguments: [Precision.fp32, .bf16],
          [(37, 96, 80), (130, 384, 200), (1, 64, 48), (8, 40, 33), (9, 32, 16), (11, 96, 80), (210, 64, 48),
           (9, 37, 29)])
    func productMatchesFloat64Reference(precision: Precision, shape: (Int, Int, Int)) throws {
        let (m, k, n) = shape
        var random = TestRandom(seed: UInt64(m * 1000 + k + n))
        let x = random.tensor([m, k]), w = random.tensor([n, k]), initial = random.tensor([m, n])
        let packed = try PackedMatrix(w.pointer, rows: k, columns: n, transposed: true, precision: precision)
        // What the product sees: inputs rounded to bf16 in the bf16 precision.
        let (xs, ws) = precision == .bf16 ? (PackedMatrix.roundedToBFloat16(x.values), PackedMatrix.roundedToBFloat16(w.values))
            : (x.values, w.values)
        let scale = Self.magnitude(xs, ws, m: m, k: k, n: n)
        let y = Tensor(shape: [m, n])
        packed.multiply(x.pointer, rows: m, into: y.data, accumulate: false)
        // float32 accumulation of k terms: error ≤ k·2⁻²⁴ of Σ|x||w| (far below in practice).
        let bound = Double(k) * 0x1p-24
        let plain = Self.worstError(y, Self.reference(xs, ws, m: m, k: k, n: n), scale: scale)
        #expect(plain <= bound, "\(precision) \(shape): error \(plain) of Σ|x||w|, bound \(bound)")
        y.copy(from: initial)
        packed.multiply(x.pointer, rows: m, into: y.data, accumulate: true)
        let summed = Self.worstError(y, Self.reference(xs, ws, m: m, k: k, n: n, initial: initial.values),
                                     scale: zip(scale, initial.values).map { $0 + Double(abs($1)) })
        #expect(summed <= bound, "\(precision) \(shape) accumulating: error \(summed), bound \(bound)")
        if precision == .bf16 {
            // And bf16 really rounds: against the unrounded inputs the error is of bf16's size.
            let unrounded = Self.worstError(y, Self.reference(x.values, w.values, m: m, k: k, n: n,
                                                              initial: initial.values), scale: scale)
            #expect(unrounded > 1e-5 && unrounded < 2e-2, "bf16 error vs float32 inputs \(unrounded)")
        }
    }

    @Test func roundingIsNearestEven() {
        let values: [Float] = [1, 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, 1 + 0x1p-9, -2.5, .infinity, 0x1p-130]
        let rounded = PackedMatrix.roundedToBFloat16(values)
        // 1 + 2⁻⁸ is a tie between 1 and 1 + 2⁻⁷: even is 1. 1 + 3·2⁻⁸ ties up to 1 + 2⁻⁶.
        #expect(Array(rounded.prefix(5)) == [1, 1, 1 + 0x1p-6, 1, -2.5])
        #expect(rounded[5] == .infinity && rounded[6] == 0x1p-130)
        #expect(PackedMatrix.roundedToBFloat16([.nan])[0].isNaN)
    }

    /// Long sums too (the decoder's FFN and its LM head's input gradient), where a kernel could
    /// block k differently for different row counts; B's panels split over the threads (200
    /// columns: 13 panels, the last one partial, split for 2 and 3 threads); and more rows than
    /// one oneDNN call takes (600: calls of 256, 256 and 88 rows).
    @Test(arguments: [Precision.fp32, .bf16],
          [(203, 384, 160), (150, 1536, 96), (70, 5003, 40), (150, 384, 200), (600, 1536, 48)])
    func bitsDoNotDependOnThreadsOrRowSplits(precision: Precision, shape: (Int, Int, Int)) throws {
        let (m, k, n) = shape
        var random = TestRandom(seed: 7)
        let x = random.tensor([m, k]), w = random.tensor([n, k])
        let packed = try PackedMatrix(w.pointer, rows: k, columns: n, transposed: true, precision: precision)
        let previous = BLASRuntime.threadCount
        defer { BLASRuntime.setThreadCount(previous) }
        var results: [[Float]] = []
        var sums: [[Float]] = []
        let initial = random.tensor([m, n])
        for threads in [1, 2, 3] {
            BLASRuntime.setThreadCount(threads)
            let y = Tensor(shape: [m, n])
            packed.multiply(x.pointer, rows: m, into: y.data, accumulate: false)
            results.append(y.values)
            let z = Tensor(shape: [m, n], values: initial.values)
            packed.multiply(x.pointer, rows: m, into: z.data, accumulate: true)
            sums.append(z.values)
        }
        #expect(results.allSatisfy { $0 == results[0] })
        #expect(sums.allSatisfy { $0 == sums[0] })
        #expect(sums[0] != initial.values)
        // Any row alone, or any block of rows, gives the rows' bits in the whole product.
        BLASRuntime.setThreadCount(1)
        for (first, count) in [(0, 1), (57, 1), (m - 1, 1), (10, 2), (m - 70, 70), (min(250, m - 70), 70)] {
            let y = Tensor(shape: [count, n])
            packed.multiply(x.pointer + first * k, rows: count, into: y.data, accumulate: false)
            #expect(y.values == Array(results[0][first * n..<(first + count) * n]), "rows \(first)..<\(first + count)")
        }
        // Rows of A and C further apart than k and n (a slice of wider matrices): the same bits.
        let (lda, ldc) = (k + 3, n + 5)
        let wideX = Tensor(shape: [m, lda]), wideY = Tensor(shape: [m, ldc])
        for r in 0..<m { (wideX.data + r * lda).update(from: x.pointer + r * k, count: k) }
        for r in 0..<m { (wideY.data + r * ldc).update(from: initial.pointer + r * n, count: n) }
        packed.multiply(wideX.pointer, rows: m, lda: lda, into: wideY.data, ldc: ldc, accumulate: true)
        let strided = (0..<m).flatMap { r in (0..<n).map { wideY.values[r * ldc + $0] } }
        #expect(strided == sums[0])
        #expect((0..<m).allSatisfy { r in (n..<ldc).allSatisfy { wideY.values[r * ldc + $0] == 0 } })
        // A bias added by the kernel gives the bits of the bias written into C and accumulated
        // onto, for any thread count, across calls, and for a row alone.
        let bias = random.tensor([n])
        let accumulated = Tensor(shape: [m, n])
        for r in 0..<m { (accumulated.data + r * n).update(from: bias.pointer, count: n) }
        packed.multiply(x.pointer, rows: m, into: accumulated.data, accumulate: true)
        for threads in [1, 2] {
            BLASRuntime.setThreadCount(threads)
            let withBias = Tensor(shape: [m, n])
            packed.multiply(x.pointer, rows: m, into: withBias.data, accumulate: false, bias: bias.pointer)
            #expect(withBias.values == accumulated.values, "\(threads) threads")
        }
        let row = Tensor(shape: [1, n])
        packed.multiply(x.pointer + 57 * k, rows: 1, into: row.data, accumulate: false, bias: bias.pointer)
        #expect(row.values == Array(accumulated.values[57 * n..<58 * n]))
    }

    @Test(arguments: [Precision.fp32, .bf16])
    func frozenLinearFollowsTheReference(precision: Precision) throws {
        let (rows, i, o) = (33, 64, 24)
        var random = TestRandom(seed: 4)
        let x = random.tensor([rows, i]), w = random.tensor([o, i]), b = random.tensor([o]), r = random.tensor([rows, o])
        let dY = random.tensor([rows, o])
        let frozen = try FrozenLinear(weight: w, bias: b, precision: precision)
        let y = Tensor(shape: [rows, o])
        frozen.forward(x.pointer, residual: r.pointer, into: y.data, rows: rows)
        let rounded = { (v: [Float]) in precision == .bf16 ? PackedMatrix.roundedToBFloat16(v) : v }
        let xs = rounded(x.values), ws = rounded(w.values)
        let initial = (0..<rows * o).map { r[$0] + b[$0 % o] }
        let want = Self.reference(xs, ws, m: rows, k: i, n: o, initial: initial)
        let scale = zip(Self.magnitude(xs, ws, m: rows, k: i, n: o), initial).map { $0 + Double(abs($1)) }
        #expect(Self.worstError(y, want, scale: scale) <= Double(i) * 0x1p-24)
        // dX = dY·W: W [o, i] is the [k, n] matrix here.
        let dX = Tensor(shape: [rows, i])
        frozen.backwardInput(dY: dY.pointer, into: dX.data, rows: rows, accumulate: false)
        let ys = rounded(dY.values)
        let wT = (0..<i * o).map { ws[($0 % o) * i + $0 / o] }  // Wᵀ [i, o] as the reference's [n, k]
        let wantDX = Self.reference(ys, wT, m: rows, k: o, n: i)
        #expect(Self.worstError(dX, wantDX, scale: Self.magnitude(ys, wT, m: rows, k: o, n: i)) <= Double(o) * 0x1p-24)
    }
}
