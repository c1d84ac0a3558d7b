/// Everything that can go wrong while unlearning or evaluating a decoder.
///
/// Each case carries the facts (file, line, field, value) and its message ends with what to do.
public enum ApproximateError: Error, CustomStringConvertible, Equatable {
    /// A data file could not be read.
    case unreadableData(path: String, reason: String)
    /// `--adapter` names neither an adapter file nor a directory holding one.
    case adapterNotFound(path: String, reason: String)
    /// A JSON Lines record is malformed or lacks the text field.
    case badRecord(path: String, line: Int, reason: String)
    /// A data set yields no chunk of at least two tokens.
    case emptyData(name: String, path: String)
    /// The method needs a data set that was not given.
    case missingData(method: String, needs: String)
    /// A hyperparameter is out of range.
    case invalidValue(field: String, value: String, reason: String)
    /// An adapter file does not match its seal (`HDF5Seal`): its bytes changed after Lethe wrote it.
    case damagedAdapter(path: String, reason: String)
    /// An intact file that is not an adapter this build reads (another format, a value out of range).
    case invalidAdapter(path: String, reason: String)
    /// An adapter file does not fit the model it is applied to (another base model, layers it lacks).
    case adapterMismatch(path: String, reason: String)
    /// A metric needs both classes (members and non-members).
    case needsBothClasses(members: Int, nonMembers: Int)
    /// The objective became NaN or infinite at a 1-based unlearning step; nothing was saved.
    case nonFiniteLoss(step: Int, loss: Float)

    public var description: String {
        switch self {
        case let .unreadableData(path, reason):
            return "cannot read \(path): \(reason). Check the path (run `make setup` for the bundled data sets)."
        case let .adapterNotFound(path, reason):
            return "--adapter \(path): \(reason). Give the directory `lethe unlearn --out` wrote, or the adapter.h5 in it."
        case let .badRecord(path, line, reason):
            return "\(path):\(line): \(reason). Each line must be a JSON object with a string text field."
        case let .emptyData(name, path):
            return "the \(name) data \(path) gives no chunk of at least two tokens. Pass a file with text in it."
        case let .missingData(method, needs):
            return "method \(method) needs \(needs). Pass it (see `lethe unlearn --help`)."
        case let .invalidValue(field, value, reason):
            return "invalid \(field) = \(value): \(reason). Choose a value in range."
        case let .damagedAdapter(path, reason):
            return "\(path): the adapter file is damaged or was modified since Lethe wrote it (\(reason)); Lethe does "
                + "not read it. Run `lethe unlearn` again to write it, or restore it from a backup."
        case let .invalidAdapter(path, reason):
            return "\(path): not an adapter this lethe reads (\(reason)). Pass the adapter.h5 that `lethe unlearn --out` "
                + "wrote, or write it again with this version."
        case let .adapterMismatch(path, reason):
            return "\(path): \(reason). Apply the adapter to the model it was trained from (--model), or run "
                + "`lethe unlearn` again on this model."
        case let .nonFiniteLoss(step, loss):
            // The first step's loss comes before any update: the model or the data, not the rate.
            if step <= 1 {
                return "unlearning step \(step): the loss is \(loss) before any update, so the base model (--model) or "
                    + "the data gives it, not the learning rate; nothing was saved. Check the model file (`lethe "
                    + "perplexity --model … --data …` on the same texts)."
            }
            return "unlearning step \(step): the loss became \(loss), so the adapter diverged; nothing was saved. "
                + "Lower the learning rate (--lr) and run again."
        case let .needsBothClasses(members, nonMembers):
            return "membership metrics need members and non-members (got \(members) and \(nonMembers)). Pass both data sets."
        }
    }
}
