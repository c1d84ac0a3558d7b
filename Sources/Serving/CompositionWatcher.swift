import CommandSupport
import Forgetting
import Foundation
import Logging
import ServiceLifecycle
import Support
import Synchronization
import Training

/// Watches the run for changes made by other processes (`lethe forget`, `retrain`, `train`):
/// every `interval` it compares served.json's identity with the snapshot's and loads a new
/// composition when it changed (or retries one that failed), and it reads the newest deletion
/// request in the ledger, so readiness turns false as soon as a deletion is accepted that the
/// snapshot does not include.
///
/// The ticks run on a thread of their own that sleeps between them. A tick does the checks
/// while something in the run directory changed within the last `settleInterval` (inotify: a
/// publish renames served.json into it, a ledger append writes its WAL there; a commit becomes
/// visible only after the WAL's fsync, which raises no event, so one event is followed by
/// checks for a while), and otherwise at least every `fullCheckInterval`: for a failed load's
/// retry and for writers inotify does not see. An idle server polled every 5 ms used ~7% of a
/// core when every tick asked SQLite and a task's sleep handed the work to a dispatch queue.
struct CompositionWatcher: Service {
    let store: SnapshotStore
    let layout: RunLayout
    let interval: Duration
    let logger: Logger
    static let fullCheckInterval: Duration = .milliseconds(250)
    static let settleInterval: Duration = .seconds(1)

    func run() async throws {
        let store = self.store, logger = self.logger
        let lastWarning = LastWarning(), recovery = RecoveryAttempts(run: layout.directory)
        let changes = DirectoryChanges(directory: layout.directory.path)
        let ticks = TickThread(name: "lethe-watcher", interval: interval,
                               fullCheckInterval: max(interval, Self.fullCheckInterval),
                               settleInterval: Self.settleInterval, changes: changes) {
            Self.poll(store: store, logger: logger, lastWarning: lastWarning)
            recovery.completeAnInterruptedForget(store: store, logger: logger)
        }
        // A graceful shutdown (or cancellation) ends the wait: that is how the watcher stops,
        // not a failure.
        try? await cancelWhenGracefulShutdown {
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        ticks.stop()
    }
}

/// A thread that wakes every `interval` and runs `body` when `changes` saw something within
/// the last `settleInterval` or `fullCheckInterval` has passed since `body` last ran, until
/// `stop()`, which returns once the thread has finished its current tick.
final class TickThread: Sendable {
    private let stopping = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, interval: Duration, fullCheckInterval: Duration, settleInterval: Duration,
         changes: DirectoryChanges, body: @escaping @Sendable () -> Void) {
        let clock = ContinuousClock()
        let thread = Thread { [self] in
            var lastRun = clock.now, lastChange = clock.now
            while true {
                Thread.sleep(forTimeInterval: interval.seconds)
                if stopping.withLock({ $0 }) { break }
                let now = clock.now
                if changes.changed() { lastChange = now }
                if now - lastChange < settleInterval || now - lastRun >= fullCheckInterval {
                    lastRun = now
                    body()
                }
            }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    func stop() {
        stopping.withLock { $0 = true }
        finished.wait()
    }
}

extension CompositionWatcher {
    /// What the watcher does at each tick that checks, on its own thread.
    /// A refused composition is retried every second; its warning is logged once per reason.
    static func poll(store: SnapshotStore, logger: Logger, lastWarning: LastWarning) {
        let before = store.current?.number
        if store.needsReload {
            let snapshot = store.reload()
            if let snapshot, snapshot.number != before {
                lastWarning.reason.withLock { $0 = nil }
                logger.info("swapped in a new composition", metadata: [
                    "generation": "\(snapshot.generation.sequenceNumber)", "snapshot": "\(snapshot.number)",
                    "load_ms": "\(Int(snapshot.loadSeconds * 1000))"])
            } else if let reason = store.readiness.reason,
                      lastWarning.reason.withLock({ last in defer { last = reason }; return last != reason }) {
                logger.warning("composition not swapped in (retried every second; logged again if the reason changes)",
                               metadata: ["reason": "\(reason)"])
            }
        }
        store.pollLedger()
    }
}

/// Completes, from the watcher's thread, a forget that accepted a deletion and stopped before
/// publishing it (killed, or killed by its closed output pipe): until someone finishes it the
/// server could only refuse inference. A live forget publishes within milliseconds, so the
/// watcher waits `delay` first; recovery takes the run lock, so a forget still working is
/// waited for, never overtaken. A failed attempt is retried every `retryInterval`.
final class RecoveryAttempts: Sendable {
    let run: URL
    private let lastAttempt = Mutex<Date?>(nil)
    private let lastFailure = Mutex<String?>(nil)
    static let delay: TimeInterval = 5
    static let retryInterval: TimeInterval = 5

    init(run: URL) { self.run = run }

    func completeAnInterruptedForget(store: SnapshotStore, logger: Logger) {
        guard store.lacksADeletion(forAtLeast: Self.delay) else { return }
        let due = lastAttempt.withLock { last in
            guard last.map({ Date().timeIntervalSince($0) >= Self.retryInterval }) ?? true else { return false }
            last = Date()
            return true
        }
        guard due else { return }
        do {
            let recovery = try RunAccess.guarded(run).recover()
            lastFailure.withLock { $0 = nil }
            if recovery.didSomething {
                logger.notice("completed an interrupted forget", metadata: [
                    "requests": "\(recovery.completedRequestCount)",
                    "republished": "\(recovery.republishedBecause?.explanation ?? "no")"])
            }
            store.reload()
        } catch {
            let reason = "\(error)"
            if lastFailure.withLock({ last in defer { last = reason }; return last != reason }) {
                logger.error("could not complete an interrupted forget (retried every 5 s; `lethe forget --resume` completes it)",
                             metadata: ["reason": "\(reason)"])
            }
        }
    }
}

/// The reason of the last "not swapped in" warning, shared by the watcher's ticks.
final class LastWarning: Sendable {
    let reason = Mutex<String?>(nil)
}
