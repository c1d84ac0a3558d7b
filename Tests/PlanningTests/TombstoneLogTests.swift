import Foundation
import Store
import Testing
@testable import Planning

/// The tombstone log: tombstones recorded by appending to `plan.tombstones`, read back as the
/// union with `plan.h5`, a plan without a log given one once, damage reported.
@Suite struct TombstoneLogTests {
    /// A saved plan without a log (60 examples, 3 shards × 4 slices) with "e0007" tombstoned in plan.h5.
    private func savedPlan() throws -> (Plan, URL) {
        let directory = try temporaryDirectory()
        var plan = try Planner.makePlan(for: syntheticDataset(count: 60), parameters: PlanParameters(
            shardCount: 3, sliceCount: 4, budget: 4, seed: 99))
        try plan.addTombstones(["e0007"])
        let url = Plan.url(inRun: directory)
        try plan.save(to: url)
        return (plan, url)
    }

    /// The plan file's `format_version` and `tombstone_log` attributes.
    private func format(_ url: URL) throws -> [Int64] {
        let file = try HDF5File.open(url)
        defer { try? file.close() }
        return [try file.intAttribute(named: "format_version"), try file.intAttribute(named: "tombstone_log")]
    }

    private func inode(_ url: URL) throws -> UInt64 {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
    }

    private func logText(_ url: URL) throws -> String {
        try String(contentsOf: TombstoneLog.url(forPlanAt: url), encoding: .utf8)
    }

    @Test func firstRecordCreatesTheLogThenOnlyTheLogGrows() throws {
        var (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        #expect(try format(url) == [4, 0] && plan.tombstoneLogEnd == nil)

        // No log → a log: plan.h5 rewritten once with the new tombstone, an empty log beside it.
        #expect(try plan.recordTombstones(["e0042", "e0007"], savedAt: url))
        #expect(try format(url) == [4, 1])
        #expect(try logText(url) == "lethe-tombstones 1\n")
        #expect(plan.tombstones == ["e0007", "e0042"])
        let upgraded = try inode(url)

        // With a log: appended to it (sorted, new ids only), plan.h5 untouched.
        #expect(try !plan.recordTombstones(["e0013", "e0001", "e0042", "e0013"], savedAt: url))
        #expect(try !plan.recordTombstones([String](), savedAt: url))
        #expect(try logText(url) == "lethe-tombstones 1\ne0001\ne0013\n")
        #expect(try inode(url) == upgraded)
        let loaded = try Plan.load(from: url)
        #expect(loaded.tombstones == ["e0001", "e0007", "e0013", "e0042"])
        #expect(loaded.tombstones == plan.tombstones)
        #expect(loaded.tombstoneLogEnd == plan.tombstoneLogEnd)
        #expect(["e0001", "e0007", "e0013", "e0042"].allSatisfy(loaded.isTombstoned))
        #expect(loaded.hitSlices == plan.hitSlices && loaded.lineage(of: "e0013")?.isTombstoned == true)

        // Unknown ids are refused before anything is written.
        #expect(throws: PlanningError.self) { try plan.recordTombstones(["nobody"], savedAt: url) }
        #expect(try logText(url) == "lethe-tombstones 1\ne0001\ne0013\n")

        // A rewrite of plan.h5 (a retrain) keeps the log and every tombstone, log included.
        try plan.excludeFromSlices(["e0013"])
        try plan.save(to: url)
        #expect(try format(url) == [4, 1])
        let rebuilt = try Plan.load(from: url)
        #expect(rebuilt.tombstones == ["e0001", "e0007", "e0013", "e0042"] && rebuilt.excludedIDs == ["e0013"])
    }

    @Test func anotherWritersAppendsAreReadIncrementally() throws {
        var (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try plan.recordTombstones(["e0002"], savedAt: url)
        var reader = try Plan.load(from: url)
        try plan.recordTombstones(["e0003", "e0004"], savedAt: url)  // "another process"
        #expect(!reader.isTombstoned("e0003"))
        try reader.readNewTombstones(savedAt: url)
        #expect(reader.tombstones == ["e0002", "e0003", "e0004", "e0007"])
        #expect(reader.tombstoneLogEnd == plan.tombstoneLogEnd)
        try reader.readNewTombstones(savedAt: url)  // nothing new
        #expect(reader.tombstones == plan.tombstones)
        // A log that shrank under a reader is refused, not silently re-read.
        let log = TombstoneLog.url(forPlanAt: url)
        try Data("lethe-tombstones 1\n".utf8).write(to: log)
        #expect(throws: PlanningError.self) { try reader.readNewTombstones(savedAt: url) }
    }

    /// A line cut short by a crash is ignored by readers and overwritten by the next append.
    @Test func aCutShortLineIsIgnoredThenOverwritten() throws {
        var (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try plan.recordTombstones(["e0002"], savedAt: url)
        let log = TombstoneLog.url(forPlanAt: url)
        let handle = try FileHandle(forWritingTo: log)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("e00".utf8))
        try handle.close()
        let loaded = try Plan.load(from: url)
        #expect(loaded.tombstones == ["e0002", "e0007"])
        try plan.recordTombstones(["e0005"], savedAt: url)  // (e0002 went into plan.h5 with the upgrade)
        #expect(try logText(url) == "lethe-tombstones 1\ne0005\n")
        #expect(try Plan.load(from: url).tombstones == ["e0002", "e0005", "e0007"])
    }

    @Test func damagedOrMissingLogsAreReportedByName() throws {
        var (plan, url) = try savedPlan()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try plan.recordTombstones(["e0002"], savedAt: url)
        let log = TombstoneLog.url(forPlanAt: url)
        #expect(log.lastPathComponent == "plan.tombstones")

        try Data("lethe-tombstones 1\ne0002\nzzz\n".utf8).write(to: log)
        #expect(throws: PlanningError.invariantViolated(file: log.path, invariant: "tombstones",
                                                        detail: "deleted id \"zzz\" is not in the plan")) {
            try Plan.load(from: url)
        }
        for damaged in ["", String(repeating: "x", count: 5000)] {
            try Data(("lethe-tombstones 1\ne0002\n" + damaged + "\n").utf8).write(to: log)
            #expect(throws: PlanningError.invariantViolated(file: log.path, invariant: "tombstones",
                                                            detail: "line 3 is not an example id")) {
                try Plan.load(from: url)
            }
        }
        for (bytes, found) in [(Data([0xEF, 0xBB, 0xBF]) + Data("lethe-tombstones 1\ne0002\n".utf8),
                                "a file starting with a byte-order mark (saved by an editor?)"),
                               (Data("lethe-tombstones 1\r\ne0002\r\n".utf8), "a file with CRLF line ends (saved by an editor?)")] {
            try bytes.write(to: log)
            #expect(throws: PlanningError.unsupportedFormat(file: log.path, found: found, expected: "a Lethe tombstone log")) {
                try Plan.load(from: url)
            }
        }
        try Data("e0002\n".utf8).write(to: log)
        #expect(throws: PlanningError.unsupportedFormat(file: log.path, found: "a file not starting with \"lethe-tombstones 1\"",
                                                        expected: "a Lethe tombstone log")) {
            try Plan.load(from: url)
        }
        try FileManager.default.removeItem(at: log)
        do {
            _ = try Plan.load(from: url)
            Issue.record("a format-3 plan without its log must not load")
        } catch let PlanningError.unreadableFile(file, reason) {
            #expect(file == log.path && reason.contains("kept beside plan.h5"))
        }
    }
}
