import Forgetting
import Kernels
import Foundation
import Planning
import Support
import Training

/// One finding of `lethe verify`: what is wrong and where.
public struct VerificationProblem: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        /// The ledger's hash chain is broken (edited, deleted, reordered or inserted rows).
        case ledgerChain = "ledger_chain"
        /// The ledger file is missing although the run records deletions or quotes its head.
        case ledgerMissing = "ledger_missing"
        /// A ledger entry of a kind Lethe does not write, or whose payload is not a record of its
        /// kind (or names a shard the plan lacks): hash-valid, so written outside Lethe.
        case ledgerEntry = "ledger_entry"
        /// served.json quotes a ledger head the ledger does not have (truncated or replaced).
        case servedHead = "served_head"
        /// A receipt quotes a ledger head that the ledger no longer has.
        case receiptHead = "receipt_head"
        /// A tombstone in the plan has no request in the ledger (ledger rows were removed).
        case unrecordedTombstone = "unrecorded_tombstone"
        /// A shard is trained to serve a longer clean prefix than served.json gives it (or is not
        /// in it at all): a training stopped before its publish, or served.json was rewritten.
        case staleComposition = "stale_composition"
        /// served.json cannot be read or fails its content hash.
        case unreadableComposition = "unreadable_composition"
        /// A stage file's tensors do not hash to the hash recorded in it.
        case tensorHash = "tensor_hash"
        /// A stage file holds NaN or infinite values.
        case nonFiniteTensor = "non_finite_tensor"
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
        /// A stage file records another shard, stage or key than its path names (moved or copied).
        case misplacedStage = "misplaced_stage"
        /// A replayed stage's tensors differ from the stored ones (`--replay`).
        case replayMismatch = "replay_mismatch"
        /// A stage's recorded lineage (key, slice hashes, seed, settings) does not fit the run (`--replay`).
        case replayLineage = "replay_lineage"
        /// Requests recorded without a receipt: an interrupted forget (run `lethe forget --resume`).
        case pendingRequests = "pending_requests"
        /// A stage file was trained with other settings or another precision than train.json
        /// records (a run never mixes them), or train.json is missing or cannot be read.
        case runSettings = "run_settings"
        /// The base model's weights are missing or are not those the run was trained on.
        case baseModel = "base_model"
        /// Recovery could not run (a file it must write cannot be written, a stage file cannot
        /// be erased): every command that changes the run, forget included, refuses until the
        /// file the detail names is fixed.
        case recoveryStopped = "recovery_stopped"
    }
    public var kind: Kind
    /// The file, ledger entry or shard concerned.
    public var location: String
    public var detail: String

    public init(kind: Kind, location: String, detail: String) {
        self.kind = kind; self.location = location; self.detail = detail
    }

    /// One line; a detail that already begins with the location (an error's own message) does
    /// not repeat it.
    public var description: String {
        detail.hasPrefix(location + ":") ? "\(kind.rawValue): \(detail)" : "\(kind.rawValue): \(location): \(detail)"
    }
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

/// Checks a run's integrity (docs/FORGETTING.md, "What an auditor gets"): the ledger chain and
/// that the ledger still holds every head that served.json and receipts quote (so deleting the
/// ledger or its last rows is caught), that every tombstone has its request and every
/// requested deletion its tombstone, every stage file's tensor hash and finiteness, that no
/// served stage's prefix holds a deleted example, that every served stage exists, and that no
/// stage that saw a deleted example is left on disk. The deleted set comes from the ledger
/// (the record of requests), not from the plan, so removing a tombstone is caught too.
public enum RunVerifier {
    public static func verify(run: URL) throws -> VerificationReport {
        let layout = RunLayout(directory: run)
        let plan = try Plan.load(from: layout.planURL)
        var problems: [VerificationProblem] = []
        let composition = readComposition(layout, problems: &problems)
        let ledger = try checkLedger(layout, quotedHead: composition?.ledgerHead, tombstones: plan.tombstones.count,
                                     shardCount: plan.shardCount,
                                     problems: &problems)
        // A ledger whose rows cannot be read (reported above) says nothing about the tombstones.
        for id in (ledger.deleted ?? []).sorted() where !plan.isTombstoned(id) {
            problems.append(.init(kind: .missingTombstone, location: layout.planURL.path,
                                  detail: "\(id) was requested deleted but is not tombstoned"))
        }
        for id in plan.tombstones where ledger.deleted.map({ !$0.contains(id) }) ?? false {
            problems.append(.init(kind: .unrecordedTombstone, location: layout.planURL.path,
                                  detail: "\(id) is tombstoned but no ledger request deletes it: ledger rows were "
                                      + "removed or the ledger was replaced"))
        }
        // Deleted per the ledger or the plan; a slice rebuilt without an example no longer holds it.
        let deleted = (ledger.deleted ?? []).union(plan.tombstones)
        let hits = Set(deleted.filter { !plan.isExcluded($0) }.compactMap(plan.location(of:)))
        let servedCount = composition.map { checkComposition($0, plan: plan, layout: layout, deleted: deleted, hits: hits,
                                                              problems: &problems) } ?? 0
        let settings = readSettings(layout, problems: &problems)
        if let settings, let composition, composition.strategy != settings.strategy {
            problems.append(.init(kind: .servedLineage, location: layout.servedURL.path,
                                  detail: "serves a \(composition.strategy.rawValue) composition, but train.json trains "
                                      + "\(settings.strategy.rawValue): one of the two was edited. If the stage files "
                                      + "agree with train.json (no run_settings problem), served.json is the stranger and "
                                      + "the next lethe forget publishes the run's own in its place; otherwise put back "
                                      + "train.json"))
        }
        let stageCount = checkStageFiles(plan: plan, layout: layout, settings: settings, hits: hits,
                                         problems: &problems)
        return VerificationReport(ledgerEntryCount: ledger.entryCount, stageFileCount: stageCount,
                                  servedStageCount: servedCount, deletedExampleCount: ledger.deleted?.count ?? 0,
                                  replayedStageCount: nil, problems: problems)
    }

    /// train.json, nil (and no problem) before the first train.
    private static func readSettings(_ layout: RunLayout, problems: inout [VerificationProblem]) -> TrainingSettings? {
        guard FileManager.default.fileExists(atPath: layout.settingsURL.path) else { return nil }
        do { return try TrainingSettings.load(from: layout.settingsURL) } catch {
            problems.append(.init(kind: .runSettings, location: layout.settingsURL.path, detail: "\(error)"))
            return nil
        }
    }

    private static func readComposition(_ layout: RunLayout, problems: inout [VerificationProblem]) -> ServedComposition? {
        let url = layout.servedURL
        do {
            switch try ServedComposition.read(from: url) {
            case .absent: return nil
            case .loaded(let composition): return composition
            case .damaged(let reason):
                problems.append(.init(kind: .unreadableComposition, location: url.path,
                                      detail: "\(reason); " + ServedComposition.setAsideAdvice(url)))
                return nil
            }
        } catch {
            problems.append(.init(kind: .unreadableComposition, location: url.path, detail: "\(error)"))
            return nil
        }
    }

    /// A trained run's train.json, served.json and base model (`lethe verify` adds these to
    /// `verify(run:)`): each must be there once a stage is, and the model must be the one the
    /// run was trained on.
    public static func checkTrainedRunFiles(run: URL) -> [VerificationProblem] {
        let layout = RunLayout(directory: run)
        guard layout.anyStageFile() != nil else { return [] }
        var problems: [VerificationProblem] = []
        if !FileManager.default.fileExists(atPath: layout.settingsURL.path) {
            problems.append(.init(kind: .runSettings, location: layout.settingsURL.path,
                                  detail: "is missing, but the run has trained stages: restore it from a backup"))
        }
        if !FileManager.default.fileExists(atPath: layout.servedURL.path) {
            problems.append(.init(kind: .unreadableComposition, location: layout.servedURL.path,
                                  detail: "is missing, but the run has trained stages: nothing is served; run lethe train "
                                      + "to publish"))
        }
        // An unreadable train.json is reported by `verify(run:)`.
        guard let settings = try? TrainingSettings.load(from: layout.settingsURL) else { return problems }
        let model = settings.baseModelDirectory(run: run)
        do { try settings.checkBaseModel(model) } catch {
            problems.append(.init(kind: .baseModel, location: model.path, detail: "\(error)"))
        }
        return problems
    }

    /// The chain, the heads quoted by served.json and by receipts, pending requests; returns
    /// the entry count and the examples the ledger's requests delete (nil when its rows cannot
    /// be read, or it is missing where it must exist: that one problem is reported, not each
    /// tombstone without its request). Only deletion requests make tombstones, so a plan that
    /// holds some had a ledger.
    /// What is wrong with an entry's kind or payload, or nil: each kind Lethe writes has its
    /// record, and a retrain or publish names shards of the plan.
    static func entryProblem(_ entry: LedgerEntry, shardCount: Int) -> String? {
        var shards: [Int] = []
        do {
            switch entry.kind {
            case .request: _ = try entry.decodePayload(as: RequestRecord.self)
            case .receipt: _ = try entry.decodePayload(as: ForgetReceipt.self)
            case .retrain: shards = [try entry.decodePayload(as: RetrainRecord.self).shard]
            case .publish: shards = try entry.decodePayload(as: PublishRecord.self).shards.map(\.shard)
            default:
                return "its kind \(Example.quoted(entry.kind.rawValue)) is none Lethe writes (request, receipt, retrain, "
                    + "publish): it was written outside Lethe"
            }
        } catch {
            return "\(error)"
        }
        guard let stranger = shards.first(where: { !(0..<shardCount).contains($0) }) else { return nil }
        return "a \(entry.kind) entry naming shard \(stranger), which the plan (shards 0…\(shardCount - 1)) does not have"
    }

    private static func checkLedger(_ layout: RunLayout, quotedHead: LedgerAnchor?, tombstones: Int, shardCount: Int,
                                    problems: inout [VerificationProblem]) throws -> (entryCount: Int, deleted: Set<String>?) {
        let url = layout.ledgerURL
        guard FileManager.default.fileExists(atPath: url.path) else {
            var evidence: [String] = []
            if let quotedHead, quotedHead.sequenceNumber > 0 {
                evidence.append("served.json reflects ledger entry #\(quotedHead.sequenceNumber)")
            }
            if tombstones > 0 {
                evidence.append("the plan holds \(counted(tombstones, "tombstone")), which only deletion requests make")
            }
            guard !evidence.isEmpty else { return (0, []) }
            problems.append(.init(kind: .ledgerMissing, location: url.path,
                                  detail: evidence.joined(separator: ", and ") + ", but the ledger file is missing"))
            return (0, nil)
        }
        let ledger = try Ledger.openForReading(at: url)
        defer { try? ledger.close() }
        let chain = try ledger.verifyChain()
        if let problem = chain.firstBreak {
            problems.append(.init(kind: .ledgerChain, location: url.path, detail: "\(problem)"))
            if case .malformedRow = problem { return (chain.entryCount, nil) }
        }
        for entry in try ledger.entries(from: 1) {
            if let problem = entryProblem(entry, shardCount: shardCount) {
                problems.append(.init(kind: .ledgerEntry, location: "\(url.path) #\(entry.sequenceNumber)", detail: problem))
            }
        }
        if let quotedHead, quotedHead.sequenceNumber > 0 {
            let entry = try ledger.entry(at: quotedHead.sequenceNumber)
            if entry?.hash != quotedHead.hash {
                problems.append(.init(kind: .servedHead, location: layout.servedURL.path,
                                      detail: "reflects ledger head \(quotedHead), but the ledger "
                                          + (entry.map { "has hash \($0.hash) there" }
                                             ?? "ends at #\(chain.head?.sequenceNumber ?? 0)")
                                          + ": the ledger was truncated or replaced"))
            }
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
        var deleted = Set<String>()
        var pending = 0
        for entry in try ledger.entries() where entry.kind == .request {
            guard let record = try? entry.decodePayload(as: RequestRecord.self) else { continue }
            deleted.formUnion(record.examples)
            if entry.sequenceNumber > covered { pending += 1 }
        }
        if pending > 0 {
            problems.append(.init(kind: .pendingRequests, location: url.path,
                                  detail: "\(pending) request(s) after ledger #\(covered) have no receipt; "
                                      + "run lethe forget --resume"))
        }
        return (chain.entryCount, deleted)
    }

    /// Which side to mend depends on which one changed: every stage agreeing against train.json
    /// means train.json was edited.
    static let mixedSettingsAdvice = "If every stage says the same, train.json was edited: put back the value the "
        + "stages record. If only some stages differ, delete those files and train them again."

    /// How a stage file's recorded precision or settings contradict the run's, if they do.
    private static func mixedSettings(_ check: StageTensorDigest.Check, _ settings: TrainingSettings) -> String? {
        let precision = check.precision ?? Precision.fp32.rawValue
        if precision != settings.precision.rawValue {
            return "trained in \(precision), but train.json says \(settings.precision.rawValue): a run never mixes "
                + "precisions. " + Self.mixedSettingsAdvice
        }
        guard let json = check.hyperparametersJSON,
              let (field, recorded, run) = settings.firstDifference(fromRecorded: json) else { return nil }
        return "trained with \(field) \(recorded), but train.json has \(run). " + Self.mixedSettingsAdvice
    }

    /// Served keys against the plan, served files present, no served prefix holding a deleted
    /// example; returns the number of served stages.
    private static func checkComposition(_ composition: ServedComposition, plan: Plan, layout: RunLayout,
                                         deleted: Set<String>, hits: Set<SliceLocation>,
                                         problems: inout [VerificationProblem]) -> Int {
        if composition.strategy == .full {
            return checkFullModel(composition, plan: plan, layout: layout, problems: &problems)
        }
        var servedCount = 0
        for entry in composition.shards {
            guard let sequence = entry.sequence, entry.prefixLength > 0 else { continue }
            guard (0..<plan.shardCount).contains(entry.shard), plan.sequences(of: entry.shard).indices.contains(sequence),
                  entry.prefixLength <= plan.sliceCount else {
                problems.append(.init(kind: .servedLineage, location: "shard \(entry.shard), sequence \(sequence)",
                                      detail: "not a shard, sequence or prefix length of the plan"))
                continue
            }
            let slices = plan.sequences(of: entry.shard)[sequence].prefix(entry.prefixLength)
            let expected = (1...entry.prefixLength).map { i in
                StageKey(prefixSliceHashes: slices.prefix(i).map { plan.sliceHash(shard: entry.shard, slice: $0) })
            }
            if expected != entry.stageKeys {
                problems.append(.init(kind: .servedLineage, location: "shard \(entry.shard), sequence \(sequence)",
                                      detail: "served stage keys differ from those of the plan's current slices "
                                          + "(prefix \(Array(slices)))"))
            }
            for (index, key) in entry.stageKeys.enumerated() {
                servedCount += 1
                let url = layout.stageURL(shard: entry.shard, stage: index + 1, key: key)
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
        checkNothingTrainedIsLeftOut(composition, plan: plan, layout: layout, problems: &problems)
        return servedCount
    }

    /// served.json is derived, never edited: each shard whose longest clean prefix is trained
    /// (every stage file there) must be served with it, not with less or not at all.
    private static func checkNothingTrainedIsLeftOut(_ composition: ServedComposition, plan: Plan, layout: RunLayout,
                                                     problems: inout [VerificationProblem]) {
        for shard in 0..<plan.shardCount {
            let derived = ServedDerivation.entry(plan: plan, shard: shard, layout: layout)
            guard let sequence = derived.sequence, !derived.isDead else { continue }
            let trained = derived.stageKeys.enumerated().allSatisfy { index, key in
                FileManager.default.fileExists(atPath: layout.stageURL(shard: shard, stage: index + 1, key: key).path)
            }
            let served = composition.entry(shard: shard)
            guard trained, (served?.prefixLength ?? 0) < derived.prefixLength else { continue }
            problems.append(.init(kind: .staleComposition, location: layout.servedURL.path,
                                  detail: "shard \(shard) is trained to serve sequence \(sequence), prefix "
                                      + "\(derived.prefixLength), but served.json "
                                      + (served.map { $0.isDead ? "has it dead" : "serves prefix \($0.prefixLength)" }
                                         ?? "leaves it out")
                                      + " (a training stopped before its publish, or the file was rewritten); "
                                      + "`lethe train --run \(layout.directory.path)` publishes it"))
        }
    }

    /// A `full` run serves one model trained on every example not deleted before training (a
    /// full run refuses later deletions): its file is there, and its key hashes exactly the
    /// plan's examples without the tombstoned ones. Returns the number of served stages.
    private static func checkFullModel(_ composition: ServedComposition, plan: Plan, layout: RunLayout,
                                       problems: inout [VerificationProblem]) -> Int {
        guard let entry = composition.shards.first, let key = entry.stageKeys.first, entry.stageKeys.count == 1 else {
            problems.append(.init(kind: .servedLineage, location: layout.servedURL.path,
                                  detail: "a full run serves exactly one model; served.json lists "
                                      + "\(composition.shards.first?.stageKeys.count ?? 0)"))
            return 0
        }
        let url = layout.stageURL(shard: entry.shard, stage: 1, key: key)
        if !FileManager.default.fileExists(atPath: url.path) {
            problems.append(.init(kind: .missingServedStage, location: url.path,
                                  detail: "the full model (key \(key)) is served but its file is missing"))
        }
        let live = plan.undeletedExampleIDs
        if key != StageKey(prefixSliceHashes: [SliceHash.of(ids: live)]) {
            problems.append(.init(kind: .servedLineage, location: url.path,
                                  detail: "the full model's key is not the hash of the plan's \(live.count) examples "
                                      + "without the deleted ones: it was trained on other data, or on deleted examples"))
        }
        return 1
    }

    /// Every stage file's hash, finiteness and recorded settings, and no file left that saw a
    /// deleted example; returns the number of stage files.
    private static func checkStageFiles(plan: Plan, layout: RunLayout, settings: TrainingSettings?,
                                        hits: Set<SliceLocation>, problems: inout [VerificationProblem]) -> Int {
        var stageCount = 0
        for shard in 0..<plan.shardCount {
            for name in layout.stageFileNames(shard: shard) {
                stageCount += 1
                let url = layout.shardDirectory(shard).appendingPathComponent(name)
                do {
                    let check = try StageTensorDigest.check(url)
                    if !check.matches {
                        problems.append(.init(kind: .tensorHash, location: url.path,
                                              detail: "tensors hash to \(check.computed), the file records \(check.recorded)"))
                    }
                    if let slot = check.slotMismatch {
                        problems.append(.init(kind: .misplacedStage, location: url.path,
                                              detail: "its path names \(slot.field) \(slot.path), the file records "
                                                  + "\(slot.recorded): it holds another stage, moved or copied here; "
                                                  + "delete it and train again"))
                    }
                    if check.nonFiniteCount > 0 {
                        problems.append(.init(kind: .nonFiniteTensor, location: url.path,
                                              detail: "\(check.nonFiniteCount) NaN or infinite value(s): training "
                                                  + "diverged; delete the file and train again with a lower --lr"))
                    }
                    if let settings, let mixed = mixedSettings(check, settings) {
                        problems.append(.init(kind: .runSettings, location: url.path, detail: mixed))
                    }
                } catch {
                    problems.append(.init(kind: .unreadableStage, location: url.path, detail: "\(error)"))
                }
            }
            let hitSlices = Set(hits.filter { $0.shard == shard }.map(\.slice))
            for prefix in DeletionLogic.stagePrefixes(of: plan.sequences(of: shard), containingAnyOf: hitSlices) {
                let key = StageKey(prefixSliceHashes: prefix.map { plan.sliceHash(shard: shard, slice: $0) })
                let url = layout.stageURL(shard: shard, stage: prefix.count, key: key)
                if FileManager.default.fileExists(atPath: url.path) {
                    problems.append(.init(kind: .unerasedStage, location: url.path,
                                          detail: "prefix \(prefix) of shard \(shard) saw a deleted example"))
                }
            }
        }
        return stageCount
    }
}
