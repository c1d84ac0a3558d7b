import Foundation
import Support

/// Monte-Carlo estimate of the deletion rate δ under the truncate-prefix rule.
///
/// One trial: requests arrive one by one; each hits slice s of shard h with probability
/// p_s / m (uniform p_s = 1/L unless a prior is given), independently (with replacement, as for
/// a large dataset). In every sequence of shard h the slice's position q (1-based) truncates the
/// sequence to its first q−1 stages; a sequence with no stage left is dead, a shard with only
/// dead sequences is dead, and the trial ends — counting the final request — when every shard is
/// dead. Every shard uses the same sequences. δ is the mean over trials, reported with a
/// normal-approximation 95% interval (mean ± 1.96·s/√n).
public struct DeletionSimulator: Sendable {
    /// One result: the sample mean, its 95% interval and the sample standard deviation.
    public struct Estimate: Sendable, Equatable {
        public var mean: Double
        public var standardDeviation: Double
        public var lower95: Double
        public var upper95: Double
        public var trialCount: Int
    }

    public let shardCount: Int
    public let sequences: [[Int]]
    /// Request probability per slice (sums to 1).
    public let requestPrior: [Double]

    /// Precondition: m ≥ 1, at least one sequence, all permutations of the same L slices.
    public init(shardCount: Int, sequences: [[Int]], requestPrior: [Double]? = nil) {
        precondition(shardCount >= 1 && !sequences.isEmpty, "need a shard and a sequence")
        let l = sequences[0].count
        precondition(sequences.allSatisfy { $0.sorted() == Array(0..<l) }, "sequences must be permutations of 0..<L")
        precondition(l <= 64, "at most 64 slices")
        self.shardCount = shardCount
        self.sequences = sequences
        self.requestPrior = requestPrior ?? [Double](repeating: 1 / Double(l), count: l)
        precondition(self.requestPrior.count == l, "the prior needs one entry per slice")
    }

    /// Slices that begin some sequence but are never requested (probability 0): a sequence
    /// dies only when its first slice is hit, so with any of them δ is unbounded and a trial
    /// would never end. Empty when δ is finite.
    public var immortalFirstSlices: [Int] {
        firstSlices.filter { requestPrior[$0] <= 0 }.sorted()
    }

    /// The slices that begin some sequence: the only ones whose hits kill sequences.
    public var firstSlices: Set<Int> { Set(sequences.map { $0[0] }) }

    /// About how many requests one trial takes, at most: a shard dies once each first slice is
    /// hit, which takes about 1/p of its requests for a slice of probability p. A tiny p makes
    /// every trial practically endless.
    public var requestsPerTrialBound: Double {
        Double(shardCount) * firstSlices.reduce(0) { $0 + 1 / requestPrior[$1] }
    }

    /// Runs `trialCount` trials from `seed` (same seed, same estimate).
    /// Precondition: `immortalFirstSlices` is empty.
    /// `progress` is called after each trial with the number of trials done.
    public func estimate(trialCount: Int, seed: UInt64, progress: (Int) -> Void = { _ in }) -> Estimate {
        precondition(trialCount >= 2, "need at least two trials for an interval")
        precondition(immortalFirstSlices.isEmpty, "δ is unbounded: a sequence begins with a slice never requested")
        var generator = SplitMix64(seed: seed)
        var cumulative: [Double] = []
        var running = 0.0
        for p in requestPrior { running += p; cumulative.append(running) }
        // A hit on slice s truncates every sequence of its shard to the stages before s, so a
        // sequence dies exactly when its first slice is hit, and a shard when every distinct
        // first slice of its sequences has been. A trial therefore tracks, per shard, the first
        // slices not hit yet (a bit set over L ≤ 64 slices): each request costs O(1), whatever B.
        let firstSliceBits = firstSlices.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
        var unhit = [UInt64](repeating: 0, count: shardCount)
        var sum = 0.0, sumOfSquares = 0.0
        for trial in 0..<trialCount {
            for h in 0..<shardCount { unhit[h] = firstSliceBits }
            var liveShards = shardCount
            var requests = 0
            while liveShards > 0 {
                requests += 1
                let shard = generator.next(below: shardCount)
                let bit = UInt64(1) << UInt64(Self.draw(cumulative, &generator))
                if unhit[shard] & bit != 0 {
                    unhit[shard] &= ~bit
                    if unhit[shard] == 0 { liveShards -= 1 }
                }
            }
            sum += Double(requests)
            sumOfSquares += Double(requests) * Double(requests)
            progress(trial + 1)
        }
        let n = Double(trialCount)
        let mean = sum / n
        let variance = max(0, (sumOfSquares - n * mean * mean) / (n - 1))
        let halfWidth = 1.96 * (variance / n).squareRoot()
        return Estimate(mean: mean, standardDeviation: variance.squareRoot(),
                        lower95: mean - halfWidth, upper95: mean + halfWidth, trialCount: trialCount)
    }

    /// Inverse-CDF draw of a slice from cumulative probabilities.
    private static func draw(_ cumulative: [Double], _ generator: inout SplitMix64) -> Int {
        let u = generator.nextUnitInterval() * (cumulative.last ?? 1)
        var low = 0, high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if u < cumulative[middle] { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
