/// Everything that can go wrong while reading a dataset, building, saving or loading a plan.
///
/// Each case carries the facts a good message needs (file, 1-based line, field, flag, expected
/// and found values); `description` ends with what to do.
public enum PlanningError: Error, CustomStringConvertible, Equatable, Sendable {
    // MARK: Dataset reading
    /// The file could not be read at all.
    case unreadableFile(file: String, reason: String)
    /// A run directory without a plan: nothing was planned there.
    case notARun(directory: String)
    /// plan.h5 is gone but files made from it remain (a ledger, stages, served.json).
    case planMissing(directory: String, remaining: [String])
    /// A line is not a JSON object of the supported shape.
    case malformedJSON(file: String, line: Int, column: Int, reason: String)
    /// A required field (`id`, `text`, `label`) is absent.
    case missingField(file: String, line: Int, field: String)
    /// Some lines have a `label` and some do not.
    case mixedLabels(file: String, unlabelledLine: Int, labelledLine: Int)
    /// A field holds a value of the wrong JSON type.
    case wrongFieldType(file: String, line: Int, field: String, expected: String, found: String)
    /// `text` is the empty string.
    case emptyText(file: String, line: Int, id: String)
    /// A line's `label` is the empty string (an unlabelled line leaves the field out).
    case emptyLabel(file: String, line: Int, id: String)
    /// An `id` that cannot be used as a lineage key (empty, or contains a control character).
    case invalidID(file: String, line: Int, id: String, reason: String)
    /// A `group` no deletion request can name (empty, blank, or with a control character).
    case invalidGroup(file: String, line: Int, group: String, reason: String)
    /// The same `id` appears on two lines.
    /// `otherSpelling`: the first id's bytes when they differ (another Unicode normal form).
    case duplicateID(file: String, id: String, firstLine: Int, secondLine: Int, otherSpelling: Bool = false)
    /// The file holds no example at all.
    case emptyDataset(file: String)

    // MARK: Refusals of `lethe plan` / `lethe simulate`
    /// A command-line value is out of range; `flag` is spelled as on the command line.
    case invalidValue(flag: String, value: String, reason: String)
    /// Every example of a slice is deleted: it cannot be rebuilt.
    case sliceEmptied(shard: Int, slice: Int)
    /// m·L cells need at least one example (or group) each.
    case notEnoughData(shardCount: Int, sliceCount: Int, needed: Int, available: Int, unit: String)
    /// B exceeds the number of distinct permutations of L slices.
    case budgetExceedsPermutations(budget: Int, sliceCount: Int, permutationCount: Int)
    /// The prior file is unusable (bad syntax, unknown slice, negative value, wrong sum).
    case invalidPrior(file: String, reason: String)
    /// The run directory already holds a plan.
    case planExists(path: String)

    // MARK: Loading a plan
    /// The file is not a Lethe plan, or of a format version this build does not read.
    case unsupportedFormat(file: String, found: String, expected: String)
    /// A plan on disk breaks one of its invariants (see `Plan.checkInvariants()`).
    case invariantViolated(file: String, invariant: String, detail: String)
    /// `plan.h5` does not match its seal (`HDF5Seal`): its bytes changed after Lethe wrote it.
    case damagedPlan(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadableFile(file, reason):
            return "\(file): cannot read the file (\(reason)). Check the path and its permissions."
        case let .malformedJSON(file, line, column, reason):
            return "\(file):\(line):\(column): malformed JSON line: \(reason). Each line must be one "
                + "JSON object such as {\"id\": \"a1\", \"text\": \"…\", \"label\": \"…\"}; fix or remove that line."
        case let .missingField(file, line, field):
            return "\(file):\(line): missing field \"\(field)\". Every line needs \"id\" and \"text\"; add it."
        case let .mixedLabels(file, unlabelled, labelled):
            return "\(file):\(unlabelled): this line has no \"label\" but line \(labelled) has one. A data set is either "
                + "labelled on every line (a classifier's) or on none (text for a decoder); add the label or remove it everywhere."
        case let .wrongFieldType(file, line, field, expected, found):
            return "\(file):\(line): field \"\(field)\" must be a \(expected), found a \(found). Write it as a JSON \(expected)."
        case let .emptyLabel(file, line, id):
            return "\(file):\(line): example \"\(id)\" has an empty \"label\". Give it its label, or leave the field out "
                + "on every line for unlabelled data."
        case let .emptyText(file, line, id):
            return "\(file):\(line): example \"\(id)\" has an empty \"text\". Give it a text or remove the line."
        case let .notARun(directory):
            return "\(directory): no plan.h5 here, so this is not a run directory. Check --run, or make the run "
                + "with `lethe plan --data FILE.jsonl --shards M --slices R --budget B --run \(directory)`."
        case let .planMissing(directory, remaining):
            return "\(directory): plan.h5 is missing, but the run still has " + remaining.joined(separator: ", ")
                + ", made from it. Restore plan.h5 from a backup (with it, every accepted deletion binds the run again). "
                + "Planning this directory anew is refused: a new plan would not account for those files, so forgotten "
                + "examples could be trained on and served again. To start over, plan into a new run directory."
        case let .invalidID(file, line, id, reason):
            return "\(file):\(line): id \(Example.quoted(id)) cannot be used: \(reason). Choose another id."
        case let .invalidGroup(file, line, group, reason):
            return "\(file):\(line): group \(Example.quoted(group)) cannot be used: \(reason), so a deletion request "
                + "could not name it. Give the example a group name, or leave \"group\" out (or null) for no group."
        case let .duplicateID(file, id, firstLine, secondLine, otherSpelling):
            return "\(file): id \"\(id)\" appears on line \(firstLine) and again on line \(secondLine)"
                + (otherSpelling ? " (spelled with other Unicode code points: ids compare as text, and precomposed and "
                    + "decomposed spellings of one text are one id)" : "")
                + ". Ids must be unique; rename or remove one of them."
        case let .emptyDataset(file):
            return "\(file): the file holds no example. Point --data at a JSON Lines file with at least one line."
        case let .sliceEmptied(shard, slice):
            return "cannot retrain shard \(shard): every example of its slice \(slice) is deleted, so the slice cannot be "
                + "rebuilt. Plan the remaining data into a new run (lethe plan --data … --run NEW)."
        case let .invalidValue(flag, value, reason):
            return "\(flag) \(value): \(reason)."
        case let .notEnoughData(m, l, needed, available, unit):
            return "--shards \(m) × --slices \(l) needs at least \(needed) \(unit) (one per slice), "
                + "but the data has \(available). Lower --shards or --slices."
        case let .budgetExceedsPermutations(budget, l, count):
            return "--budget \(budget): \(l) slices have only \(count) distinct orders (L!). "
                + "Lower --budget to at most \(count) or raise --slices."
        case let .invalidPrior(file, reason):
            return "--prior \(file): \(reason). The prior is a JSON array of one probability per slice, "
                + "or an object {\"0\": p0, \"1\": p1, …} keyed by 0-based slice index, summing to 1."
        case let .planExists(path):
            return "\(path) already holds a plan. Choose another --run directory, or pass --force to replace it."
        case let .unsupportedFormat(file, found, expected):
            return "\(file): not " + (expected == "a Lethe tombstone log" ? "a tombstone log" : "a plan")
                + " this build reads (found \(found), expected \(expected)). Read it with the Lethe version that wrote "
                + "it, or restore it from a backup: a run with deletions cannot be planned again (a new plan would not "
                + "hold them)."
        case let .invariantViolated(file, invariant, detail):
            return "\(file): plan invariant \"\(invariant)\" broken: \(detail). The plan was altered or damaged; "
                + "restore it (and its tombstone log) from a backup. `lethe plan --force` makes a new plan only for a "
                + "run without deletions, and its checkpoints are then invalid."
        case let .damagedPlan(file, reason):
            return "\(file): the plan is damaged or was modified since Lethe wrote it (\(reason)); Lethe does not "
                + "read it. Restore it from a backup: a plan cannot be made again, since a new plan cuts other slices "
                + "and would not hold the run's deletions."
        }
    }
}
