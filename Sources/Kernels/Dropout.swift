/// Inverted dropout with a counter-based random stream: element i of a call with seed s is
/// kept iff u(s, i) ≥ p, where u is a SplitMix64 hash of (s, i) mapped to [0, 1); kept values
/// are scaled by 1/(1 − p). The mask depends only on (seed, index), never on threads or on
/// call order, so a training step replays bit for bit and backward can regenerate it.
///
/// Shape glossary: x, y, dX, dY are flat arrays of `count` elements.
public struct Dropout: Sendable, Equatable {
    /// Probability of zeroing an element, in [0, 1).
    public var probability: Float
    /// Seed of this call's stream; callers derive one per step and layer.
    public var seed: UInt64

    public init(probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) not in [0, 1)")
        self.probability = probability
        self.seed = seed
    }

    /// The multiplier of element `index`: 0 or 1/(1 − p).
    @inline(__always)
    public func factor(at index: Int) -> Float {
        var z = seed &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let u = Float(z >> 40) * (1.0 / 16_777_216.0)
        return u >= probability ? 1 / (1 - probability) : 0
    }

    /// y = x ⊙ mask / (1 − p) (x may equal y).
    public func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = x[i] * factor(at: i) }
    }

    /// dX += dY ⊙ mask / (1 − p).
    public func backward(dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dX[i] += dY[i] * factor(at: i) }
    }
}
