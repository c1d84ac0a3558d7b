import Foundation
import Store
import Testing
@testable import Planning

/// A small synthetic dataset: `count` examples, ids "e0000"…, labels cycling over three names,
/// and groups of varying size when `grouped`.
func syntheticDataset(count: Int, grouped: Bool = false) -> Dataset {
    let examples = (0..<count).map { i in
        Example(id: String(format: "e%04d", i), text: "text \(i)", label: ["neg", "neu", "pos"][i % 3],
                group: grouped ? "g\(Int(Double(i).squareRoot()))" : nil)
    }
    return Dataset(examples: examples, source: "synthetic.jsonl", sha256: String(repeating: "0", count: 64))
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-plan-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite struct PlanTests {
    @Test func randomPartitionIsCompleteDisjointAndBalanced() throws {
        let dataset = syntheticDataset(count: 103)
        let plan = try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 3, sliceCount: 4, budget: 4, seed: 11))
        var seen: [String] = []
        for shard in 0..<3 {
            let sizes = (0..<4).map { plan.memberCount(shard: shard, slice: $0) }
            #expect(sizes.max()! - sizes.min()! <= 1)
            for slice in 0..<4 {
                let members = Array(plan.members(shard: shard, slice: slice))
                #expect(members == members.sorted())
                #expect(plan.sliceHash(shard: shard, slice: slice) == SliceHash.of(ids: members))
                for id in members { #expect(plan.location(of: id) == SliceLocation(shard: shard, slice: slice)) }
                seen += members
            }
        }
        #expect(seen.sorted() == dataset.examples.map(\.id))  // nothing dropped, nothing twice
        let shardSizes = (0..<3).map { h in (0..<4).map { plan.memberCount(shard: h, slice: $0) }.reduce(0, +) }
        #expect(shardSizes.sorted() == [34, 34, 35])
        #expect(plan.location(of: "missing") == nil)
        #expect(plan.labels.names == ["neg", "neu", "pos"])
    }

    @Test func seedDeterminesThePartition() throws {
        let dataset = syntheticDataset(count: 50)
        let parameters = { (seed: UInt64) in PlanParameters(shardCount: 2, sliceCount: 3, budget: 2, seed: seed) }
        let a = try Planner.makePlan(for: dataset, parameters: parameters(1))
        let b = try Planner.makePlan(for: dataset, parameters: parameters(1))
        let c = try Planner.makePlan(for: dataset, parameters: parameters(2))
        #expect(a.orderedIDs == b.orderedIDs && a.cellHashes == b.cellHashes)
        #expect(a.cellHashes != c.cellHashes)
    }

    @Test func groupAssignmentKeepsEachGroupInOneSlice() throws {
        let dataset = syntheticDataset(count: 400, grouped: true)  // 20 groups of 1…39 examples
        let plan = try Planner.makePlan(for: dataset, parameters: PlanParameters(
            shardCount: 2, sliceCount: 3, budget: 3, assignment: .group, seed: 4))
        var locationOfGroup: [String: SliceLocation] = [:]
        for example in dataset.examples {
            let location = try #require(plan.location(of: example.id))
            let group = try #require(example.group)
            if let earlier = locationOfGroup.updateValue(location, forKey: group) {
                #expect(earlier == location, "group \(group) split over \(earlier) and \(location)")
            }
        }
        #expect(plan.exampleCount == 400)
        // Greedy balancing: no slice is empty, and no slice exceeds the ideal by more than the largest group.
        let sizes = (0..<2).flatMap { h in (0..<3).map { plan.memberCount(shard: h, slice: $0) } }
        #expect(sizes.min()! > 0 && sizes.max()! <= 400 / 6 + 39)
    }

    @Test func lineageAnswersShardSliceHashAndPositions() throws {
        let plan = try Planner.makePlan(for: syntheticDataset(count: 40),
                                        parameters: PlanParameters(shardCount: 2, sliceCount: 4, budget: 4, seed: 3))
        let id = plan.members(shard: 1, slice: 2).first!
        let lineage = try #require(plan.lineage(of: id))
        #expect(lineage.location == SliceLocation(shard: 1, slice: 2))
        #expect(lineage.sliceHash == plan.sliceHash(shard: 1, slice: 2))
        // Cyclic sequences 0123, 3012, 2301, 1230: slice 2 is at stages 3, 4, 1, 2.
        #expect(lineage.stagePositions == [3, 4, 1, 2])
        #expect(plan.sequences(of: 1).map { plan.position(of: 2, in: $0)! } == [3, 4, 1, 2])
        #expect(!lineage.isTombstoned)
    }

    @Test func refusesWhatCannotBePlanned() throws {
        let dataset = syntheticDataset(count: 10)
        #expect(throws: PlanningError.notEnoughData(shardCount: 3, sliceCount: 4, needed: 12, available: 10, unit: "examples")) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 3, sliceCount: 4, budget: 1))
        }
        #expect(throws: PlanningError.budgetExceedsPermutations(budget: 7, sliceCount: 3, permutationCount: 6)) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 1, sliceCount: 3, budget: 7))
        }
        #expect(throws: PlanningError.invalidValue(flag: "--shards", value: "0", reason: "give 1…4096")) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 0, sliceCount: 3, budget: 1))
        }
        #expect(throws: PlanningError.invalidValue(flag: "--slices", value: "65", reason: "give 1…64")) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 1, sliceCount: 65, budget: 1))
        }
        #expect(throws: PlanningError.invalidValue(flag: "--exponent", value: "nan", reason: "give 0.001…1000000")) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 1, sliceCount: 2, budget: 1,
                                                                          bmsExponent: .nan))
        }
        #expect(throws: PlanningError.invalidPrior(file: "prior", reason: "sums to 0.9, not 1")) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(
                shardCount: 1, sliceCount: 2, budget: 2, selection: .bms, prior: [0.5, 0.4]))
        }
        #expect(throws: PlanningError.invalidValue(flag: "--assign", value: "group",
                                                   reason: "synthetic.jsonl has no \"group\" field; use --assign random")) {
            try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: 1, sliceCount: 2, budget: 1, assignment: .group))
        }
        let grouped = syntheticDataset(count: 10, grouped: true)  // groups g0 (1), g1 (3), g2 (5), g3 (1)
        #expect(throws: PlanningError.notEnoughData(shardCount: 5, sliceCount: 1, needed: 5, available: 4, unit: "groups")) {
            try Planner.makePlan(for: grouped, parameters: PlanParameters(shardCount: 5, sliceCount: 1, budget: 1, assignment: .group))
        }
        let message = PlanningError.budgetExceedsPermutations(budget: 7, sliceCount: 3, permutationCount: 6).description
        #expect(message == "--budget 7: 3 slices have only 6 distinct orders (L!). Lower --budget to at most 6 or raise --slices.")
    }

    @Test func priorFilesAreValidated() throws {
        func parse(_ text: String) throws -> [Double] { try Prior.parse(Data(text.utf8), sliceCount: 3, source: "p.json") }
        #expect(try parse("[0.5, 0.25, 0.25]") == [0.5, 0.25, 0.25])
        #expect(try parse(#"{"0": 0.5, "2": 0.5}"#) == [0.5, 0, 0.5])
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "names unknown slice \"3\" (slices are 0…2)")) {
            try parse(#"{"0": 0.5, "3": 0.5}"#)
        }
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "has 2 entries for 3 slices")) { try parse("[0.5, 0.5]") }
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "sums to 1.5, not 1")) { try parse("[0.5, 0.5, 0.5]") }
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "slice 1 has probability -0.5, not a number in [0, 1]")) {
            try parse("[1, -0.5, 0.5]")
        }
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "slice 0 has a value that is not a number")) {
            try parse(#"["a", 0.5, 0.5]"#)
        }
        // A slice given twice keeps neither silently.
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "gives slice \"0\" twice")) {
            try parse(#"{"0": 0.5, "2": 0.5, "0": 0.25}"#)
        }
        // Foundation's parser takes a comma before the closing bracket; the prior does not.
        #expect(throws: PlanningError.invalidPrior(file: "p.json", reason: "has a comma before a closing bracket at byte 17; remove it")) {
            try parse("[0.5, 0.25, 0.25,]")
        }
        // Given inline, the message names it so, not "--prior --prior".
        #expect(throws: PlanningError.invalidPrior(file: "(given inline)", reason: "is not a JSON array or object")) {
            try Prior.read(argument: "[0.5, 0.5", sliceCount: 3)
        }
    }

    @Test func tombstonesAreRecordedAndChecked() throws {
        var plan = try Planner.makePlan(for: syntheticDataset(count: 20), parameters: PlanParameters(shardCount: 2, sliceCount: 2, budget: 2))
        try plan.addTombstones(["e0005", "e0001", "e0005"])
        #expect(plan.tombstones == ["e0001", "e0005"])
        #expect(plan.isTombstoned("e0005") && plan.lineage(of: "e0001")?.isTombstoned == true)
        #expect(throws: PlanningError.self) { try plan.addTombstones(["nope"]) }
    }
}
