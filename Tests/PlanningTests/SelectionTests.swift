import Support
import Testing
@testable import Planning

@Suite struct SelectionTests {
    private func isLatinSquare(_ rows: [[Int]], size l: Int) -> Bool {
        guard rows.count == l, rows.allSatisfy({ $0.sorted() == Array(0..<l) }) else { return false }
        return (0..<l).allSatisfy { position in Set(rows.map { $0[position] }).count == l }
    }

    private func randomPrior(_ l: Int, _ generator: inout SplitMix64) -> [Double] {
        let raw = (0..<l).map { _ in generator.nextUnitInterval() + 0.01 }
        let sum = raw.reduce(0, +)
        return raw.map { $0 / sum }
    }

    @Test(arguments: 1...8)
    func cyclicIsLatinSquareForBEqualL(l: Int) {
        let sequences = SequenceSelection.cyclic.sequences(sliceCount: l, budget: l)
        #expect(isLatinSquare(sequences, size: l))
        #expect(sequences.first == Array(0..<l))
        if l > 1 { #expect(sequences[1] == [l - 1] + Array(0..<(l - 1))) }  // right rotation
    }

    @Test func cyclicBelowLKeepsFirstRotationsWithDistinctHeads() {
        let sequences = SequenceSelection.cyclic.sequences(sliceCount: 5, budget: 3)
        #expect(sequences == [[0, 1, 2, 3, 4], [4, 0, 1, 2, 3], [3, 4, 0, 1, 2]])
    }

    @Test(arguments: 2...7)
    func bmsIsLatinSquareForBEqualL(l: Int) {
        var generator = SplitMix64(seed: UInt64(l))
        for _ in 0..<5 {
            let prior = randomPrior(l, &generator)
            #expect(isLatinSquare(SequenceSelection.bms.sequences(sliceCount: l, budget: l, prior: prior), size: l))
        }
    }

    @Test func bmsReproducesThePaperExample() {
        let sequences = SequenceSelection.bms.sequences(sliceCount: 4, budget: 4, prior: [0.4, 0.3, 0.2, 0.1])
        #expect(Set(sequences) == [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
    }

    @Test func bmsScoreIsNeverBelowCyclicOnRandomPriors() {
        var generator = SplitMix64(seed: 42)
        for trial in 0..<60 {
            let l = 3 + trial % 6
            let t = [1.0, 5.0, 20.0, 100.0][trial % 4]
            let prior = randomPrior(l, &generator)
            let total = { (sequences: [[Int]]) in
                sequences.map { SequenceScore.score($0, prior: prior, exponent: t) }.reduce(0, +)
            }
            let bms = total(SequenceSelection.bms.sequences(sliceCount: l, budget: l, prior: prior, exponent: t))
            let cyclic = total(SequenceSelection.cyclic.sequences(sliceCount: l, budget: l))
            #expect(bms >= cyclic * (1 - 1e-12), "L=\(l) t=\(t) prior=\(prior): BMS \(bms) < cyclic \(cyclic)")
        }
    }

    @Test func bmsBelowLKeepsTheBestScoringSequences() {
        let prior = [0.4, 0.3, 0.2, 0.1]
        let kept = SequenceSelection.bms.sequences(sliceCount: 4, budget: 2, prior: prior)
        // The sequences that start with the least likely deleted slices score highest.
        #expect(kept == [[3, 2, 1, 0], [2, 3, 0, 1]])
    }

    @Test(arguments: [(4, 5), (4, 7), (4, 12), (4, 13), (4, 24), (5, 9), (5, 33), (5, 120), (6, 100), (3, 6)])
    func beyondLSequencesAreDistinctWithFirstSlicesSpreadEvenly(l: Int, b: Int) {
        for selection in SequenceSelection.allCases {
            let sequences = selection.sequences(sliceCount: l, budget: b)
            #expect(sequences.count == b)
            #expect(Set(sequences).count == b, "\(selection) L=\(l) B=\(b) repeats a sequence")
            #expect(sequences.allSatisfy { $0.sorted() == Array(0..<l) })
            var headCounts = [Int](repeating: 0, count: l)
            for sequence in sequences { headCounts[sequence[0]] += 1 }
            #expect(headCounts.max()! - headCounts.min()! <= 1, "\(selection) L=\(l) B=\(b) heads \(headCounts)")
            // The first L sequences are the B = L selection.
            #expect(Array(sequences.prefix(l)) == selection.sequences(sliceCount: l, budget: l))
        }
    }

    @Test func permutationCounts() {
        #expect(SequenceSelection.permutationCount(sliceCount: 1) == 1)
        #expect(SequenceSelection.permutationCount(sliceCount: 5) == 120)
        #expect(SequenceSelection.permutationCount(sliceCount: 30) == .max)
    }

    private func bruteForceMinimum(_ cost: [[Double]]) -> Double {
        var best = Double.infinity
        func search(_ row: Int, _ used: inout [Bool], _ total: Double) {
            if row == cost.count { best = min(best, total); return }
            for column in cost.indices where !used[column] {
                used[column] = true
                search(row + 1, &used, total + cost[row][column])
                used[column] = false
            }
        }
        var used = [Bool](repeating: false, count: cost.count)
        search(0, &used, 0)
        return best
    }

    @Test func hungarianMatchesBruteForce() {
        var generator = SplitMix64(seed: 7)
        for trial in 0..<300 {
            let n = 1 + trial % 7
            // Integers from a small range make ties frequent; negative costs too.
            let cost = (0..<n).map { _ in (0..<n).map { _ in Double(generator.next(below: 21) - 10) } }
            let assignment = Hungarian.minimumCostAssignment(cost)
            #expect(assignment.sorted() == Array(0..<n))
            let total = assignment.enumerated().map { cost[$0.offset][$0.element] }.reduce(0, +)
            #expect(total == bruteForceMinimum(cost), "cost \(cost)")
        }
    }

    @Test func maximumWeightAssignmentAvoidsExcludedEdges() {
        let weight: [[Double]] = [[9, 1, 1], [9, 2, 1], [9, 1, 3]]
        let allowed = [[false, true, true], [true, true, true], [true, true, false]]
        // Best allowed: row 2 → 0 (9), row 1 → 1 (2), row 0 → 2 (1) = 12; row 2 → 2 (3) is excluded.
        #expect(Hungarian.maximumWeightAssignment(weight, allowed: allowed) == [2, 1, 0])
        let impossible = [[false, false, true], [false, false, true], [true, true, true]]
        #expect(Hungarian.maximumWeightAssignment(weight, allowed: impossible) == nil)
    }
}
