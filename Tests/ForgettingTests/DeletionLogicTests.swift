import Planning
import Support
import Testing
@testable import Forgetting

/// The pure deletion rule of docs/DESIGN.md §1 on hand-checked cases and invariants.
@Suite struct DeletionLogicTests {
    /// The four right-rotations of (0 1 2 3), as cyclic selection makes them.
    static let rotations = [[0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1], [1, 2, 3, 0]]

    @Test func survivingLengthStopsBeforeTheEarliestHit() {
        #expect(DeletionLogic.survivingLength(of: [0, 1, 2, 3], hitSlices: []) == 4)
        #expect(DeletionLogic.survivingLength(of: [0, 1, 2, 3], hitSlices: [2]) == 2)
        #expect(DeletionLogic.survivingLength(of: [0, 1, 2, 3], hitSlices: [3, 1]) == 1)
        #expect(DeletionLogic.survivingLength(of: [0, 1, 2, 3], hitSlices: [0]) == 0)
    }

    @Test func oneHitTruncatesEverySequenceAndServesTheLongest() {
        let outcome = DeletionLogic.apply(shard: 0, sequences: Self.rotations, currentLengths: [4, 4, 4, 4],
                                          hitSlices: [2])
        #expect(outcome.prefixLengths == [2, 3, 0, 1])
        #expect(outcome.served == ServedPrefix(sequence: 1, prefixLength: 3))
        #expect(outcome.truncations.map(\.deactivatedStages) == [[3, 4], [4], [1, 2, 3, 4], [2, 3, 4]])
        // Every prefix containing slice 2: of (0123) 012, 0123; of (3012) 3012; of (2301) all four;
        // of (1230) 12, 123, 1230.
        #expect(outcome.erasedPrefixes == [[2], [1, 2], [2, 3], [0, 1, 2], [1, 2, 3], [2, 3, 0],
                                           [0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]])
    }

    @Test func tiesGoToTheLowestSequenceIndex() {
        let outcome = DeletionLogic.apply(shard: 0, sequences: Self.rotations, currentLengths: [4, 4, 4, 4],
                                          hitSlices: [1, 3])
        // Earliest hit of {1, 3}: (0123) at 2, (3012) at 1, (2301) at 2, (1230) at 1.
        #expect(outcome.prefixLengths == [1, 0, 1, 0])
        #expect(outcome.served == ServedPrefix(sequence: 0, prefixLength: 1))
    }

    @Test func hittingEveryFirstSliceKillsTheShard() {
        let outcome = DeletionLogic.apply(shard: 3, sequences: Self.rotations, currentLengths: [4, 4, 4, 4],
                                          hitSlices: [0, 1, 2, 3])
        #expect(outcome.isDead)
        #expect(outcome.prefixLengths == [0, 0, 0, 0])
        #expect(outcome.erasedPrefixes.count == 16)  // rotations start differently: all 4·4 prefixes are distinct
    }

    @Test func alreadyShorterSequencesAreNotLengthened() {
        let outcome = DeletionLogic.apply(shard: 0, sequences: Self.rotations, currentLengths: [1, 4, 0, 2],
                                          hitSlices: [3])
        #expect(outcome.prefixLengths == [1, 0, 0, 2])
        #expect(outcome.truncations == [SequenceTruncation(shard: 0, sequence: 1, fromLength: 4, toLength: 0,
                                                           deactivatedStages: [1, 2, 3, 4])])
    }

    /// Deletions commute: one batch equals the same hits one at a time, in any order; nothing
    /// served after any step contains a hit slice; every erased prefix contains one.
    @Test(arguments: 0..<20)
    func batchesEqualSequentialDeletions(trial: Int) {
        var generator = SplitMix64(seed: UInt64(trial))
        let (m, l) = (3, 5)
        let sequences = (0..<m).map { _ in (0..<3).map { _ in Array(0..<l).shuffled(using: &generator) } }
        let hits = Set((0..<4).map { _ in SliceLocation(shard: Int.random(in: 0..<m, using: &generator),
                                                         slice: Int.random(in: 0..<l, using: &generator)) })
        let full = sequences.map { $0.map(\.count) }
        let batch = DeletionLogic.apply(sequences: sequences, currentLengths: full, hits: hits)
        var lengths = full
        for hit in hits.shuffled(using: &generator) {
            lengths = DeletionLogic.apply(sequences: sequences, currentLengths: lengths, hits: [hit]).map(\.prefixLengths)
        }
        #expect(batch.map(\.prefixLengths) == lengths)
        for outcome in batch {
            let hitSlices = Set(hits.filter { $0.shard == outcome.shard }.map(\.slice))
            if let served = outcome.served {
                let prefix = sequences[outcome.shard][served.sequence].prefix(served.prefixLength)
                #expect(!prefix.contains(where: hitSlices.contains))
                #expect(served.prefixLength == outcome.prefixLengths.max())
            }
            for erased in outcome.erasedPrefixes {
                #expect(erased.contains(where: hitSlices.contains))
            }
        }
    }

    @Test func remainingDeletionRateStartsAtTheTheory() {
        let sequences = Array(repeating: Array(Self.rotations.prefix(2)), count: 5)
        let full = sequences.map { $0.map(\.count) }
        let fresh = DeletionLogic.remainingDeletionRate(sequences: sequences, prefixLengths: full, sliceCount: 4)
        #expect(abs(fresh - DeletionRateTheory.s3t(shardCount: 5, sliceCount: 4, budget: 2)) < 1e-9)
        #expect(abs(fresh - 58.57) < 0.01)
        // Kill sequence 0 of shard 0 (its first slice is 0): 9 live first-slice cells of 20.
        var lengths = full
        lengths[0][0] = 0
        let after = DeletionLogic.remainingDeletionRate(sequences: sequences, prefixLengths: lengths, sliceCount: 4)
        #expect(abs(after - 20 * DeletionRateTheory.harmonic(9)) < 1e-9)
        let dead = sequences.map { $0.map { _ in 0 } }
        #expect(DeletionLogic.remainingDeletionRate(sequences: sequences, prefixLengths: dead, sliceCount: 4) == 0)
    }
}
