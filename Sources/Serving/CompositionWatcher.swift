import Forgetting
import Foundation
import Logging
import ServiceLifecycle
import Training

/// Watches the run for changes made by other processes (`lethe forget`, `retrain`, `train`):
/// every `interval` it compares served.json's identity with the snapshot's and loads a new
/// composition when it changed (or retries one that failed), and it reads the newest deletion
/// request in the ledger, so readiness turns false as soon as a deletion is accepted that the
/// snapshot does not include.
struct CompositionWatcher: Service {
    let store: SnapshotStore
    let layout: RunLayout
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let state = WatchState(layout: layout)
        // A graceful shutdown cancels the loop: that is how the watcher ends, not a failure.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                let store = self.store, logger = self.logger
                _ = try? await Blocking.run { state.poll(store: store, logger: logger) }
            }
        }
    }
}

/// What the watcher does at each tick, off Swift's cooperative threads.
private struct WatchState: Sendable {
    let layout: RunLayout

    func poll(store: SnapshotStore, logger: Logger) {
        let before = store.current?.number
        if store.needsReload {
            let snapshot = store.reload()
            if let snapshot, snapshot.number != before {
                logger.info("swapped in a new composition", metadata: [
                    "generation": "\(snapshot.generation.sequenceNumber)", "snapshot": "\(snapshot.number)",
                    "load_ms": "\(Int(snapshot.loadSeconds * 1000))"])
            } else if let reason = store.readiness.reason {
                logger.warning("composition not swapped in", metadata: ["reason": "\(reason)"])
            }
        }
        store.pollLedger()
    }
}
