import Foundation
import Planning
import RunFixtures
import Testing
import Training
@testable import Forgetting

/// `Forgetter` on a tiny run: ledger first, tombstones, composition, erasure, receipt.
@Suite struct ForgetterTests {
    @Test func forgettingOneExampleTruncatesPublishesAndErases() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let id = "ex-05"
        let location = try #require(run.plan.location(of: id))
        var acceptedHead: LedgerHead?
        let receipt = try Forgetter(run: run.directory).forget([ForgetRequest(target: .example(id), requestID: "r1")],
                                                               nowMilliseconds: 1_000, accepted: { acceptedHead = $0 })
        #expect(acceptedHead?.sequenceNumber == 1)
        #expect(receipt.requests.map(\.status) == [.forgotten])
        #expect(receipt.forgottenExamples == [id])
        #expect(receipt.affectedSlices == [[location.shard, location.slice]])
        #expect(try Plan.load(from: Plan.url(inRun: run.directory)).isTombstoned(id))

        let sequences = run.plan.sequences(of: location.shard)
        let expected = DeletionLogic.apply(shard: location.shard, sequences: sequences,
                                           currentLengths: sequences.map(\.count), hitSlices: [location.slice])
        let served = try run.served()
        #expect(served.ledgerHead.sequenceNumber == 1)
        for entry in served.shards {
            if entry.shard == location.shard {
                #expect(entry.sequence == expected.served?.sequence)
                #expect(entry.prefixLength == expected.served?.prefixLength ?? 0)
                let prefix = Array(sequences[entry.sequence ?? 0].prefix(entry.prefixLength))
                #expect(!prefix.contains(location.slice))
                #expect(entry.stageKeys == (1...max(1, prefix.count)).prefix(prefix.count)
                    .map { run.stageKey(shard: entry.shard, prefix: Array(prefix.prefix($0))) })
            } else {
                #expect(entry.prefixLength == run.plan.sliceCount)  // untouched shard
            }
        }
        // Exactly the prefixes holding the slice are gone; everything else is still there.
        for shard in 0..<run.plan.shardCount {
            for sequence in run.plan.sequences(of: shard) {
                for length in 1...sequence.count {
                    let prefix = Array(sequence.prefix(length))
                    let sawIt = shard == location.shard && prefix.contains(location.slice)
                    #expect(run.stageExists(shard: shard, prefix: prefix) == !sawIt, "shard \(shard) prefix \(prefix)")
                }
            }
        }
        #expect(receipt.erasedStages.count == expected.erasedPrefixes.count)
        #expect(receipt.erasedStages.allSatisfy { $0.deletedNow })

        let ledger = try Ledger.open(at: run.directory.appendingPathComponent("ledger.sqlite"))
        defer { try? ledger.close() }
        #expect(try ledger.verifyChain().isIntact)
        #expect(try ledger.entries(forExampleID: id).map(\.kind) == [.request])
        let stored = try #require(try ledger.entry(at: 2))
        #expect(stored.kind == .receipt)
        #expect(try stored.decodePayload(as: ForgetReceipt.self) == receipt)
        #expect(receipt.ledgerSequence == 1 && receipt.ledgerHash == acceptedHead?.hash)
    }

    @Test func repeatsChangeNothingAndUnknownIdsAreReported() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let forgetter = Forgetter(run: run.directory)
        _ = try forgetter.forget([ForgetRequest(target: .example("ex-11"))], nowMilliseconds: 1)
        let before = try run.served()
        let receipt = try forgetter.forget([ForgetRequest(target: .example("ex-11"), requestID: "again"),
                                            ForgetRequest(target: .example("nobody"), requestID: "who")],
                                           nowMilliseconds: 2)
        #expect(receipt.requests.map(\.status) == [.alreadyForgotten, .unknown])
        #expect(receipt.forgottenExamples.isEmpty && receipt.truncatedSequences.isEmpty)
        #expect(receipt.erasedStages.isEmpty)
        #expect(receipt.unknownIDs == ["nobody"])
        #expect(try run.served().shards == before.shards)

        // A repeat inside one batch: the first request forgets, the second changes nothing.
        let twice = try forgetter.forget([ForgetRequest(target: .example("ex-12")), ForgetRequest(target: .example("ex-12"))],
                                         nowMilliseconds: 3)
        #expect(twice.requests.map(\.status) == [.forgotten, .alreadyForgotten])
    }

    /// A request whose request_id and target are already in the ledger (a log run again, a
    /// client's retry) is not recorded again: its outcome names the first one's position. The
    /// same request_id with another target is a request of its own.
    @Test func aRequestRecordedBeforeUnderItsIDIsNotRecordedAgain() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let forgetter = Forgetter(run: run.directory)
        defer { try? forgetter.close() }
        let first = try forgetter.forget([ForgetRequest(target: .example("ex-11"), requestID: "ticket-1"),
                                          ForgetRequest(target: .example("nobody"), requestID: "ticket-2")], nowMilliseconds: 1)
        #expect(first.requests.map(\.status) == [.forgotten, .unknown])
        let again = try forgetter.forget([ForgetRequest(target: .example("ex-11"), requestID: "ticket-1"),
                                          ForgetRequest(target: .example("nobody"), requestID: "ticket-2"),
                                          ForgetRequest(target: .example("ex-12"), requestID: "ticket-1"),
                                          ForgetRequest(target: .example("ex-13"), requestID: "ticket-3"),
                                          ForgetRequest(target: .example("ex-13"), requestID: "ticket-3")], nowMilliseconds: 2)
        let byID = again.requests.map { "\($0.requestID) \($0.id ?? "") \($0.status.rawValue) #\($0.ledgerSequence)" }
        #expect(byID == ["ticket-1 ex-12 forgotten #4", "ticket-3 ex-13 forgotten #5",
                         "ticket-1 ex-11 already_recorded #1", "ticket-2 nobody already_recorded #2",
                         "ticket-3 ex-13 already_recorded #5"], "\(byID)")
        #expect(again.summary.contains("5 request(s): 2 forgotten, 0 already forgotten, 0 unknown, 3 already recorded"))
        let ledger = try Ledger.openForReading(at: run.directory.appendingPathComponent("ledger.sqlite"))
        defer { try? ledger.close() }
        #expect(try ledger.entries(forRequestID: "ticket-1").map(\.sequenceNumber) == [1, 4])
        #expect(try ledger.entries(forRequestID: "ticket-3").map(\.sequenceNumber) == [5])
        // Only repeats: nothing is recorded, and the receipt still accounts for every request.
        let repeats = try forgetter.forget([ForgetRequest(target: .example("ex-11"), requestID: "ticket-1")], nowMilliseconds: 3)
        #expect(repeats.requests.map(\.status) == [.alreadyRecorded] && repeats.requests.first?.ledgerSequence == 1)
        #expect(try ledger.entries(forRequestID: "ticket-1").count == 2)
    }

    @Test func groupForgetDeletesEveryMember() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let receipt = try Forgetter(run: run.directory).forget(
            [ForgetRequest(target: .group("movie-2")), ForgetRequest(target: .group("no-such-movie"))],
            groups: run.groups, nowMilliseconds: 5)
        let members = run.dataset.examples.filter { $0.group == "movie-2" }.map(\.id)
        #expect(members.count == 6)
        #expect(receipt.forgottenExamples == members.sorted())
        #expect(receipt.unknownGroups == ["no-such-movie"])
        let plan = try Plan.load(from: Plan.url(inRun: run.directory))
        #expect(members.allSatisfy(plan.isTombstoned))
        let hit = Set(members.compactMap(plan.location(of:)))
        for entry in try run.served().shards {
            guard let sequence = entry.sequence else { continue }
            let prefix = plan.sequences(of: entry.shard)[sequence].prefix(entry.prefixLength)
            #expect(!prefix.contains { hit.contains(SliceLocation(shard: entry.shard, slice: $0)) })
        }
    }

    /// A run killed after recording its requests (and even after tombstoning) is finished by
    /// the next forget: the pending request gets its truncation, erasure and receipt.
    @Test func pendingRequestsOfAnInterruptedRunAreFinished() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let id = "ex-20"
        let location = try #require(run.plan.location(of: id))
        do {  // What an interrupted forget leaves: the request in the ledger, the tombstone saved.
            let ledger = try Ledger.open(at: run.directory.appendingPathComponent("ledger.sqlite"))
            let record = RequestRecord(requestID: "lost", id: id, group: nil, timestamp: nil, examples: [id])
            _ = try ledger.append(LedgerDraft(kind: .request, timestampMilliseconds: 1, payload: record.json,
                                              keys: [.requestID("lost"), .exampleID(id)]))
            try ledger.close()
            var plan = run.plan
            try plan.addTombstones([id])
            try plan.save(to: Plan.url(inRun: run.directory))
        }
        let receipt = try Forgetter(run: run.directory).forget([], nowMilliseconds: 2)
        #expect(receipt.recoveredRequestCount == 1)
        #expect(receipt.requests.map(\.status) == [.forgotten])
        #expect(receipt.affectedSlices == [[location.shard, location.slice]])
        #expect(!receipt.truncatedSequences.isEmpty)
        let entry = try #require(try run.served().entry(shard: location.shard))
        let prefix = run.plan.sequences(of: location.shard)[entry.sequence ?? 0].prefix(entry.prefixLength)
        #expect(!prefix.contains(location.slice))
        // Once covered by a receipt it is no longer pending; a resume with nothing to do still
        // reports the tombstones as every receipt does.
        let nothing = try Forgetter(run: run.directory).forget([], nowMilliseconds: 3)
        #expect(nothing.requests.isEmpty)
        #expect(nothing.tombstoneCount == 1 && nothing.tombstoneDigest == Forgetter.tombstoneDigest([id]))
    }

    @Test func statusReportsTruncatedSequencesDeadShardsAndPending() throws {
        let run = try TinyRun()
        defer { run.remove() }
        let fresh = try ForgettingStatus.load(run: run.directory)
        #expect(fresh.sequencesToRetrain.isEmpty && fresh.deadShards.isEmpty && fresh.pendingRequestCount == 0)
        #expect(abs(fresh.deletionRateRemaining - DeletionRateTheory.s3t(shardCount: 2, sliceCount: 3, budget: 3)) < 1e-9)
        // Every slice of shard 0 hit: the shard dies, its 3 sequences need retraining.
        let ids = (0..<3).compactMap { run.plan.members(shard: 0, slice: $0).first }
        let receipt = try Forgetter(run: run.directory).forget(ids.map { ForgetRequest(target: .example($0)) },
                                                               nowMilliseconds: 1)
        let status = try ForgettingStatus.load(run: run.directory)
        #expect(status.deadShards == [0] && receipt.deadShards == [0])
        #expect(status.sequencesToRetrain == [[0, 0, 0], [0, 1, 0], [0, 2, 0]])
        #expect(status.deletionRateRemaining == receipt.deletionRateRemaining)
        #expect(abs(status.deletionRateRemaining - 6 * DeletionRateTheory.harmonic(3)) < 1e-9)
        #expect(status.deletedExampleCount == 3)
    }

    @Test func requestLogsAreValidatedBeforeAnythingHappens() throws {
        let good = Data("""
            {"id": "ex-01", "request_id": "a", "timestamp": 1700000000000}

            {"group": "movie-1", "timestamp": "2026-11-22T05:00:00Z"}
            """.utf8)
        let requests = try RequestLog.parse(good, source: "log.jsonl")
        #expect(requests == [ForgetRequest(target: .example("ex-01"), requestID: "a", timestamp: "1700000000000"),
                             ForgetRequest(target: .group("movie-1"), timestamp: "2026-11-22T05:00:00Z")])
        let cases: [(String, Int, String)] = [
            ("{\"id\": \"a\"}\n{\"id\": \"b\"\n", 2, "not valid JSON"),
            ("{\"id\": \"a\", \"group\": \"g\"}", 1, "has both \"id\" and \"group\"; one request names one of them"),
            ("{\"id\": \"a\"}\n\n{\"idd\": \"b\"}", 3, "unknown key \"idd\" (allowed: id, group, request_id, timestamp)"),
            ("[1]", 1, "not a JSON object"),
            // JSONSerialization would keep one of the two ids and drop the other silently.
            ("{\"id\": \"sport/189\", \"id\": \"tech/171\"}", 1, "the key \"id\" appears twice; give one request per line"),
            ("{\"id\": \"a\", \"request_id\": \"r\", \"request\\u005fid\": \"s\"}", 1,
             "the key \"request_id\" appears twice; give one request per line"),
            // Foundation's parser takes a comma before the closing brace; the log does not.
            ("{\"id\": \"a\"}\n{\"id\": \"b\", \"request_id\": \"t-1\",}", 2,
             "the line has a comma before a closing bracket at byte 32; remove it"),
            ("{\"id\": 5}", 1, "\"id\" must be a non-empty string"),
            ("{\"request_id\": \"x\"}", 1, "needs \"id\" or \"group\""),
            ("{\"id\": \"a\\u0000b\"}", 1, "\"id\" holds the control character U+0000; ids, groups, request ids and "
                + "timestamps hold none"),
            ("{\"id\": \"a\"}\n{\"id\": \"a\", \"request_id\": \"\\u001b[31m\"}", 2,
             "\"request_id\" holds the control character U+001B; ids, groups, request ids and timestamps hold none"),
            ("{\"group\": \"" + String(repeating: "g", count: 5000) + "\"}", 1, "\"group\" is 5000 bytes long; at most 4096"),
        ]
        for (text, line, reason) in cases {
            #expect(throws: ForgettingError.malformedRequest(file: "log.jsonl", line: line, reason: reason)) {
                try RequestLog.parse(Data(text.utf8), source: "log.jsonl")
            }
        }
    }
}


