import Support
import Testing
@testable import Planning

@Suite struct TheoryTests {
    @Test func harmonicNumbers() {
        #expect(DeletionRateTheory.harmonic(0) == 0)
        #expect(DeletionRateTheory.harmonic(1) == 1)
        #expect(abs(DeletionRateTheory.harmonic(4) - 25.0 / 12.0) < 1e-15)
    }

    /// docs/DESIGN.md §1 values: 45.7, 58.6, 72.0, 171.1, 171.1 (one decimal).
    @Test(arguments: [(5, 4, 1, 45.7), (5, 4, 2, 58.6), (5, 4, 4, 72.0), (5, 8, 8, 171.1), (10, 4, 4, 171.1)])
    func closedFormMatchesDesign(m: Int, l: Int, b: Int, expected: Double) {
        let delta = DeletionRateTheory.s3t(shardCount: m, sliceCount: l, budget: b)
        #expect(abs(delta - expected) < 0.05)
    }
}

@Suite struct SimulatorTests {
    /// The truncate-prefix simulation agrees with m·L·H_{m·min(B,L)} within 2% at 4,000 trials.
    @Test(arguments: [(5, 4, 1), (5, 4, 2), (5, 4, 4), (5, 8, 8), (10, 4, 4)])
    func agreesWithClosedForm(m: Int, l: Int, b: Int) {
        let sequences = SequenceSelection.cyclic.sequences(sliceCount: l, budget: b)
        let estimate = DeletionSimulator(shardCount: m, sequences: sequences)
            .estimate(trialCount: 4000, seed: 2025)
        let theory = DeletionRateTheory.s3t(shardCount: m, sliceCount: l, budget: b)
        #expect(abs(estimate.mean - theory) / theory < 0.02, "simulated \(estimate.mean), theory \(theory)")
        #expect(estimate.lower95 < estimate.mean && estimate.mean < estimate.upper95)
        #expect(estimate.trialCount == 4000)
    }

    @Test func sameSeedSameEstimate() {
        let simulator = DeletionSimulator(shardCount: 3, sequences: SequenceSelection.cyclic.sequences(sliceCount: 3, budget: 2))
        #expect(simulator.estimate(trialCount: 200, seed: 9) == simulator.estimate(trialCount: 200, seed: 9))
        #expect(simulator.estimate(trialCount: 200, seed: 9) != simulator.estimate(trialCount: 200, seed: 10))
    }

    /// One shard, one slice: the first request kills everything.
    @Test func singleCellDiesOnFirstRequest() {
        let estimate = DeletionSimulator(shardCount: 1, sequences: [[0]]).estimate(trialCount: 10, seed: 1)
        #expect(estimate.mean == 1 && estimate.standardDeviation == 0)
    }

    /// Beyond L sequences the first slices repeat, so δ saturates at B = L (docs/DESIGN.md §1).
    @Test func budgetBeyondLDoesNotRaiseTheRate() {
        let atL = DeletionSimulator(shardCount: 4, sequences: SequenceSelection.cyclic.sequences(sliceCount: 4, budget: 4))
            .estimate(trialCount: 4000, seed: 3)
        let beyond = DeletionSimulator(shardCount: 4, sequences: SequenceSelection.cyclic.sequences(sliceCount: 4, budget: 12))
            .estimate(trialCount: 4000, seed: 3)
        #expect(atL == beyond)  // same draws, same deaths: only first slices matter
    }

    /// Under a skewed request prior, BMS (which puts likely-deleted slices late) outlives cyclic.
    @Test func bmsOutlivesCyclicUnderItsPrior() {
        let prior = [0.55, 0.25, 0.1, 0.05, 0.05]
        let bms = DeletionSimulator(shardCount: 4, sequences: SequenceSelection.bms.sequences(sliceCount: 5, budget: 2, prior: prior),
                                    requestPrior: prior).estimate(trialCount: 2000, seed: 5)
        let cyclic = DeletionSimulator(shardCount: 4, sequences: SequenceSelection.cyclic.sequences(sliceCount: 5, budget: 2),
                                       requestPrior: prior).estimate(trialCount: 2000, seed: 5)
        #expect(bms.lower95 > cyclic.upper95, "BMS \(bms.mean) vs cyclic \(cyclic.mean)")
    }

    /// The simulator tracks only first slices; the rule as stated truncates every sequence.
    /// Both draw the same requests, so they end every trial at the same request: equal means
    /// and deviations, bit for bit, for cyclic and BMS sequences, with and without a prior.
    @Test(arguments: [(1, 3, 2, false), (4, 5, 3, false), (7, 6, 6, true), (3, 8, 20, true), (16, 64, 9, false)])
    func equalsTheSequenceBySequenceRule(m: Int, l: Int, b: Int, skewed: Bool) {
        let weights: [Double] = (0..<l).map { 1 / Double($0 + 1) }
        let total: Double = weights.reduce(0, +)
        let prior: [Double]? = skewed ? weights.map { $0 / total } : nil
        for selection in [SequenceSelection.cyclic, .bms] {
            let sequences = selection.sequences(sliceCount: l, budget: b, prior: prior, exponent: 100)
            let simulator = DeletionSimulator(shardCount: m, sequences: sequences, requestPrior: prior)
            let counts = Self.requestsPerTrial(simulator, trials: 300, seed: 11)
            let estimate = simulator.estimate(trialCount: 300, seed: 11)
            let sum: Double = counts.reduce(0, +)
            let squares: Double = counts.map { $0 * $0 }.reduce(0, +)
            let mean = sum / 300
            let variance: Double = (squares - 300 * mean * mean) / 299
            let deviation = max(0, variance).squareRoot()
            #expect(estimate.mean == mean && estimate.standardDeviation == deviation,
                    "\(selection) m \(m) L \(l) B \(b): \(estimate.mean) vs \(mean)")
        }
    }

    /// Requests until every shard is dead, per trial: each request truncates every sequence of
    /// its shard before the hit slice; a shard is dead when all its sequences are empty.
    static func requestsPerTrial(_ simulator: DeletionSimulator, trials: Int, seed: UInt64) -> [Double] {
        var generator = SplitMix64(seed: seed)
        var cumulative: [Double] = []
        for p in simulator.requestPrior { cumulative.append((cumulative.last ?? 0) + p) }
        var counts: [Double] = []
        for _ in 0..<trials {
            var stages = [[Int]](repeating: simulator.sequences.map(\.count), count: simulator.shardCount)
            var requests = 0
            while stages.contains(where: { $0.contains { $0 > 0 } }) {
                requests += 1
                let shard = generator.next(below: simulator.shardCount)
                let u = generator.nextUnitInterval() * cumulative.last!
                let slice = cumulative.firstIndex { u < $0 } ?? cumulative.count - 1
                for (b, sequence) in simulator.sequences.enumerated() {
                    stages[shard][b] = min(stages[shard][b], sequence.firstIndex(of: slice)!)
                }
            }
            counts.append(Double(requests))
        }
        return counts
    }
}
