/// How a shard's B training sequences (orders of its L slices) are chosen (docs/DESIGN.md §1).
public enum SequenceSelection: String, Sendable, CaseIterable {
    /// Right rotations of (0 … L−1), extended by suffix rotations when B > L. No prior needed.
    case cyclic
    /// Budget-aware sequence selection from a per-slice deletion prior, by repeated maximum-weight
    /// assignment (Hungarian algorithm) on the score S(π).
    case bms

    /// The largest budget for L slices: L! distinct orders (saturating at Int.max).
    public static func permutationCount(sliceCount: Int) -> Int {
        var count = 1
        for k in stride(from: 2, through: max(sliceCount, 1), by: 1) {
            let (product, overflow) = count.multipliedReportingOverflow(by: k)
            if overflow { return .max }
            count = product
        }
        return count
    }

    /// The B sequences of one shard, each a permutation of 0..<L (0-based slice numbers).
    ///
    /// `prior` (one probability per slice, summing to 1) is used by `.bms` only; nil means
    /// uniform. Preconditions: 1 ≤ budget ≤ L!, prior has L entries.
    public func sequences(sliceCount: Int, budget: Int, prior: [Double]? = nil,
                          exponent: Double = SequenceScore.defaultExponent) -> [[Int]] {
        precondition(sliceCount >= 1 && budget >= 1, "need at least one slice and one sequence")
        precondition(budget <= Self.permutationCount(sliceCount: sliceCount), "budget exceeds L!")
        switch self {
        case .cyclic:
            return SuffixRotation.extend(CyclicSelection.rotations(sliceCount: sliceCount), toCount: budget)
        case .bms:
            let prior = prior ?? [Double](repeating: 1 / Double(sliceCount), count: sliceCount)
            precondition(prior.count == sliceCount, "prior needs one entry per slice")
            let square = BMSSelection.latinSquare(prior: prior, exponent: exponent)
            if budget <= sliceCount {
                return BMSSelection.best(budget, of: square, prior: prior, exponent: exponent)
            }
            return SuffixRotation.extend(square, toCount: budget)
        }
    }
}

/// Cyclic rotation: the L right rotations of (0, 1, …, L−1); rotation k starts with slice L−k.
enum CyclicSelection {
    static func rotations(sliceCount l: Int) -> [[Int]] {
        (0..<l).map { k in (0..<l).map { i in (i - k + l) % l } }
    }
}

/// Extension of L base sequences (distinct first slices) to B > L distinct sequences.
///
/// docs/DESIGN.md §1: at level n = 1, 2, … every sequence present keeps its first n slices and
/// contributes right rotations of its remaining suffix (length L−n, so L−n−1 new orders each),
/// taken round-robin over the parents — rotation 1 of every parent, then rotation 2, … — until B
/// sequences exist. New sequences are distinct: parents differ in their first n slices, and
/// rotations of a suffix of distinct slices differ from each other. Parents are kept in an order
/// that cycles through the first slices, so every partial round (and so the result) has first
/// slices spread evenly: their counts differ by at most one.
enum SuffixRotation {
    static func extend(_ base: [[Int]], toCount budget: Int) -> [[Int]] {
        guard budget > base.count else { return Array(base.prefix(budget)) }
        var all = base
        let l = base.first?.count ?? 0
        var level = 1
        while all.count < budget && level < l - 1 {
            let parents = all
            let suffixLength = l - level
            rotations: for rotation in 1..<suffixLength {
                for parent in parents {
                    let suffix = parent[level...]
                    // Right rotation by `rotation`: the last `rotation` slices move to the front.
                    let rotated = Array(suffix.suffix(rotation)) + Array(suffix.dropLast(rotation))
                    all.append(Array(parent[..<level]) + rotated)
                    if all.count == budget { break rotations }
                }
            }
            level += 1
        }
        precondition(all.count == budget, "budget exceeds L!")
        return all
    }
}
