import CKernels
import Foundation
@testable import Kernels
import Testing

/// The panel kernel (`lethe_panel_multiply`) and the inference path of the LoRA adapter term
/// built on it. Every element of a panel product is one fused multiply-add chain over k in
/// increasing order, started from zero (then added to C when accumulating), on both of its
/// sweeps (B of a few panels swept row block by row block, a large B chunk by chunk): so its
/// bits equal a Swift chain of `addingProduct`, and a row's bits do not depend on the rows
/// around it.
@Suite struct PanelProductTests {
    /// C = A·B (+ C0) as the kernel defines it: one FMA chain per element, k in order.
    static func chain(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int, initial: [Float]? = nil) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for r in 0..<m {
            for col in 0..<n {
                var s: Float = 0
                for j in 0..<k { s = s.addingProduct(a[r * k + j], b[j * n + col]) }
                c[r * n + col] = initial.map { $0[r * n + col] + s } ?? s
            }
        }
        return c
    }

    /// The kernel's blocks: as dispatched (the widest this CPU has), then each alone.
    enum Path: CaseIterable { case dispatched, avx2, avx512 }

    /// C = A·B (+ C0) on `path`; nil for AVX-512 on a CPU without it. With `transposedA` the
    /// kernel reads A from its transpose (k_stride = m), as attention's Pᵀ·dO does.
    static func multiply(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int, initial: [Float]? = nil,
                         path: Path = .dispatched, transposedA: Bool = false) -> [Float]? {
        var panels = [Float](repeating: .nan, count: lethe_panel_floats(k, n))
        lethe_panel_pack(b, n, k, n, 0, 1, &panels)
        var c = initial ?? [Float](repeating: .nan, count: m * n)
        // Aᵀ [k, m] holds A's element (i, kk) at kk·m + i.
        let source = transposedA ? (0..<k * m).map { a[($0 % m) * k + $0 / m] } : a
        let (rowStride, kStride) = transposedA ? (1, m) : (k, 1)
        let accumulate: Int32 = initial == nil ? 0 : 1
        switch path {
        case .dispatched: lethe_panel_multiply(panels, k, n, source, m, rowStride, kStride, &c, n, accumulate)
        case .avx2: lethe_panel_multiply_avx2(panels, k, n, source, m, rowStride, kStride, &c, n, accumulate)
        case .avx512:
            guard lethe_panel_multiply_avx512(panels, k, n, source, m, rowStride, kStride, &c, n, accumulate) != 0 else {
                return nil
            }
        }
        return c
    }

    /// Shapes on both sweeps: k · 16 · panels ≤ 32,768 floats is the small-B sweep (an adapter's
    /// (s·B)ᵀ with k = 16 and 1,536 columns: 96 panels; a 13-column edge), larger ones go chunk
    /// by chunk (384 × 200; 211 rows: two chunks and a 1-row block).
    /// Each path (6-row AVX2 blocks, 12-row AVX-512 blocks) gives these bits, A read in place or
    /// from its transpose; row counts leave partial blocks of every size on both.
    @Test(arguments: [(211, 16, 1536), (37, 16, 13), (130, 384, 16), (211, 384, 200), (7, 40, 33), (23, 5, 17)])
    func productIsOneFusedChainPerElement(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        var random = TestRandom(seed: UInt64(m * 7 + k * 3 + n))
        let a = random.tensor([m, k]).values, b = random.tensor([k, n]).values, c0 = random.tensor([m, n]).values
        let plain = Self.chain(a, b, m: m, k: k, n: n), accumulated = Self.chain(a, b, m: m, k: k, n: n, initial: c0)
        for path in Path.allCases {
            for transposed in [false, true] {
                guard let product = Self.multiply(a, b, m: m, k: k, n: n, path: path, transposedA: transposed) else { continue }
                #expect(product == plain, "\(shape) \(path) transposed A: \(transposed)")
                #expect(Self.multiply(a, b, m: m, k: k, n: n, initial: c0, path: path, transposedA: transposed) == accumulated,
                        "\(shape) \(path) accumulating, transposed A: \(transposed)")
            }
        }
    }

    /// y += s·(x·Aᵀ)·Bᵀ for inference, against a float64 reference, against the training path
    /// (OpenBLAS: the same function, other rounding), into a column block of a wider output as
    /// the fused query/key/value output takes it, and row by row with the same bits as in a batch.
    @Test(arguments: [(53, 384, 384, 16), (19, 1536, 384, 16), (8, 384, 1536, 8), (5, 40, 24, 4)])
    func inferenceAdapterTermFollowsTheReference(shape: (Int, Int, Int, Int)) {
        let (n, i, o, r) = shape
        var random = TestRandom(seed: UInt64(n + i + o + r))
        let x = random.tensor([n, i]), loraA = random.tensor([r, i], scale: 0.1), loraB = random.tensor([o, r], scale: 0.1)
        let y0 = random.tensor([n, o]), scale: Float = 2
        let lora = LoRALinear.Shape(inFeatures: i, outFeatures: o, rank: r)
        let xa = Tensor(shape: [n, r])
        let y = Tensor(shape: [n, o])
        y.copy(from: y0)
        LoRALinear.addAdapterForInference(x.pointer, rows: n, shape: lora, loraA: loraA.pointer, loraB: loraB.pointer,
                                          scale: scale, xa: xa.data, into: y.data)
        // float64 reference and the size that bounds float32 rounding: Σ|x||A| per xa, then
        // s·Σ|xa||B| per output, plus |y0|.
        var worst = 0.0
        for row in 0..<n {
            var t = [Double](repeating: 0, count: r), tAbs = [Double](repeating: 0, count: r)
            for j in 0..<r {
                for f in 0..<i {
                    t[j] += Double(x[row * i + f]) * Double(loraA[j * i + f])
                    tAbs[j] += abs(Double(x[row * i + f]) * Double(loraA[j * i + f]))
                }
            }
            for col in 0..<o {
                var want = Double(y0[row * o + col]), size = abs(want)
                for j in 0..<r {
                    want += Double(scale) * t[j] * Double(loraB[col * r + j])
                    size += Double(scale) * tAbs[j] * abs(Double(loraB[col * r + j]))
                }
                worst = max(worst, abs(Double(y[row * o + col]) - want) / size)
            }
        }
        let bound = Double(i + r + 2) * 0x1p-24
        #expect(worst <= bound, "\(shape): error \(worst) of the terms' size, bound \(bound)")

        // The training path computes the same function.
        let viaBLAS = Tensor(shape: [n, o]), xaBLAS = Tensor(shape: [n, r])
        viaBLAS.copy(from: y0)
        LoRALinear.addAdapter(x.pointer, rows: n, shape: lora, loraA: loraA.data, loraB: loraB.data, scale: scale,
                              xa: xaBLAS.data, into: viaBLAS.data)
        let gap = zip(y.values, viaBLAS.values).map { abs(Double($0) - Double($1)) }.max() ?? 0
        let largest = y.values.map { abs(Double($0)) }.max() ?? 1
        #expect(gap <= largest * bound, "\(shape): inference and training paths differ by \(gap)")

        // Into columns [o, 2o) of a [n, 3o] output; one row at a time.
        let wide = Tensor(shape: [n, 3 * o])
        for row in 0..<n { (wide.data + row * 3 * o + o).update(from: y0.pointer + row * o, count: o) }
        LoRALinear.addAdapterForInference(x.pointer, rows: n, shape: lora, loraA: loraA.pointer, loraB: loraB.pointer,
                                          scale: scale, xa: xa.data, into: wide.data + o, outputRowStride: 3 * o)
        let single = Tensor(shape: [1, o])
        for row in 0..<n {
            #expect(Array(wide.values[(row * 3 * o + o)..<(row * 3 * o + 2 * o)]) == Array(y.values[(row * o)..<(row * o + o)]),
                    "\(shape): row \(row) of a column block")
            single.data.update(from: y0.pointer + row * o, count: o)
            LoRALinear.addAdapterForInference(x.pointer + row * i, rows: 1, shape: lora, loraA: loraA.pointer,
                                              loraB: loraB.pointer, scale: scale, xa: xa.data, into: single.data)
            #expect(single.values == Array(y.values[(row * o)..<(row * o + o)]), "\(shape): row \(row) alone")
        }
    }
}
