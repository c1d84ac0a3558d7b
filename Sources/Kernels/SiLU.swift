/// SiLU and the SwiGLU gate (Llama FFN), forward and backward.
///
///     silu(x) = x·σ(x),  silu′(x) = σ(x)·(1 + x·(1 − σ(x)))
///     swiglu(g, u) = silu(g)·u:  dg += dy·u·silu′(g),  du += dy·silu(g)
///
/// Shape glossary: `count` elements, flat (g, u, y share a shape, e.g. [N, F]).
/// σ uses the vectorised exp of `VectorMath`. Fixed 4096-element chunks: same bits for every
/// thread count. Forward saves nothing beyond its inputs.
public enum SiLU {
    static let chunk = 4096

    /// y = silu(x) (x may equal y).
    public static func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let v = loadPartial(x + p, w)
                storePartial(v * vsigmoid(v), y + p, w)
            }
        }
    }

    /// dX += dY·silu′(x).
    public static func backward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let v = loadPartial(x + p, w)
                let s = vsigmoid(v)
                let d = s * (1 + v * (1 - s))
                storePartial(loadPartial(dX + p, w) + loadPartial(dY + p, w) * d, dX + p, w)
            }
        }
    }
}

/// The SwiGLU gate y = silu(gate)·up (see `SiLU` for the equations).
public enum SwiGLU {
    /// y = silu(gate)·up (y may equal either input).
    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: SiLU.chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let g = loadPartial(gate + p, w)
                storePartial(g * vsigmoid(g) * loadPartial(up + p, w), y + p, w)
            }
        }
    }

    /// dGate += dY·up·silu′(gate), dUp += dY·silu(gate).
    public static func backward(dY: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                up: UnsafePointer<Float>,
                                dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>,
                                count: Int, threads: Int) {
        Parallel.forEachChunk(count: count, chunkSize: SiLU.chunk, threads: threads) { _, range in
            forEach8(range.count) { j, w in
                let p = range.lowerBound + j
                let g = loadPartial(gate + p, w), u = loadPartial(up + p, w)
                let dy = loadPartial(dY + p, w)
                let s = vsigmoid(g)
                let d = s * (1 + g * (1 - s))
                storePartial(loadPartial(dGate + p, w) + dy * u * d, dGate + p, w)
                storePartial(loadPartial(dUp + p, w) + dy * g * s, dUp + p, w)
            }
        }
    }
}
