import ArgumentParser

/// The exit codes of `lethe`, one meaning each (the README's exit-code table).
///
///     0   done
///     1   failed or refused: the message says why and what to do
///     2   audit: a forgotten example is still served
///     3   verify: problems found
///     4   retrain: a shard was left on a truncated prefix (forgets kept arriving)
///     5   forget: done, but some ids or groups were unknown to the plan (recorded as such)
///     64  usage: a missing, malformed or out-of-range option (nothing was done)
enum ExitStatus {
    static let servedAfterForgetting = ExitCode(2)
    static let verificationProblems = ExitCode(3)
    static let retrainTruncated = ExitCode(4)
    static let unknownTargets = ExitCode(5)
}
