/// A deterministic random number generator (SplitMix64) for plans and simulations.
///
/// Why our own: the standard library's generators are not seedable, and its `shuffle(using:)`
/// and `random(in:using:)` algorithms are not promised to stay the same across Swift versions —
/// a plan must be reproducible from its seed forever. SplitMix64 (Steele, Lea & Flood 2014)
/// passes BigCrush and is one add and three xor-shift-multiplies per draw.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` by rejection (no modulo bias). Precondition: bound > 0.
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let range = UInt64(bound)
        // Reject the top partial copy of 0..<bound in the 64-bit space.
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
            let j = next(below: i + 1)
            if i != j { values.swapAt(i, j) }
        }
    }
}
