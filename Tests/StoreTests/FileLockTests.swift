import Foundation
import Testing
@testable import Store

/// The run lock is on the file its path names: removing the lock file while a process waits
/// (an operator clearing a "stale" lock) does not let that process in beside the next holder.
@Suite(.serialized) struct FileLockTests {
    static func scratchLock() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-lock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(".run.lock")
    }

    @Test func aWaiterDoesNotEnterBesideTheHolderOfAReplacedLockFile() throws {
        let lock = try Self.scratchLock()
        defer { try? FileManager.default.removeItem(at: lock.deletingLastPathComponent()) }
        let firstHolds = DispatchSemaphore(value: 0), releaseFirst = DispatchSemaphore(value: 0)
        let secondHolds = DispatchSemaphore(value: 0), releaseSecond = DispatchSemaphore(value: 0)
        let waiterDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? FileLock.withExclusiveLock(lock) { firstHolds.signal(); releaseFirst.wait() }
        }
        firstHolds.wait()
        Thread.detachNewThread {
            try? FileLock.withExclusiveLock(lock) { waiterDone.signal() }
        }
        usleep(50_000)
        // The lock file is removed while the waiter waits on it, and a new holder locks the new one.
        try FileManager.default.removeItem(at: lock)
        Thread.detachNewThread {
            _ = try? FileLock.withLockIfFree(lock) { secondHolds.signal(); releaseSecond.wait() }
        }
        #expect(secondHolds.wait(timeout: .now() + 10) == .success, "the new lock file could not be taken")
        releaseFirst.signal()
        #expect(waiterDone.wait(timeout: .now() + 0.3) == .timedOut, "the waiter entered beside the new holder")
        releaseSecond.signal()
        #expect(waiterDone.wait(timeout: .now() + 10) == .success, "the waiter never entered")
    }

    /// A shared reader whose lock file disappears runs unlocked, as when there never was one.
    @Test func aReaderWhoseLockFileIsGoneRunsUnlocked() throws {
        let lock = try Self.scratchLock()
        defer { try? FileManager.default.removeItem(at: lock.deletingLastPathComponent()) }
        #expect(try FileLock.withSharedLockForReading(lock) { 7 } == 7)
        #expect(!FileManager.default.fileExists(atPath: lock.path), "a reader must not create the lock file")
        #expect(try FileLock.withExclusiveLock(lock) { 8 } == 8)
        #expect(try FileLock.withSharedLockForReading(lock, waitingAtMost: 1) { 9 } == 9)
    }
}
