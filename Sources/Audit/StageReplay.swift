import Forgetting
import Foundation
import Kernels
import Planning
import Store
import Support
import Training

/// `lethe verify --replay N`: retrains N randomly chosen served stages from their recorded
/// lineage and compares the tensors bit for bit with the stored ones (docs/DESIGN.md §4: training
/// is deterministic, so a served model can be reproduced from its surviving prefix).
///
/// A stage's lineage is read from its own file (prefix slices, their content hashes, block
/// layers, strategy) and checked against the served composition and the plan: the key must be
/// the served key, the recorded slice hashes the plan's current ones (the members replayed are
/// the plan's), and the recorded seed and settings those of the run. The parents are the
/// stored files of the shorter prefixes, so each replay costs one stage of training. A stage
/// whose tensors were altered and whose tensor hash was re-forged passes the hash check of
/// `RunVerifier` but not this one.
public enum StageReplay {
    /// One replayed stage and its outcome.
    public struct Outcome: Codable, Sendable, Equatable {
        public var shard: Int
        public var stage: Int
        public var key: String
        /// Path relative to the run directory.
        public var file: String
        public var identical: Bool
        public var tensorCount: Int
        enum CodingKeys: String, CodingKey { case shard, stage, key, file, identical, tensorCount = "tensor_count" }
    }

    /// The served stages of a run as (shard, stage, key), in composition order.
    public static func servedStages(run: URL) throws -> [(shard: Int, stage: Int, key: String)] {
        let composition = try ServedComposition.load(from: RunLayout(directory: run).servedURL)
        return composition.liveShards.flatMap { entry in
            entry.stageKeys.enumerated().map { (entry.shard, $0.offset + 1, $0.element.hex) }
        }
    }

    /// Replays `count` served stages drawn with `seed` (all of them when `count` ≥ their
    /// number) and returns what each gave plus the problems found.
    public static func replay(run: URL, count: Int, seed: UInt64, runner: S3TRunner,
                              progress: (Outcome) -> Void = { _ in }) throws -> ([Outcome], [VerificationProblem]) {
        let plan = try Plan.load(from: Plan.url(inRun: run))
        var generator = SplitMix64(seed: seed)
        let chosen = try servedStages(run: run).shuffled(using: &generator).prefix(max(0, count))
        var outcomes: [Outcome] = []
        var problems: [VerificationProblem] = []
        for (shard, stage, key) in chosen.sorted(by: { ($0.shard, $0.stage) < ($1.shard, $1.stage) }) {
            let layout = RunLayout(directory: run)
            let url = layout.stageURL(shard: shard, stage: stage, key: StageKey(hex: key))
            let relative = layout.relativeStagePath(shard: shard, stage: stage, key: StageKey(hex: key))
            func problem(_ kind: VerificationProblem.Kind, _ detail: String) {
                problems.append(.init(kind: kind, location: url.path, detail: detail))
            }
            let stored: StageCheckpoint
            do { stored = try StageCheckpoint.load(from: url) } catch let error as TrainingError {
                // A file in another stage's place (its recorded lineage is not its path's).
                if case .stageMismatch = error { problem(.replayLineage, "\(error)") } else { problem(.unreadableStage, "\(error)") }
                continue
            } catch {
                problem(.unreadableStage, "\(error)")
                continue
            }
            let lineage = stored.lineage
            let planHashes = lineage.prefixSlices.map { plan.sliceHash(shard: shard, slice: $0) }
            let expectedSeed = lineage.key.seed(runSeed: runner.settings.seed, shard: shard)
            if lineage.key.hex != key || lineage.shard != shard || lineage.stage != stage {
                problem(.replayLineage, "the file records shard \(lineage.shard) stage \(lineage.stage) key "
                        + "\(lineage.key.hex), but is served as shard \(shard) stage \(stage) key \(key)")
            } else if lineage.prefixSliceHashes != planHashes {
                problem(.replayLineage, "its prefix slices \(lineage.prefixSlices) have other content hashes in the plan")
            } else if stored.record.precision != runner.settings.precision {
                problem(.replayLineage, "it was trained in \(stored.record.precision), the run in "
                        + "\(runner.settings.precision); a run never mixes precisions")
            } else if let (field, recorded, run) = runner.settings.firstDifference(
                fromRecorded: stored.record.hyperparametersJSON) {
                problem(.replayLineage, "it was trained with \(field) \(recorded), the run's train.json has \(run)")
            } else if stored.record.seed != expectedSeed {
                problem(.replayLineage, "it records seed \(stored.record.seed); the run's seed gives this stage "
                        + "\(expectedSeed)")
            } else {
                let replayed: StageCheckpoint
                do {
                    replayed = try runner.replay(lineage, strategy: stored.record.strategy) { slice in
                        plan.currentMembers(shard: shard, slice: slice)
                    }
                } catch TrainingError.stageMismatch(let file, let field, let expected, let found) {
                    // A parent stage's file holds another stage: this one cannot be replayed from it.
                    problem(.replayLineage, "its parent \(file) records \(field) \(found), its path names \(expected)")
                    outcomes.append(Outcome(shard: shard, stage: stage, key: key, file: relative, identical: false,
                                            tensorCount: stored.storedTensors.count))
                    continue
                }
                let difference = firstDifference(stored.storedTensors, replayed.storedTensors)
                if let difference {
                    // Bits are promised per version and kernels: say so when others trained the stage.
                    let version = stored.record.softwareVersion, kernels = stored.record.kernels
                    let here = BLASRuntime.kernelDescription
                    problem(.replayMismatch, difference + (version != letheVersion
                        ? " (trained by Lethe \(version), replayed by \(letheVersion), whose arithmetic may differ: "
                            + "replay with the version that trained it)"
                        : !kernels.isEmpty && kernels != here
                        ? " (trained on \(kernels), replayed on \(here): products on other kernels give other bits; "
                            + "replay on a machine whose CPU gives the kernels that trained it)"
                        : ""))
                }
                let outcome = Outcome(shard: shard, stage: stage, key: key, file: relative, identical: difference == nil,
                                      tensorCount: stored.storedTensors.count)
                outcomes.append(outcome)
                progress(outcome)
                continue
            }
            outcomes.append(Outcome(shard: shard, stage: stage, key: key, file: relative, identical: false,
                                    tensorCount: stored.storedTensors.count))
        }
        return (outcomes, problems)
    }

    /// What first differs between stored and replayed tensors, bit for bit; nil when equal.
    static func firstDifference(_ stored: [NamedTensor], _ replayed: [NamedTensor]) -> String? {
        let replayedByName = Dictionary(replayed.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for tensor in stored.sorted(by: { $0.name < $1.name }) {
            guard let other = replayedByName[tensor.name] else { return "\(tensor.name) is not produced by the replay" }
            guard other.shape == tensor.shape else {
                return "\(tensor.name) has shape \(tensor.shape), the replay \(other.shape)"
            }
            if let index = tensor.values.indices.first(where: { tensor.values[$0].bitPattern != other.values[$0].bitPattern }) {
                let count = zip(tensor.values, other.values).filter { $0.bitPattern != $1.bitPattern }.count
                return "\(tensor.name)[\(index)] is \(tensor.values[index]), the replay gives \(other.values[index]) "
                    + "(\(count) of \(tensor.values.count) values differ)"
            }
        }
        if let extra = replayed.map(\.name).first(where: { name in !stored.contains { $0.name == name } }) {
            return "the replay produces \(extra), which the stored stage lacks"
        }
        return nil
    }
}
