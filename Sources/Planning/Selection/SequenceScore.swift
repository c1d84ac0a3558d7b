import Foundation

/// The BMS score of a sequence: how long its prefixes are expected to survive deletions.
///
/// S(π) = Σ_{i=1..L} i · (1 − Σ_{j≤i} p_{πj})^t (S3T, Chowdhury et al. 2025, §4.2): the i-th
/// term is the depth i reached, weighted by the probability that t independent deletions (drawn
/// from the prior p) all miss the first i slices. t defaults to 100.
public enum SequenceScore {
    /// The default exponent t.
    public static let defaultExponent = 100.0

    /// S(π) of a full or partial sequence (a prefix scores the terms it has).
    public static func score(_ sequence: [Int], prior: [Double], exponent t: Double = defaultExponent) -> Double {
        var cumulative = 0.0
        var total = 0.0
        for (offset, slice) in sequence.enumerated() {
            cumulative += prior[slice]
            total += Double(offset + 1) * survival(1 - cumulative, exponent: t)
        }
        return total
    }

    /// (1 − P)^t, with rounding that pushes 1 − P slightly below zero treated as zero.
    static func survival(_ remaining: Double, exponent t: Double) -> Double {
        remaining <= 0 ? 0 : pow(remaining, t)
    }
}
