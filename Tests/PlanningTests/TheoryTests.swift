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
}
