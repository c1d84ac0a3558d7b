import Foundation
import Store
import Testing
@testable import Planning

@Suite struct PlanStorageTests {
    private func savedPlan(selection: SequenceSelection = .bms) throws -> (Plan, URL) {
        let directory = try temporaryDirectory()
        var plan = try Planner.makePlan(for: syntheticDataset(count: 60), parameters: PlanParameters(
            shardCount: 3, sliceCount: 4, budget: 6, selection: selection,
            prior: selection == .bms ? [0.1, 0.2, 0.3, 0.4] : nil, seed: 99))
        try plan.addTombstones(["e0007"])
        let url = Plan.url(inRun: directory)
        try plan.save(to: url)
        return (plan, url)
    }

    @Test func roundTripKeepsEverything() throws {
        let (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let loaded = try Plan.load(from: url)
        #expect(loaded.parameters == plan.parameters)
        #expect(loaded.orderedIDs == plan.orderedIDs && loaded.cellOffsets == plan.cellOffsets)
        #expect(loaded.cellHashes == plan.cellHashes && loaded.shardSequences == plan.shardSequences)
        #expect(loaded.tombstones == ["e0007"] && loaded.labels == plan.labels)
        #expect(loaded.datasetSHA256 == plan.datasetSHA256 && loaded.datasetSource == "synthetic.jsonl")
        #expect(loaded.lineage(of: "e0042") == plan.lineage(of: "e0042"))
        let file = try HDF5File.open(url)
        #expect(try file.stringAttribute(named: "format") == "lethe-plan")
        #expect(try file.intAttribute(named: "format_version") == 4 && file.intAttribute(named: "tombstone_log") == 0)
        #expect(try !file.exists("examples/excluded"))
        #expect(try file.shape(of: "sequences") == [3, 6, 4])
    }

    /// Rewrites one dataset of a saved plan, as a person editing the file by hand would.
    /// Edits a plan in place and seals it again, as a deliberate editor would: what is left to
    /// catch the edit is the plan's own checks (an edit without resealing is refused earlier,
    /// by the seal: `anUnsealedEditIsRefusedBeforeHDF5ReadsTheFile`).
    private func edit(_ url: URL, _ body: (HDF5File) throws -> Void) throws {
        let file = try HDF5File.open(url, mode: .readWrite)
        try body(file)
        try file.close()
        try HDF5Seal.seal(fileAt: url)
    }

    @Test func anUnsealedEditIsRefusedBeforeHDF5ReadsTheFile() throws {
        let (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        #expect(try Plan.load(from: url).orderedIDs == plan.orderedIDs)
        let file = try HDF5File.open(url, mode: .readWrite)
        try file.setAttribute(.int(9), named: "budget")
        try file.close()
        #expect {
            try Plan.load(from: url)
        } throws: { error in
            guard case PlanningError.damagedPlan(let file, let reason) = error else { return false }
            return file == url.path && reason.contains("damaged or edited")
                && "\(error)".contains("Restore it from a backup") && "\(error)".hasPrefix(url.path)
        }
    }

    private func hasExcluded(_ url: URL) throws -> Bool {
        let file = try HDF5File.open(url)
        defer { try? file.close() }
        return try file.exists("examples/excluded")
    }

    private func invariantBroken(_ url: URL) -> String? {
        do {
            _ = try Plan.load(from: url)
            return nil
        } catch let PlanningError.invariantViolated(_, invariant, _) {
            return invariant
        } catch {
            return "other error: \(error)"
        }
    }

    @Test func handEditedPlansFailWithTheBrokenInvariant() throws {
        let (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let original = try Data(contentsOf: url)
        func restore() throws { try original.write(to: url) }

        // An id moved into another slice: the first slice's hash no longer matches.
        var ids = plan.orderedIDs
        ids.swapAt(0, ids.count - 1)
        try edit(url) { try $0.remove("examples/ids"); try $0.write(ids, at: "examples/ids") }
        #expect(invariantBroken(url) == "sorted slices" || invariantBroken(url) == "hashes match members")

        // Same members, one hash altered.
        try restore()
        var hashes = plan.cellHashes
        hashes[5] = String(repeating: "f", count: 64)
        try edit(url) { try $0.remove("slices/sha256"); try $0.write(hashes, at: "slices/sha256") }
        #expect(invariantBroken(url) == "hashes match members")

        // An id duplicated into a second slice (replacing one, so counts still match).
        try restore()
        ids = plan.orderedIDs
        ids[plan.cellOffsets[4]] = ids[0]
        ids[plan.cellOffsets[4]..<plan.cellOffsets[5]].sort()
        try edit(url) { try $0.remove("examples/ids"); try $0.write(ids, at: "examples/ids") }
        #expect(invariantBroken(url) == "disjoint")

        // A sequence that is not a permutation.
        try restore()
        var flat = plan.shardSequences.joined().joined().map { Int64($0) }
        flat[1] = flat[0]
        try edit(url) { try $0.remove("sequences"); try $0.write(flat, shape: [3, 6, 4], at: "sequences") }
        #expect(invariantBroken(url) == "sequences are permutations")

        // An example dropped: offsets and count disagree.
        try restore()
        try edit(url) { try $0.setAttribute(.int(59), named: "example_count") }
        #expect(invariantBroken(url) == "complete")

        // Unbalanced slices under random assignment.
        try restore()
        var offsets = plan.cellOffsets.map { Int64($0) }
        offsets[1] += 2
        try edit(url) { try $0.remove("slices/offsets"); try $0.write(offsets, shape: [offsets.count], at: "slices/offsets") }
        #expect(invariantBroken(url) == "balanced slices")

        // A tombstone for an unknown id.
        try restore()
        try edit(url) { try $0.remove("tombstones"); try $0.write(["zzz"], at: "tombstones") }
        #expect(invariantBroken(url) == "tombstones")

        // The message names the file, the invariant and what to do.
        let error = PlanningError.invariantViolated(file: "run/plan.h5", invariant: "disjoint", detail: "x")
        #expect(error.description.hasPrefix("run/plan.h5: plan invariant \"disjoint\" broken: x."))
    }

    /// Rebuilt slices (`lethe retrain`): new members and hashes, `examples/excluded`, invariants.
    @Test func excludedIDsChangeSliceHashesAndRoundTrip() throws {
        var (plan, url) = try savedPlan(selection: .cyclic)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        #expect(try !hasExcluded(url))
        let location = try #require(plan.location(of: "e0007"))
        let before = plan.sliceHash(shard: location.shard, slice: location.slice)
        #expect(plan.hitSlices == [location])
        #expect(throws: PlanningError.self) { try plan.excludeFromSlices(["e0008"]) }  // not tombstoned
        #expect(try plan.excludeFromSlices(["e0007"]) == [location])
        let members = plan.currentMembers(shard: location.shard, slice: location.slice)
        #expect(!members.contains("e0007") && members.count == plan.memberCount(shard: location.shard, slice: location.slice) - 1)
        #expect(plan.sliceHash(shard: location.shard, slice: location.slice) == SliceHash.of(ids: members))
        #expect(plan.sliceHash(shard: location.shard, slice: location.slice) != before)
        #expect(plan.hitSlices.isEmpty && plan.isExcluded("e0007") && plan.location(of: "e0007") == location)
        try plan.save(to: url)
        let loaded = try Plan.load(from: url)
        #expect(try hasExcluded(url))
        #expect(loaded.excludedIDs == ["e0007"])
        #expect(loaded.sliceHash(shard: location.shard, slice: location.slice) == plan.sliceHash(shard: location.shard, slice: location.slice))
        // An excluded id that is not tombstoned breaks the plan.
        try edit(url) { try $0.remove("tombstones"); try $0.write(["e0001"], at: "tombstones") }
        #expect(invariantBroken(url) == "excluded")
    }

    /// Sealed plans of the versions before 4 read as they always did: version 1 from plan.h5
    /// alone, version 3 with its tombstone log.
    @Test func sealedPlansOfEarlierVersionsAreRead() throws {
        var (plan, url) = try savedPlan(selection: .cyclic)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try edit(url) { try $0.setAttribute(.int(1), named: "format_version") }
        let version1 = try Plan.load(from: url)
        #expect(version1.tombstones == ["e0007"] && version1.tombstoneLogEnd == nil)
        try plan.recordTombstones(["e0001"], savedAt: url)  // plan.h5 rewritten with a log
        try plan.recordTombstones(["e0002"], savedAt: url)  // appended to the log only
        try edit(url) { try $0.setAttribute(.int(3), named: "format_version") }
        let version3 = try Plan.load(from: url)
        #expect(version3.tombstones == ["e0001", "e0002", "e0007"] && version3.tombstoneLogEnd == plan.tombstoneLogEnd)
    }

    @Test func refusesOtherFormatsAndVersions() throws {
        let (_, url) = try savedPlan(selection: .cyclic)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try edit(url) { try $0.setAttribute(.int(5), named: "format_version") }
        #expect(throws: PlanningError.unsupportedFormat(file: url.path, found: "version 5", expected: "version 1…4")) {
            try Plan.load(from: url)
        }
        try edit(url) { try $0.setAttribute(.string("lethe-stage"), named: "format") }
        #expect(throws: PlanningError.unsupportedFormat(file: url.path, found: "format \"lethe-stage\"",
                                                        expected: "format \"lethe-plan\"")) {
            try Plan.load(from: url)
        }
    }
}

@Suite struct PlanRunTests {
    /// `lethe plan` on a run directory that already holds a plan is refused unless forced.
    @Test func refusesAnExistingPlanUnlessForced() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("d.jsonl")
        let lines = (0..<12).map { #"{"id": "x\#($0)", "text": "t\#($0)", "label": "\#($0 % 2 == 0 ? "a" : "b")"}"# }
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        let run = directory.appendingPathComponent("run")
        let parameters = PlanParameters(shardCount: 2, sliceCount: 3, budget: 3, seed: 5)
        let first = try Planner.planRun(dataURL: data, parameters: parameters, runDirectory: run, force: false)
        #expect(throws: PlanningError.planExists(path: run.path)) {
            try Planner.planRun(dataURL: data, parameters: parameters, runDirectory: run, force: false)
        }
        let forced = try Planner.planRun(dataURL: data, parameters: PlanParameters(shardCount: 3, sliceCount: 2, budget: 2),
                                         runDirectory: run, force: true)
        #expect(forced.shardCount == 3 && first.shardCount == 2)
        let loaded = try Plan.load(from: Plan.url(inRun: run))
        #expect(loaded.shardCount == 3 && loaded.exampleCount == 12 && loaded.labels.names == ["a", "b"])
        #expect(loaded.datasetSource == data.path)
        // No temporary file is left beside the plan.
        #expect(try FileManager.default.contentsOfDirectory(atPath: run.path) == ["plan.h5"])
    }
}
