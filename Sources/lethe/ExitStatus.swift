import ArgumentParser

/// The exit codes of `lethe`, one meaning each, defined here only: every command's help lists
/// the ones it can return (`help(_:)`), `lethe --help` lists them all, and the README's
/// exit-code table repeats that list (a test compares them).
///
/// 1 is what ArgumentParser returns for any error thrown from `run()`, 64 (EX_USAGE) what it
/// returns for a `ValidationError`; the others are thrown as `status.exitCode` after a command
/// has printed its result.
enum ExitStatus: Int32, CaseIterable {
    case done = 0
    case failed = 1
    case servedAfterForgetting = 2
    case verificationProblems = 3
    case retrainTruncated = 4
    case unknownTargets = 5
    case usage = 64
    case transientFailure = 75

    /// What the code means, as the help texts and the README print it.
    var meaning: String {
        switch self {
        case .done: return "done"
        case .failed: return "failed or refused: the message names the file or option and says what to do"
        case .servedAfterForgetting: return "audit: a forgotten example is still served"
        case .verificationProblems: return "verify: problems found"
        case .retrainTruncated: return "retrain: a shard was left on a truncated prefix because forgets kept arriving"
        case .unknownTargets: return "forget: done, but some ids or groups are unknown to the plan (recorded as unknown)"
        case .usage: return "usage: a missing, malformed or out-of-range option; nothing was done"
        case .transientFailure: return "train, in a Slurm array task: a transient failure; Slurm requeues the task"
        }
    }

    /// Ends the process with this code when thrown from `run()`.
    var exitCode: ExitCode { ExitCode(rawValue) }

    /// The codes every command can return.
    static let common: [ExitStatus] = [.done, .failed, .usage]

    /// The "Exit codes:" paragraph of a command's help: the common codes and `specific` ones,
    /// in numeric order, one per line.
    static func help(_ specific: ExitStatus...) -> String {
        list((common + specific).sorted { $0.rawValue < $1.rawValue })
    }

    /// The paragraph for `statuses`.
    static func list(_ statuses: [ExitStatus]) -> String {
        "Exit codes:\n" + statuses.map { "  " + String($0.rawValue).padding(toLength: 4, withPad: " ", startingAt: 0)
            + $0.meaning }.joined(separator: "\n")
    }
}
