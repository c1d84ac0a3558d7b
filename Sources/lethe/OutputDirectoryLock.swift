import Foundation
import Store

/// One writer per output directory for the commands that write one (finetune, unlearn): two
/// at once would each write the same files, the last rename winning unannounced, and one's
/// clean-up could remove the other's. The first holds `DIR/.<command>.lock` for its whole run;
/// a second is refused at once and touches nothing.
enum OutputDirectoryLock {
    /// Runs `body` (given the lock file) holding `directory`'s lock for `command`, or throws
    /// `refusal` without running it. The directory must exist.
    static func holding<T>(_ directory: URL, command: String, refusal: @autoclosure () -> String,
                           _ body: (URL) throws -> T) throws -> T {
        let lock = lockURL(directory, command: command)
        guard let result = try FileLock.withLockIfFree(lock, { try body(lock) }) else {
            throw UserFacingError(description: refusal())
        }
        return result
    }

    static func lockURL(_ directory: URL, command: String) -> URL {
        directory.appendingPathComponent(".\(command).lock")
    }
}
