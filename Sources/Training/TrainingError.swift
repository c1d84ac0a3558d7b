import Foundation

/// Every error the Training module throws: stage checkpoints, served compositions, run settings.
///
/// Each case carries the facts a reader needs (file, field, expected vs found) and its message
/// ends with what to do about it.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// A stage checkpoint's format attribute or version is not one this build reads.
    case unsupportedFormat(file: String, expected: String, found: String)
    /// A stage checkpoint lacks a tensor or attribute its format requires.
    case checkpointIncomplete(file: String, missing: String)
    /// The tensors of a stage checkpoint do not hash to the recorded SHA-256.
    case tensorHashMismatch(file: String, recorded: String, computed: String)
    /// A stage checkpoint describes a different stage than the one asked for.
    case stageMismatch(file: String, field: String, expected: String, found: String)
    /// A stage checkpoint does not match its seal (`HDF5Seal`): its bytes changed after Lethe wrote it.
    case damagedStage(file: String, reason: String)
    /// A served composition or settings file is malformed.
    case fileInvalid(file: String, reason: String)
    /// A stage's parent (the previous stage of its prefix) has no complete checkpoint.
    case parentMissing(shard: Int, stage: Int, parentKey: String)
    /// The base model on disk is not the one the run was trained on.
    case baseModelMismatch(file: String, expected: String, found: String)
    /// Training reached a NaN or infinite loss.
    case nonFiniteLoss(stage: String, step: Int, loss: Float)
    /// A setting given now disagrees with the one the run was trained with.
    case settingsConflict(file: String, field: String, saved: String, given: String)
    /// A value given by the user is out of range.
    case invalidValue(field: String, value: String, reason: String)
    case invalidConfiguration(field: String, value: String, reason: String)
    /// A layer asked to train carries no adapters.
    case layerWithoutAdapters(layer: Int)
    case noExamples
    case labelOutOfRange(example: Int, label: Int, classCount: Int)
    /// A classifier's data has fewer than two labels.
    case tooFewLabels(names: [String])
    /// An example's label is not in the model's label vocabulary.
    case unknownLabel(id: String, label: String)
    /// A command for one model kind was given a run of the other.
    case wrongModelKind(run: String, expected: ModelKind, found: ModelKind)
    /// plan.h5 holds another plan than the one a running training was made from.
    case planReplaced(file: String)
    /// A forget recorded requests and stopped before tombstoning them (`UnfinishedForget`).
    case unfinishedForget(run: String)
    /// served.json names a stage file that is not on disk.
    case servedStageMissing(file: String, run: String)

    public var description: String {
        switch self {
        case let .unsupportedFormat(file, expected, found):
            return "\(file): format \(found), expected \(expected). Use the version of lethe that wrote it"
                + (file.hasSuffix(".h5") ? ", or train the stage again with this one." : "; this version reads only its own.")
        case let .checkpointIncomplete(file, missing):
            return "\(file): missing \(missing). Delete the file; `lethe train` will re-train the stage."
        case let .tensorHashMismatch(file, recorded, computed):
            return "\(file): tensors hash to \(computed) but the checkpoint records \(recorded); "
                + "the file was altered. Delete it and re-train the stage with `lethe train`."
        case let .stageMismatch(file, field, expected, found):
            return "\(file): \(field) is \(found), expected \(expected). The file belongs to another "
                + "stage or run; remove it and re-train."
        case let .servedStageMissing(file, run):
            return "\(file): served.json serves this stage, but the file is missing (removed, or the run was copied "
                + "without it). `lethe verify --run \(run)` lists every missing one, and `lethe train --run \(run)` "
                + "trains them again, to the same bits."
        case let .damagedStage(file, reason):
            return "\(file): the stage checkpoint is damaged or was modified since Lethe wrote it (\(reason)); Lethe "
                + "does not read it. Delete the file, then `lethe train` (or `lethe retrain` for a shard with deletions) "
                + "on its run trains the stage again, to the same bits."
        case let .fileInvalid(file, reason):
            // A reason that already says what to do gets no second, general advice.
            let advises = ["restore", "run `lethe", "train again", "delete", "put back", "train into", "lethe train",
                           "check the path", "give it as"]
                .contains { reason.lowercased().contains($0) }
            return "\(file): \(reason)." + (advises ? "" : " Restore the file from a backup, or train into a new run.")
        case let .baseModelMismatch(file, expected, found):
            return "\(file): the run was trained with this base model file at SHA-256 \(expected), found \(found). "
                + "Put that exact model there (run `make setup` for the default one), or train a new run on this one."
        case let .nonFiniteLoss(stage, step, loss):
            return "\(stage): the training loss became \(loss) at step \(step); nothing was saved. Lower the "
                + "learning rate (--lr) and train again."
        case let .parentMissing(shard, stage, parentKey):
            return "shard \(shard) stage \(stage): the checkpoint of its parent stage \(parentKey) "
                + "is missing. Run `lethe train` on the shard to re-create it."
        case let .settingsConflict(file, field, saved, given):
            return "\(file): the run was trained with \(field) = \(saved), now \(given) was given. "
                + "Drop the option to reuse the saved value, or train into a new run directory."
        case let .invalidValue(field, value, reason):
            return "\(field) = \(value): \(reason). Give a valid value."
        case let .invalidConfiguration(field, value, reason):
            return "invalid \(field) = \(value): \(reason). Choose a value in range."
        case let .layerWithoutAdapters(layer):
            return "layer \(layer) is marked trainable but carries no adapters. Install adapters on it first or drop it from the trainable layers."
        case .noExamples:
            return "no training examples. Check the data file and the slices selected."
        case let .unknownLabel(id, label):
            return "example \(id) has label \"\(label)\", which the model's label vocabulary does not know. Train on data with the same labels."
        case let .unfinishedForget(run):
            return "\(run): a forget recorded deletion requests and stopped before it tombstoned their examples, so "
                + "the plan does not yet hold every accepted deletion and this process trains nothing. On the host that "
                + "owns the ledger run `lethe forget --run \(run) --resume`, then the same command again."
        case let .planReplaced(file):
            return "\(file) was replaced by another plan (`lethe plan --force`) while this training ran: its stages "
                + "belong to the plan it replaced, so none more is committed. Train again to train the new plan's stages."
        case let .wrongModelKind(run, expected, found):
            return found == .decoder
                ? "\(run) is a decoder run (text data, next-token loss): it has no classifier to predict, evaluate or "
                    + "serve with. Use `lethe perplexity --run` or `lethe generate --run` on it."
                : "\(run) is an \(found.rawValue) run, not a \(expected.rawValue) one. Use a run trained on text data "
                    + "with a decoder (`lethe plan` on JSON Lines without labels, then `lethe train`)."
        case let .tooFewLabels(names):
            return "the plan's data has " + (names.isEmpty ? "no labels" : "the single label \"\(names[0])\"")
                + ": a classifier learns to tell two or more labels apart. Plan a dataset whose examples carry at "
                + "least two labels (`lethe plan --data FILE`)."
        case let .labelOutOfRange(example, label, classCount):
            return "example \(example) has label \(label), outside 0..<\(classCount). Build the model with the dataset's label vocabulary."
        }
    }
}
