import Foundation

/// The one seeded random source of Lethe (SplitMix64, Steele, Lea & Flood 2014): plans,
/// simulations, adapter initialisation, shuffles and dropout seeds all draw from it.
///
/// Why our own: the standard library's generators are not seedable, and its `shuffle(using:)`
/// and `random(in:using:)` are not promised to stay the same across Swift versions — a plan and
/// a training run must be reproducible from their seeds forever. SplitMix64 passes BigCrush and
/// is one add and three xor-shift-multiplies per draw.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound, by rejection of the top partial range (no modulo bias).
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let range = UInt64(bound)
        let limit = UInt64.max - UInt64.max % range
        while true {
            let draw = next()
            if draw < limit { return Int(draw % range) }
        }
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    public mutating func nextUnitInterval() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Fisher–Yates shuffle with this generator's own bounded draws (stable across Swift versions).
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(i, next(below: i + 1))
        }
    }
}

extension SplitMix64 {
    /// Uniform Float in [low, high) from the top 24 bits.
    public mutating func nextFloat(in low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) * 0x1p-24
    }

    /// A standard normal sample (Box–Muller, from two 53-bit uniforms).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// A seed derived from this seed and a list of integers (stage, step, layer…), by hashing.
    public static func derive(_ seed: UInt64, _ parts: Int...) -> UInt64 {
        var g = SplitMix64(seed: seed)
        var value = g.next()
        for p in parts {
            g = SplitMix64(seed: value ^ UInt64(bitPattern: Int64(p)) &* 0x9E37_79B9_7F4A_7C15)
            value = g.next()
        }
        return value
    }
}
