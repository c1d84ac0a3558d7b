import Foundation
import Planning
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// A `Forgetter` kept for many forgets (as a service holds it): it keeps the plan and the ledger
/// open, yet sees what other processes changed, and writes tombstones to the plan's log.
@Suite struct LongLivedForgetterTests {
    private func inode(_ url: URL) throws -> UInt64 {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
    }

    @Test func seesForgetsOfAnotherForgetterAndWritesTheSameState() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let service = Forgetter(run: run.directory)
        let other = Forgetter(run: run.directory)  // stands for another process
        defer { try? service.close(); try? other.close() }

        _ = try service.forget([ForgetRequest(target: .example("ex-01"), requestID: "a")], nowMilliseconds: 1)
        let planURL = Plan.url(inRun: run.directory)
        let upgraded = try inode(planURL)
        _ = try other.forget([ForgetRequest(target: .example("ex-02"), requestID: "b")], nowMilliseconds: 2)
        // The service sees the other forget: a repeat of ex-02 changes nothing.
        let repeated = try service.forget([ForgetRequest(target: .example("ex-02"), requestID: "c"),
                                           ForgetRequest(target: .example("ex-03"), requestID: "d")], nowMilliseconds: 3)
        #expect(repeated.requests.map(\.status) == [.alreadyForgotten, .forgotten])
        #expect(repeated.forgottenExamples == ["ex-03"])
        #expect(repeated.recoveredRequestCount == 0)

        // After the first forget plan.h5 is never rewritten: the tombstones are in its log.
        #expect(try inode(planURL) == upgraded)
        let plan = try Plan.load(from: planURL)
        #expect(plan.tombstones == ["ex-01", "ex-02", "ex-03"])
        #expect(try String(contentsOf: TombstoneLog.url(forPlanAt: planURL), encoding: .utf8)
                == "lethe-tombstones 1\nex-02\nex-03\n")

        // What was published is exactly what a fresh engine derives from the files.
        let served = try run.served()
        let hits = Set(["ex-01", "ex-02", "ex-03"].compactMap(plan.location(of:)))
        let sequences = (0..<plan.shardCount).map(plan.sequences(of:))
        let expected = DeletionLogic.apply(sequences: sequences, currentLengths: sequences.map { $0.map(\.count) }, hits: hits)
        #expect(served.shards.map(\.prefixLength) == expected.map { $0.served?.prefixLength ?? 0 })
        #expect(served.shards.map(\.sequence) == expected.map { $0.served?.sequence })
        #expect(served.ledgerHead.sequenceNumber == repeated.ledgerSequence)
        let fresh = try Forgetter(run: run.directory).forget([], nowMilliseconds: 4)
        #expect(fresh.requests.isEmpty && fresh.served == repeated.served)

        // The ledger is one chain; every request has its receipt.
        let ledger = try Ledger.open(at: run.directory.appendingPathComponent("ledger.sqlite"))
        defer { try? ledger.close() }
        #expect(try ledger.verifyChain().isIntact)
        #expect(try ledger.entries().map(\.kind) == [.request, .receipt, .request, .receipt, .request, .request, .receipt])
    }

    /// A plan rewritten by another writer (a retrain publishing rebuilt slices) is reloaded.
    @Test func reloadsAPlanRewrittenByAnotherWriter() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let service = Forgetter(run: run.directory)
        defer { try? service.close() }
        _ = try service.forget([ForgetRequest(target: .example("ex-05"))], nowMilliseconds: 1)
        // Another writer rebuilds ex-05's slice (as lethe retrain does) and saves the plan.
        let planURL = Plan.url(inRun: run.directory)
        var rebuilt = try Plan.load(from: planURL)
        try rebuilt.excludeFromSlices(["ex-05"])
        try rebuilt.save(to: planURL)
        // Forget an example of another shard: the rebuilt shard serves its full length again,
        // under stage keys made from the rebuilt slice hash — if the service used the new plan.
        let rebuiltShard = try #require(rebuilt.location(of: "ex-05")).shard
        let id = try #require(run.dataset.examples.map(\.id).first { rebuilt.location(of: $0)?.shard != rebuiltShard })
        let receipt = try service.forget([ForgetRequest(target: .example(id))], nowMilliseconds: 2)
        let location = try #require(rebuilt.location(of: id))
        #expect(try run.served().entry(shard: rebuiltShard)?.prefixLength == rebuilt.sliceCount)
        for entry in try run.served().shards where entry.sequence != nil {
            let sequence = rebuilt.sequences(of: entry.shard)[entry.sequence ?? 0]
            #expect(entry.stageKeys == (0..<entry.prefixLength).map { length in
                StageKey(prefixSliceHashes: sequence.prefix(length + 1).map { rebuilt.sliceHash(shard: entry.shard, slice: $0) })
            })
        }
        #expect(receipt.affectedSlices == [[location.shard, location.slice]])
        #expect(try Plan.load(from: planURL).tombstones == ["ex-05", id].sorted())
    }
}
