import Foundation

/// Everything that can go wrong in the Forgetting module, with the facts needed to act on it.
///
/// Ledger cases name the ledger file; entry cases name the position of the entry in the
/// batch being appended. Each message ends with what to do.
public enum ForgettingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// SQLite could not open or create the ledger database.
    case ledgerUnavailable(file: String, detail: String)
    /// The file is an SQLite database but not a ledger of a format this version understands.
    case ledgerFormat(file: String, expected: String, found: String)
    /// An entry handed to `append` is malformed; nothing of the batch was written.
    case invalidLedgerEntry(file: String, batchIndex: Int, reason: String)
    /// A database operation on the ledger failed (disk full, I/O error, lock timeout, …).
    case ledgerDatabase(file: String, operation: String, detail: String)
    /// A file of the run (plan, served composition, stage directory) is missing or unusable.
    case runFile(file: String, reason: String)
    /// A stage file no composition may serve any more could not be erased (the composition without
    /// it is published; the next command erases it).
    case unerasableStage(file: String, reason: String)
    /// The deletion log could not be read; nothing of it was applied.
    case unreadableLog(file: String, reason: String)
    /// A line of a deletion log is not a valid request; nothing of the log was applied.
    case malformedRequest(file: String, line: Int, reason: String)
    /// A `full` run has one model on all data: every deletion needs a full retrain.
    case fullRunCannotForget(run: String)
    /// A request names no example or group, or the request set is empty.
    case invalidRequest(reason: String)
    /// The ledger lacks history that the run's composition or receipts quote.
    case ledgerTampered(file: String, reason: String)
    /// A shard cannot be retrained (its run, another retrain, or its data stands in the way).
    case retrainRefused(shard: Int?, reason: String)
    /// The reason of a retrain refused because another retrain holds the shard.
    public static let retrainBusy = "another lethe retrain is working on it"
    /// Another process held the run lock longer than this forget would wait: nothing recorded.
    case runBusy(run: String, seconds: Double)
    /// A ledger entry's payload is not the record its kind calls for.
    case unreadableLedgerEntry(sequenceNumber: Int64, kind: String, reason: String)
    /// Several shards could not be retrained (each reason names its shard); the others were.
    case retrainsRefused(reasons: [String], retrained: [Int])

    /// `unerasableStage` for `path` with the reason of the `unlink` that just failed (errno).
    static func unerasableStage(_ path: String) -> ForgettingError {
        .unerasableStage(file: path, reason: "\(String(cString: strerror(errno))), errno \(errno)")
    }

    public var description: String {
        switch self {
        case .ledgerUnavailable(let file, let detail):
            return "\(file): cannot open the deletion ledger (\(detail))."
                + (detail.contains("Audit a copy") ? "" : " Check that the run directory exists and is writable.")
        case .ledgerFormat(let file, let expected, let found):
            return "\(file): not a ledger this version can use: expected \(expected), found "
                + "\(found). Open it with the Lethe version that wrote it, or point at the "
                + "run's ledger.sqlite."
        case .invalidLedgerEntry(let file, let batchIndex, let reason):
            return "\(file): entry \(batchIndex) of the batch is invalid: \(reason). Nothing of "
                + "the batch was recorded; fix the entry and append the batch again."
        case .ledgerDatabase(let file, let operation, let detail):
            return "\(file): could not \(operation) (\(detail)). Check free disk space and that "
                + "no other process holds the ledger locked, then retry."
        case .runFile(let file, let reason):
            return "\(file): \(reason). Check that the run directory was planned (lethe plan) and "
                + "trained (lethe train), and that this process may read it (and write it, to change the run)."
        case .unerasableStage(let file, let reason):
            return "\(file): cannot erase the stage file (\(reason)). It is served no more (the composition without it "
                + "is published) and must go: make the path removable (its permissions, or what is in its place), and "
                + "the next lethe command on this run erases it."
        case .unreadableLog(let file, let reason):
            return "\(file): cannot read the deletion log (\(reason)). Nothing was applied; check the path "
                + "(a file or a pipe of JSON Lines requests) and its permissions."
        case .malformedRequest(let file, let line, let reason):
            return "\(file):\(line): \(reason). Nothing of the log was applied; fix the line "
                + "(one {\"id\": …} or {\"group\": …} object per line) and run the log again."
        case .retrainRefused(let shard, let reason) where reason == Self.retrainBusy:
            return (shard.map { "shard \($0): " } ?? "") + "cannot retrain: \(reason). Nothing was published for "
                + "this shard by this process; let the other retrain finish (`lethe status` shows the shard's state)."
        case .retrainRefused(let shard, let reason):
            return (shard.map { "shard \($0): " } ?? "") + "cannot retrain: \(reason). Nothing was published for "
                + "this shard; fix the cause and run lethe retrain again (it resumes from the stages already trained)."
        case .unreadableLedgerEntry(let sequenceNumber, let kind, let reason):
            return "deletion ledger (ledger.sqlite) entry #\(sequenceNumber), a \(kind) entry: its payload cannot be read "
                + "(\(reason)). Lethe writes only payloads it reads, so the ledger was written outside Lethe: restore it "
                + "from a backup, then run lethe verify."
        case .retrainsRefused(let reasons, let retrained):
            return reasons.joined(separator: "\n") + "\n" + (retrained.isEmpty ? "No other shard needed a retrain."
                : "Shard(s) " + retrained.map(String.init).joined(separator: ", ") + " were retrained and published.")
        case .ledgerTampered(let file, let reason):
            return "\(file): \(reason). Deletion history may have been lost, so the run will not answer or train; "
                + "restore the ledger from a backup and run lethe verify."
        case .invalidRequest(let reason):
            return "\(reason). Name examples with --id, groups with --group, or a JSON Lines log with --log."
        case .runBusy(let run, let seconds):
            return "\(run): another process has held the run lock for more than \(Int(seconds)) s (a forget, a training "
                + "step's commit, a publish or a retrain), so nothing was recorded; send the request again"
        case .fullRunCannotForget(let run):
            return "\(run) was trained with --strategy full (one model on all data): it cannot forget without a full "
                + "retrain. Nothing was recorded; plan and train the data with S3T or SISA to forget by deactivation."
        }
    }
}
