import Foundation

/// Budget-aware sequence selection (BMS, S3T §4.2) for a known per-slice deletion prior.
///
/// Start from the L one-slice sequences (s); for each next position solve a maximum-weight
/// assignment between the L partial sequences and the L slices, where a slice already in a
/// sequence is excluded and the weight is the score of the extended prefix. Every position is a
/// perfect matching, so the result is a Latin square (each slice once per position).
///
/// Numerics: the score of the prefix itself is the same for every candidate of a row, and an
/// assignment is unchanged by adding a constant to a row, so only the new term
/// (k+1)·(1 − C − p_s)^t is used as the weight (C = prefix probability). Those terms span
/// hundreds of orders of magnitude for t = 100, so they are formed in log space and divided by
/// the largest one (a global scale, which does not change the optimum) before the assignment.
enum BMSSelection {
    static func latinSquare(prior: [Double], exponent t: Double) -> [[Int]] {
        let l = prior.count
        var sequences = (0..<l).map { [$0] }
        var prefixProbability = prior
        for position in 1..<max(l, 1) {
            var logWeight = [[Double]](repeating: [Double](repeating: -.infinity, count: l), count: l)
            var allowed = [[Bool]](repeating: [Bool](repeating: true, count: l), count: l)
            for row in 0..<l {
                for slice in sequences[row] { allowed[row][slice] = false }
                for slice in 0..<l where allowed[row][slice] {
                    let remaining = 1 - prefixProbability[row] - prior[slice]
                    if remaining > 0 {
                        logWeight[row][slice] = log(Double(position + 1)) + t * log(remaining)
                    }
                }
            }
            let largest = logWeight.joined().max() ?? 0
            let weight = logWeight.map { row in
                row.map { $0 == -.infinity || !largest.isFinite ? 0 : exp($0 - largest) }
            }
            // A Latin prefix is a regular bipartite graph of allowed edges, so a perfect
            // matching always exists (Hall's theorem).
            let assignment = lexicographicallyFirstOptimum(weight, allowed: allowed)
            for row in 0..<l {
                sequences[row].append(assignment[row])
                prefixProbability[row] += prior[assignment[row]]
            }
        }
        return sequences
    }

    /// Among the maximum-weight assignments — equal up to a relative 1e-9 of the optimum, i.e.
    /// up to rounding — the one whose row → slice list is lexicographically smallest.
    ///
    /// Why: exact ties are common (the paper's example p = (0.4, 0.3, 0.2, 0.1) has two optimal
    /// third positions with the same multiset of terms), and the Hungarian solver's choice among
    /// them depends on its internal order. Fixing rows one at a time to their smallest column
    /// that still admits an optimal completion makes the result a property of the weights.
    /// Cost: O(L²) assignments of O(L³) each per position; fine for the tens of slices S3T uses.
    static func lexicographicallyFirstOptimum(_ weight: [[Double]], allowed: [[Bool]]) -> [Int] {
        let n = weight.count
        func total(_ assignment: [Int]) -> Double {
            assignment.enumerated().map { weight[$0.offset][$0.element] }.reduce(0, +)
        }
        // A Latin prefix is a regular bipartite graph of allowed edges, so a perfect matching
        // always exists (Hall's theorem).
        guard let best = Hungarian.maximumWeightAssignment(weight, allowed: allowed) else {
            preconditionFailure("a Latin prefix always admits a perfect matching")
        }
        let threshold = total(best) - 1e-9 * abs(total(best))
        var fixed = allowed
        var result: [Int] = []
        for row in 0..<n {
            for column in 0..<n where fixed[row][column] {
                var trial = fixed
                for other in 0..<n where other != column { trial[row][other] = false }
                for other in 0..<n where other != row { trial[other][column] = false }
                if let completion = Hungarian.maximumWeightAssignment(weight, allowed: trial),
                   total(completion) >= threshold {
                    fixed = trial
                    result.append(column)
                    break
                }
            }
        }
        precondition(result.count == n, "the optimum's own columns always qualify")
        return result
    }

    /// The `count` highest-scoring sequences (ties: the earlier one), in that order.
    static func best(_ count: Int, of sequences: [[Int]], prior: [Double], exponent t: Double) -> [[Int]] {
        let scores = sequences.map { SequenceScore.score($0, prior: prior, exponent: t) }
        let ranked = sequences.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return ranked.prefix(count).map { sequences[$0] }
    }
}
