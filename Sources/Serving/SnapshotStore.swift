import CommandSupport
import Forgetting
import Foundation
import Training

/// The snapshot the server answers from, and how it moves on.
///
/// Reads take the current snapshot under a short lock; a new snapshot is loaded beside the old
/// one and swapped in with one assignment, so a batch in flight finishes on the snapshot it
/// started with. Loads (and the server's own forgets, which end in a load) are serialised by
/// `loadLock`. `fresh()` — called when a batch forms — compares served.json's identity with
/// the snapshot's and loads first when it changed: a request that starts after a publish never
/// gets the composition that publish replaced.
///
/// Readiness: a snapshot is loaded, the last load of a changed served.json did not fail, and no
/// deletion request in the ledger is newer than the snapshot's generation. When a load fails
/// and the ledger holds a request newer than the snapshot, the old snapshot may contain that
/// deletion: inference is refused (503) until a good composition loads, never answered stale.
public final class SnapshotStore: @unchecked Sendable {
    let loader: SnapshotLoader
    private let lock = NSLock()
    private let loadLock = NSLock()
    private var snapshot: ServedSnapshot?
    private var swapCount = 0
    /// Why the last load of a new served.json failed, the identity it failed on and when.
    private var failure: (reason: String, identity: FileIdentity?, at: Date)?
    /// A failed composition is tried again after this long even if served.json did not change
    /// (a stage file may have been restored).
    static let retryInterval: TimeInterval = 1
    /// The newest deletion request in the ledger, as last polled.
    private var lastRequestSequence: Int64 = 0
    /// Since when the snapshot has lacked an accepted deletion (nil while it has them all).
    private var supersededSince: Date?
    let metrics: ServerMetrics

    init(loader: SnapshotLoader, metrics: ServerMetrics) {
        self.loader = loader; self.metrics = metrics
        servedPath = loader.layout.servedURL.path
        ledgerPath = loader.layout.ledgerURL.path
    }
    /// The paths polled every few milliseconds, made once (building a URL's path costs more
    /// than the stat).
    private let servedPath: String
    private let ledgerPath: String

    /// The snapshot now, without checking the disk (status pages).
    public var current: ServedSnapshot? { lock.withLock { snapshot } }

    /// What `/v2/health/ready` and `/v1/status` report.
    public struct Readiness: Sendable {
        public var ready: Bool
        public var reason: String?
        /// Inference is refused: the snapshot may hold an accepted deletion.
        public var refusesInference: Bool
    }

    public var readiness: Readiness {
        lock.withLock {
            guard let snapshot else {
                return Readiness(ready: false, reason: failure?.reason ?? "no composition loaded yet", refusesInference: true)
            }
            let newerRequest = lastRequestSequence > snapshot.generation.sequenceNumber
            if snapshot.composition.liveShards.isEmpty && failure == nil && !newerRequest {
                return Readiness(ready: false, reason: RunStateError.everyShardDead(run: loader.layout.directory.path)
                    .description, refusesInference: true)
            }
            if let failure {
                return Readiness(ready: false, reason: "the published composition was refused: \(failure.reason)",
                                 refusesInference: newerRequest)
            }
            if newerRequest {
                // Past the wait a batch gives a publish, inference is refused until it comes.
                let overdue = supersededSince.map { Date().timeIntervalSince($0) >= Self.publishWait } ?? false
                return Readiness(ready: false, reason: "deletion request #\(lastRequestSequence) is accepted but not yet in "
                                 + "the served composition (generation #\(snapshot.generation.sequenceNumber))"
                                 + (overdue ? "; its forget did not finish: the server completes it within seconds (lethe "
                                    + "forget --resume does it now)" : ""),
                                 refusesInference: overdue)
            }
            return Readiness(ready: true, reason: nil, refusesInference: false)
        }
    }

    /// Installs the first snapshot (loaded by the caller before the server listens).
    func install(_ first: ServedSnapshot) {
        lock.withLock {
            snapshot = first
            swapCount = first.number
        }
        metrics.swapped(to: first)
    }

    /// Reads the newest deletion request in the ledger (the watcher calls this every poll, and
    /// a failed load calls it before deciding whether the old snapshot may still answer). The
    /// ledger is watched once it exists: a run with no deletion yet has none, and reading must
    /// not create one. The watch runs the query only after another connection committed.
    func pollLedger() {
        ledgerLock.withLock {
            if ledger == nil, FileManager.default.fileExists(atPath: ledgerPath) {
                ledger = try? LedgerWatch(url: loader.layout.ledgerURL)
            }
            if let last = try? ledger?.lastSequenceNumber(ofKind: .request) {
                lock.withLock {
                    lastRequestSequence = max(lastRequestSequence, last)
                    noteSupersession()
                }
            }
        }
    }

    /// Starts or clears `supersededSince`; the caller holds `lock`.
    private func noteSupersession() {
        let superseded = snapshot.map { lastRequestSequence > $0.generation.sequenceNumber } ?? false
        if !superseded { supersededSince = nil } else if supersededSince == nil { supersededSince = Date() }
    }

    /// Whether the snapshot has lacked an accepted deletion for at least `seconds`: the forget
    /// that accepted it is not publishing (it died, or its output pipe killed it).
    func lacksADeletion(forAtLeast seconds: TimeInterval) -> Bool {
        lock.withLock { supersededSince.map { Date().timeIntervalSince($0) >= seconds } ?? false }
    }
    private let ledgerLock = NSLock()
    private var ledger: LedgerWatch?

    /// Loads the composition on disk and swaps it in. A failed load keeps the old snapshot and
    /// records why; it is retried when served.json changes again, or after `retryInterval`.
    @discardableResult
    func reload() -> ServedSnapshot? {
        loadLock.withLock { reloadHoldingLoadLock() }
    }

    private func reloadHoldingLoadLock() -> ServedSnapshot? {
        guard needsReload else { return current }
        let onDisk = FileIdentity.of(path: servedPath)
        let number = lock.withLock { swapCount + 1 }
        do {
            let loaded = try loader.load(number: number)
            lock.withLock {
                snapshot = loaded
                swapCount = number
                failure = nil
                noteSupersession()
            }
            metrics.swapped(to: loaded)
            return loaded
        } catch {
            lock.withLock { failure = ("\(error)", onDisk, Date()) }
            metrics.failedLoad()
            pollLedger()
            return current
        }
    }

    /// The snapshot a batch forming now must use: reloaded first if served.json changed, and
    /// never one that an accepted deletion supersedes. When the ledger holds a request newer
    /// than the snapshot (another process accepted it and is publishing), the batch waits for
    /// that publish, at most `publishWait`, then is refused. Throws `Refusal` when no snapshot
    /// may answer.
    func fresh() throws -> ServedSnapshot {
        let deadline = Date().addingTimeInterval(Self.publishWait)
        while true {
            if needsReload { reload() }
            let state = readiness
            guard let snapshot = current, !state.refusesInference else {
                throw Refusal.unavailable(state.reason ?? "no composition loaded")
            }
            guard isSuperseded(snapshot) else { return snapshot }
            guard Date() < deadline else {
                throw Refusal.unavailable((readiness.reason ?? "a deletion is accepted but not yet published")
                                          + "; the server answers once it is published (it completes an "
                                          + "interrupted forget itself after 5 s; lethe forget --resume does it now)")
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
    }

    /// A forget publishes within milliseconds of accepting; a batch waits this long for it.
    static let publishWait: TimeInterval = 2

    /// Whether the ledger, read now, holds a deletion request newer than `snapshot`: its
    /// answers must not be given (a batch checks before it forms and again before it answers).
    func isSuperseded(_ snapshot: ServedSnapshot) -> Bool {
        pollLedger()
        return lock.withLock { lastRequestSequence > snapshot.generation.sequenceNumber }
    }

    /// served.json is not the file the snapshot came from, or a failed load is due for a retry.
    var needsReload: Bool {
        let onDisk = FileIdentity.of(path: servedPath)
        return lock.withLock {
            if let failure { return failure.identity != onDisk || Date().timeIntervalSince(failure.at) >= Self.retryInterval }
            return snapshot?.identity != onDisk
        }
    }

    /// Runs `body` (a forget) with loads held off, then loads what it published: the caller
    /// answers only after the new snapshot is swapped in.
    func publishing<T>(_ body: () throws -> T) rethrows -> (T, ServedSnapshot?) {
        try loadLock.withLock {
            let result = try body()
            return (result, reloadHoldingLoadLock())
        }
    }
}

/// Why the server will not answer a request from the model.
enum Refusal: Error, CustomStringConvertible {
    case unavailable(String)
    var description: String {
        switch self { case let .unavailable(reason): return reason }
    }
}
