import Forgetting
import Foundation
import Planning

/// One finding of `lethe verify`: what is wrong and where.
public struct VerificationProblem: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        /// The ledger's hash chain is broken (edited, deleted, reordered or inserted rows).
        case ledgerChain = "ledger_chain"
        /// A receipt quotes a ledger head that the ledger no longer has.
        case receiptHead = "receipt_head"
        /// A stage file's tensors do not hash to the hash recorded in it.
        case tensorHash = "tensor_hash"
        /// A stage file cannot be read as a stage checkpoint.
        case unreadableStage = "unreadable_stage"
        /// The served composition names a stage whose file is missing.
        case missingServedStage = "missing_served_stage"
        /// The served composition names stage keys other than the plan's slices imply.
        case servedLineage = "served_lineage"
        /// A served stage's prefix contains a slice holding a deleted example.
        case servedDeletedExample = "served_deleted_example"
        /// A stage that saw a deleted example is still on disk.
        case unerasedStage = "unerased_stage"
        /// A deleted example (per the ledger) is not tombstoned in the plan.
        case missingTombstone = "missing_tombstone"
        /// A replayed stage's tensors differ from the stored ones (`--replay`).
        case replayMismatch = "replay_mismatch"
        /// A stage's recorded lineage (key, slice hashes, seed, settings) does not fit the run (`--replay`).
        case replayLineage = "replay_lineage"
        /// Requests recorded without a receipt: an interrupted forget (run `lethe forget --resume`).
        case pendingRequests = "pending_requests"
    }
    public var kind: Kind
    /// The file, ledger entry or shard concerned.
    public var location: String
    public var detail: String

    public var description: String { "\(kind.rawValue): \(location): \(detail)" }
}

/// What `lethe verify` found.
public struct VerificationReport: Codable, Sendable, Equatable {
    public var ledgerEntryCount: Int
    public var stageFileCount: Int
    public var servedStageCount: Int
    public var deletedExampleCount: Int
    /// Served stages retrained and compared bit for bit (`lethe verify --replay`); nil when none.
    public var replayedStageCount: Int?
    public var problems: [VerificationProblem]
    public var isClean: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case ledgerEntryCount = "ledger_entries", stageFileCount = "stage_files"
        case servedStageCount = "served_stages", deletedExampleCount = "deleted_examples"
        case replayedStageCount = "replayed_stages", problems
    }
}

/// Checks a run's integrity (issue 6 item 5): the ledger chain and the heads receipts quote,
/// every stage file's tensor hash, that the ledger's deleted examples are tombstoned, that no
/// served stage's prefix holds a deleted example, that every served stage exists, and that no
/// stage that saw a deleted example is left on disk. The deleted set comes from the ledger
/// (the record of requests), not from the plan, so removing a tombstone is caught too.
public enum RunVerifier {
    public static func verify(run: URL) throws -> VerificationReport {
        var problems: [VerificationProblem] = []
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let ledgerURL = run.appendingPathComponent("ledger.sqlite")

        // Ledger: chain, receipt heads, deleted examples, pending requests.
        var deleted = Set<String>()
        var entryCount = 0
        if FileManager.default.fileExists(atPath: ledgerURL.path) {
            let ledger = try Ledger.open(at: ledgerURL)
            defer { try? ledger.close() }
            let chain = try ledger.verifyChain()
            entryCount = chain.entryCount
            if let problem = chain.firstBreak {
                problems.append(.init(kind: .ledgerChain, location: ledgerURL.path, detail: "\(problem)"))
            }
            var covered: Int64 = 0
            for receipt in try ledger.entries(matching: Forgetter.receiptKey) {
                guard let coverage = try? receipt.decodePayload(as: ReceiptCoverage.self) else { continue }
                covered = max(covered, coverage.ledgerSequence)
                if try ledger.entry(at: coverage.ledgerSequence)?.hash != coverage.ledgerHash {
                    problems.append(.init(kind: .receiptHead, location: "ledger entry #\(receipt.sequenceNumber)",
                                          detail: "quotes head #\(coverage.ledgerSequence) \(coverage.ledgerHash), "
                                              + "which the ledger does not have"))
                }
            }
            var pending = 0
            for entry in try ledger.entries() where entry.kind == .request {
                guard let record = try? entry.decodePayload(as: RequestRecord.self) else { continue }
                deleted.formUnion(record.examples)
                if entry.sequenceNumber > covered { pending += 1 }
            }
            if pending > 0 {
                problems.append(.init(kind: .pendingRequests, location: ledgerURL.path,
                                      detail: "\(pending) request(s) after ledger #\(covered) have no receipt; "
                                          + "run lethe forget --resume"))
            }
        }
        for id in deleted.sorted() where !plan.isTombstoned(id) {
            problems.append(.init(kind: .missingTombstone, location: Plan.url(inRun: run).path,
                                  detail: "\(id) was requested deleted but is not tombstoned"))
        }
        // A slice rebuilt without an example (`lethe retrain`) no longer holds it.
        let hits = Set(deleted.filter { !plan.isExcluded($0) }.compactMap(plan.location(of:)))

        // Served composition.
        var servedCount = 0
        let compositionURL = ServedCompositionFile.url(inRun: run)
        if FileManager.default.fileExists(atPath: compositionURL.path) {
            let composition = try ServedCompositionFile.load(from: compositionURL)
            for entry in composition.shards {
                guard let sequence = entry.sequence, entry.prefixLength > 0 else { continue }
                let slices = plan.sequences(of: entry.shard)[sequence].prefix(entry.prefixLength)
                let expected = (1...entry.prefixLength).map { i in
                    StageFiles.key(prefixSliceHashes: slices.prefix(i).map { plan.sliceHash(shard: entry.shard, slice: $0) })
                }
                if expected != entry.stageKeys {
                    problems.append(.init(kind: .servedLineage, location: "shard \(entry.shard), sequence \(sequence)",
                                          detail: "served stage keys differ from those of the plan's current slices "
                                              + "(prefix \(Array(slices)))"))
                }
                for (index, key) in entry.stageKeys.enumerated() {
                    servedCount += 1
                    let url = StageFiles.url(run: run, shard: entry.shard, stage: index + 1, key: key)
                    if !FileManager.default.fileExists(atPath: url.path) {
                        problems.append(.init(kind: .missingServedStage, location: url.path,
                                              detail: "shard \(entry.shard) serves stage \(index + 1) (key \(key))"))
                    }
                }
                for slice in slices where hits.contains(SliceLocation(shard: entry.shard, slice: slice)) {
                    let examples = deleted.filter {
                        !plan.isExcluded($0) && plan.location(of: $0) == SliceLocation(shard: entry.shard, slice: slice)
                    }
                    problems.append(.init(kind: .servedDeletedExample, location: "shard \(entry.shard), sequence \(sequence)",
                                          detail: "served prefix \(Array(slices)) contains slice \(slice), which held deleted "
                                              + "example(s) \(examples.sorted().prefix(3).joined(separator: ", "))"))
                }
            }
        }

        // Stage files: hashes, and nothing left that saw a deleted example.
        var stageCount = 0
        for shard in 0..<plan.shardCount {
            let directory = StageFiles.shardDirectory(run: run, shard: shard)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
                .filter { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }.sorted()
            for name in names {
                stageCount += 1
                let url = directory.appendingPathComponent(name)
                do {
                    let check = try StageTensorDigest.check(url)
                    if !check.matches {
                        problems.append(.init(kind: .tensorHash, location: url.path,
                                              detail: "tensors hash to \(check.computed), the file records \(check.recorded)"))
                    }
                } catch {
                    problems.append(.init(kind: .unreadableStage, location: url.path, detail: "\(error)"))
                }
            }
            let hitSlices = Set(hits.filter { $0.shard == shard }.map(\.slice))
            for prefix in DeletionLogic.stagePrefixes(of: plan.sequences(of: shard), containingAnyOf: hitSlices) {
                let key = StageFiles.key(prefixSliceHashes: prefix.map { plan.sliceHash(shard: shard, slice: $0) })
                let url = StageFiles.url(run: run, shard: shard, stage: prefix.count, key: key)
                if FileManager.default.fileExists(atPath: url.path) {
                    problems.append(.init(kind: .unerasedStage, location: url.path,
                                          detail: "prefix \(prefix) of shard \(shard) saw a deleted example"))
                }
            }
        }
        return VerificationReport(ledgerEntryCount: entryCount, stageFileCount: stageCount,
                                  servedStageCount: servedCount, deletedExampleCount: deleted.count,
                                  replayedStageCount: nil, problems: problems)
    }
}
