import Foundation
@testable import Kernels
import Testing

/// The non-accumulating forms (which spare callers a zero fill) give exactly the bits of the
/// accumulating forms run on zeroed buffers; the fused residual matches the plain sum; BLAS
/// single-threaded regions keep their contract.
@Suite struct OverwriteModeTests {
    @Test func attentionBackwardOverwriteEqualsAccumulateIntoZeros() {
        var rng = TestRandom(seed: 41)
        // Grouped-query heads: two query heads share each key/value head, so dK and dV get a
        // second head's product added to the first one's.
        let shape = Attention.Shape(batch: 2, tokens: 9, heads: 4, kvHeads: 2, headSize: 8)
        let n = 18
        let q = rng.tensor([n, 32]), k = rng.tensor([n, 16]), v = rng.tensor([n, 16]), dO = rng.tensor([n, 32])
        let p = Tensor(shape: [shape.probabilityCount]), out = Tensor(shape: [n, 32])
        Attention.forward(q: q.data, k: k.data, v: v.data, keyMask: nil, shape: shape,
                          probabilities: p.data, into: out.data, threads: 2)
        let dQ = Tensor(shape: q.shape), dK = Tensor(shape: k.shape), dV = Tensor(shape: v.shape)
        Attention.backward(dOut: dO.data, q: q.data, k: k.data, v: v.data, probabilities: p.data,
                           shape: shape, dQ: dQ.data, dK: dK.data, dV: dV.data, threads: 2)
        // Garbage in the outputs must not leak through when overwriting.
        let oQ = rng.tensor(q.shape), oK = rng.tensor(k.shape), oV = rng.tensor(v.shape)
        Attention.backward(dOut: dO.data, q: q.data, k: k.data, v: v.data, probabilities: p.data,
                           shape: shape, dQ: oQ.data, dK: oK.data, dV: oV.data, accumulate: false, threads: 2)
        #expect(bits(oQ) == bits(dQ))
        #expect(bits(oK) == bits(dK))
        #expect(bits(oV) == bits(dV))
    }

    @Test func layerNormBackwardOverwriteEqualsAccumulateIntoZeros() {
        var rng = TestRandom(seed: 42)
        let (n, c) = (70, 45)
        let x = rng.tensor([n, c], scale: 2), dY = rng.tensor([n, c]), g = rng.tensor([c]), b = rng.tensor([c])
        let y = Tensor(shape: [n, c]), mean = Tensor(shape: [n]), rstd = Tensor(shape: [n])
        LayerNorm.forward(x.data, gamma: g.data, beta: b.data, epsilon: 1e-12, into: y.data,
                          mean: mean.data, rstd: rstd.data, rows: n, columns: c, threads: 2)
        let dX = Tensor(shape: [n, c]), overwritten = rng.tensor([n, c])
        LayerNorm.backward(dY: dY.data, x: x.data, gamma: g.data, mean: mean.data, rstd: rstd.data,
                           dX: dX.data, dGamma: nil, dBeta: nil, rows: n, columns: c, threads: 2)
        LayerNorm.backward(dY: dY.data, x: x.data, gamma: g.data, mean: mean.data, rstd: rstd.data,
                           dX: overwritten.data, dGamma: nil, dBeta: nil, rows: n, columns: c,
                           accumulateDX: false, threads: 2)
        #expect(bits(overwritten) == bits(dX))
    }

    @Test func geluBackwardInPlaceEqualsAccumulateIntoZeros() {
        var rng = TestRandom(seed: 43)
        let count = 1003   // not a multiple of 8: the tail goes through the partial path
        let x = rng.tensor([count], scale: 3), dY = rng.tensor([count])
        let y = Tensor(shape: [count]), d = Tensor(shape: [count]), dX = Tensor(shape: [count])
        GELU.forward(x.data, into: y.data, derivative: d.data, count: count, threads: 2)
        GELU.backward(dY: dY.data, derivative: d.data, dX: dX.data, count: count, threads: 2)
        let inPlace = Tensor(shape: [count], values: dY.values)
        GELU.backwardInPlace(inPlace.data, derivative: d.data, count: count, threads: 2)
        #expect(bits(inPlace) == bits(dX))
        // The saved derivative is the one the x-form backward recomputes.
        let dX2 = Tensor(shape: [count])
        GELU.backward(dY: dY.data, x: x.data, dX: dX2.data, count: count, threads: 2)
        #expect(bits(dX2) == bits(dX))
        // The training forward in place (the encoder layer runs it so) gives the same bits.
        let inPlaceForward = Tensor(shape: [count], values: x.values), d2 = Tensor(shape: [count])
        GELU.forward(inPlaceForward.data, into: inPlaceForward.data, derivative: d2.data, count: count, threads: 2)
        #expect(bits(inPlaceForward) == bits(y))
        #expect(bits(d2) == bits(d))
    }

    @Test func linearResidualIsAddedToTheOutput() {
        var rng = TestRandom(seed: 44)
        let (n, i, o) = (11, 13, 7)
        let x = rng.tensor([n, i]), w = rng.tensor([o, i]), b = rng.tensor([o]), r = rng.tensor([n, o])
        let y = Tensor(shape: [n, o])
        Linear.forward(x.data, weight: w.data, bias: b.data, residual: r.data, into: y.data,
                       rows: n, inFeatures: i, outFeatures: o)
        var expected: [Float] = []
        for row in 0..<n {
            for col in 0..<o {
                var s = Double(b[col]) + Double(r[row * o + col])
                for j in 0..<i { s += Double(x[row * i + j]) * Double(w[col * i + j]) }
                expected.append(Float(s))
            }
        }
        expectClose(y.values, expected, tolerance: 1e-5, "y")
        // In place: the residual buffer is the output.
        Linear.forward(x.data, weight: w.data, bias: nil, residual: r.data, into: r.data,
                       rows: n, inFeatures: i, outFeatures: o)
        for row in 0..<n { for col in 0..<o { expected[row * o + col] -= b[col] } }
        expectClose(r.values, expected, tolerance: 1e-5, "in place")
    }

    @Test func singleThreadedRegionsHandOpenBLASTheRightCounts() {
        var r = SingleThreadedRegions()
        #expect(r.configure(2) == 2)
        #expect(r.open(current: 2) == 1)        // the first region switches to one thread
        #expect(r.open(current: 1) == nil)      // overlapping regions leave it alone
        #expect(r.configure(3) == nil)          // a new setting waits for the last region
        #expect(r.close() == nil)
        #expect(r.close() == 3)                 // the last region restores the newest setting
        #expect(r.open(current: 1) == nil)      // already one thread: nothing to switch
        #expect(r.close() == nil)
    }

    @Test func openBLASRunsOneThreadInsideRegions() {
        // Regions opened from several threads at once, nested once each.
        let inside = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        defer { inside.deallocate() }
        let box = UncheckedSendable(inside)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            BLASRuntime.withSingleThreadedProducts {
                BLASRuntime.withSingleThreadedProducts { box.value[i] = BLASRuntime.activeThreadCount }
            }
        }
        #expect((0..<8).allSatisfy { inside[$0] == 1 })
    }

    @Test func mapSingleThreadedKeepsItemOrderAndRethrows() throws {
        struct Failure: Error, Equatable { let item: Int }
        let previous = BLASRuntime.threadCount
        BLASRuntime.setThreadCount(2)
        defer { BLASRuntime.setThreadCount(previous) }
        let out = try Parallel.mapSingleThreaded(count: 7, threads: 3) { i in (i * i, BLASRuntime.activeThreadCount) }
        #expect(out.map(\.0) == [0, 1, 4, 9, 16, 25, 36])
        #expect(out.allSatisfy { $0.1 == 1 })   // OpenBLAS ran one thread inside
        #expect(BLASRuntime.activeThreadCount == 2)
        #expect(throws: Failure(item: 2)) {
            _ = try Parallel.mapSingleThreaded(count: 6, threads: 2) { i in
                if i == 2 || i == 5 { throw Failure(item: i) }
                return i
            }
        }
    }
}
