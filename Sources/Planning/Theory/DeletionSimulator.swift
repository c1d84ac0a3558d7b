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
        self.shardCount = shardCount
        self.sequences = sequences
        self.requestPrior = requestPrior ?? [Double](repeating: 1 / Double(l), count: l)
        precondition(self.requestPrior.count == l, "the prior needs one entry per slice")
    }

    /// Slices that begin some sequence but are never requested (probability 0): a sequence
    /// dies only when its first slice is hit, so with any of them δ is unbounded and a trial
    /// would never end. Empty when δ is finite.
    public var immortalFirstSlices: [Int] {
        Set(sequences.map { $0[0] }).filter { requestPrior[$0] <= 0 }.sorted()
    }

    /// Runs `trialCount` trials from `seed` (same seed, same estimate).
    /// Precondition: `immortalFirstSlices` is empty.
    public func estimate(trialCount: Int, seed: UInt64) -> Estimate {
        precondition(trialCount >= 2, "need at least two trials for an interval")
        precondition(immortalFirstSlices.isEmpty, "δ is unbounded: a sequence begins with a slice never requested")
        var generator = SplitMix64(seed: seed)
        let l = requestPrior.count
        // position[seq][slice] = 1-based position of the slice in that sequence.
        var position = [[Int]](repeating: [Int](repeating: 0, count: l), count: sequences.count)
        for (index, sequence) in sequences.enumerated() {
            for (offset, slice) in sequence.enumerated() { position[index][slice] = offset + 1 }
        }
        var cumulative: [Double] = []
        var running = 0.0
        for p in requestPrior { running += p; cumulative.append(running) }
        var sum = 0.0, sumOfSquares = 0.0
        var alive = [Int](repeating: 0, count: shardCount * sequences.count)
        var liveSequences = [Int](repeating: 0, count: shardCount)
        for _ in 0..<trialCount {
            // alive[h·B + b] = number of stages sequence b of shard h still has.
            for i in alive.indices { alive[i] = l }
            for h in 0..<shardCount { liveSequences[h] = sequences.count }
            var liveShards = shardCount
            var requests = 0
            while liveShards > 0 {
                requests += 1
                let shard = generator.next(below: shardCount)
                let slice = Self.draw(cumulative, &generator)
                guard liveSequences[shard] > 0 else { continue }
                for b in 0..<sequences.count {
                    let cell = shard * sequences.count + b
                    let keep = position[b][slice] - 1
                    if alive[cell] > 0 && keep < alive[cell] {
                        alive[cell] = keep
                        if keep == 0 { liveSequences[shard] -= 1 }
                    }
                }
                if liveSequences[shard] == 0 { liveShards -= 1 }
            }
            sum += Double(requests)
            sumOfSquares += Double(requests) * Double(requests)
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
