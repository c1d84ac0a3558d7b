import Foundation
import Synchronization
import Store
import Training

/// Micro-batching: concurrent inference requests are queued, and one worker thread takes up to
/// `maxBatch` texts, runs them as one ensemble pass on the snapshot current when the batch forms,
/// and hands each request its rows. The ensemble sorts the batch's texts by length, so padding
/// stays small.
///
/// Once the first request of a batch arrives, the worker waits for more, at most `maxWait`, and
/// no longer once the batch holds what was queued when the previous pass ended plus as many
/// texts as that pass answered (`Self.target`): in a closed loop the clients a pass answered
/// send their next requests within a fraction of a millisecond, so the worker waits for them
/// (and two groups of clients merge into one larger, cheaper batch) but not beyond them, and a
/// lone client is never kept waiting.
final class InferenceBatcher: @unchecked Sendable {
    struct Answer {
        let logits: [[Float]]
        let snapshot: ServedSnapshot
    }

    /// One request: its texts, and what passes have answered of them so far. A request of more
    /// texts than `maxBatch` spans several passes, each taking at most `maxBatch`, with other
    /// requests' passes between them; all its rows come from the same models (a swap between
    /// its passes that changes a served model starts it again on the new snapshot; after two
    /// such restarts it runs whole, in one pass holding the run lock).
    private final class Job {
        let texts: [String]
        private let reply: (Result<Answer, Error>) -> Void
        /// False once the client's connection is gone: nobody can read the answer.
        let isConnected: @Sendable () -> Bool
        private let replied = Mutex(false)
        /// Texts handed to passes so far.
        var taken = 0
        var rows: [[Float]] = []
        var snapshot: ServedSnapshot?
        var restarts = 0
        /// Run the rest in one pass that holds the run lock: deletions keep changing its models.
        var whole = false
        var remaining: Int { texts.count - taken }

        init(texts: [String], isConnected: @escaping @Sendable () -> Bool, reply: @escaping (Result<Answer, Error>) -> Void) {
            self.texts = texts; self.isConnected = isConnected; self.reply = reply
        }

        /// Answers the request, once: later calls do nothing.
        func finish(_ result: Result<Answer, Error>) {
            let first = replied.withLock { done in
                defer { done = true }
                return !done
            }
            if first { reply(result) }
        }
    }

    /// The texts `range` of `job` in a pass.
    private struct Piece {
        let job: Job
        let range: Range<Int>
    }

    /// The pieces of one pass, and whether it must hold the run lock from the start.
    private struct Batch {
        let pieces: [Piece]
        var holdsRunLock = false
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var stopping = false
    private var finished = false
    private let store: SnapshotStore
    private let maxBatch: Int
    private let maxWait: TimeInterval
    private let threads: Int
    private let metrics: ServerMetrics
    /// Texts of the pass holding the run lock now (0 when none does): a forget refused for the
    /// lock is told that this server holds it, not another process.
    private let runLockTexts = Atomic<Int>(0)
    var textsOfPassHoldingRunLock: Int { runLockTexts.load(ordering: .relaxed) }
    /// Texts of the previous batch (0 before the first).
    private var previousBatchTexts = 0
    /// Texts queued when the previous pass ended, counted before its answers go out: a client
    /// that sends its next request as soon as it is answered is not one that was waiting.
    private var queuedAtPassEnd = 0

    init(store: SnapshotStore, maxBatch: Int, maxWait: TimeInterval, threads: Int, metrics: ServerMetrics) {
        self.store = store; self.maxBatch = maxBatch; self.maxWait = maxWait; self.threads = threads
        self.metrics = metrics
        let thread = Thread { [self] in loop() }
        thread.name = "lethe-inference"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// The ensemble's logits for `texts` and the snapshot that produced them. Texts not yet in a
    /// pass when `isConnected` turns false are dropped, and the call throws `CancellationError`.
    func infer(_ texts: [String], isConnected: @escaping @Sendable () -> Bool = { true }) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            condition.withLock {
                if stopping {
                    continuation.resume(throwing: Refusal.unavailable("the server is shutting down"))
                    return
                }
                queue.append(Job(texts: texts, isConnected: isConnected) { continuation.resume(with: $0) })
                condition.signal()
            }
        }
    }

    /// Finishes the queued work, then stops the worker.
    func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
            while !finished { condition.wait() }
        }
    }

    private func loop() {
        while let batch = nextBatch() {
            let pieces = batch.pieces
            let texts = pieces.flatMap { $0.job.texts[$0.range] }
            metrics.batch(size: texts.count)
            do {
                let (snapshot, logits) = batch.holdsRunLock ? try passHoldingRunLock(texts) : try pass(texts)
                condition.withLock { queuedAtPassEnd = queuedTexts }
                var offset = 0
                for piece in pieces {
                    let rows = logits[offset ..< offset + piece.range.count]
                    offset += piece.range.count
                    deliver(rows, of: piece, from: snapshot)
                }
            } catch {
                condition.withLock { queuedAtPassEnd = queuedTexts }
                fail(pieces.map(\.job), error)
            }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    /// The ensemble's logits for `texts` and the snapshot they answer for.
    ///
    /// A deletion accepted during the pass voids its answers if it changed a served model: the
    /// pass runs again on the composition that deletion publishes. One that changed none (an
    /// unknown id, an example in no served prefix) leaves them valid for the new snapshot. When
    /// deletions keep arriving faster than a pass ends, the third attempt holds the run lock.
    private func pass(_ texts: [String]) throws -> (ServedSnapshot, [[Float]]) {
        var snapshot = try store.fresh()
        var logits = try compute(texts, on: snapshot)
        var attempts = 1
        while store.isSuperseded(snapshot) {
            let next = try store.fresh()
            if next.servesTheSameModels(as: snapshot) {
                snapshot = next
                continue
            }
            attempts += 1
            if attempts == 3 { return try passHoldingRunLock(texts) }
            snapshot = next
            logits = try compute(texts, on: snapshot)
        }
        return (snapshot, logits)
    }

    /// A pass that holds the run lock shared, so no forget (which takes it exclusive) is
    /// accepted while it runs: it ends with answers, and a forget waits for it at most one pass.
    /// The snapshot is taken before the lock (a load waits for this server's own forget, which
    /// may be waiting for the lock), and is used only if no deletion came in between.
    private func passHoldingRunLock(_ texts: [String]) throws -> (ServedSnapshot, [[Float]]) {
        let lock = store.loader.layout.lockURL
        for _ in 0..<20 {
            let snapshot = try store.fresh()
            let locked: [[Float]]?? = try FileLock.withSharedLockForReading(lock, waitingAtMost: Self.lockWait) {
                runLockTexts.store(texts.count, ordering: .relaxed)
                defer { runLockTexts.store(0, ordering: .relaxed) }
                return store.isSuperseded(snapshot) ? nil : try compute(texts, on: snapshot)
            }
            guard let computed = locked else {
                throw Refusal.unavailable("another process has held the run lock for more than \(Int(Self.lockWait)) s "
                                          + "while deletions kept changing the served models; try again")
            }
            // (Checked again: a run whose lock file does not exist yet was not locked.)
            if let logits = computed, !store.isSuperseded(snapshot) { return (snapshot, logits) }
        }
        throw Refusal.unavailable("deletions kept arriving faster than this request could be answered; try again")
    }

    /// How long a pass waits for the run lock (a stopped process may hold it).
    static let lockWait: TimeInterval = 10

    private func compute(_ texts: [String], on snapshot: ServedSnapshot) throws -> [[Float]] {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { metrics.pass(seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        return try snapshot.ensemble.ensembleLogits(texts, threads: threads)
    }

    /// Adds a piece's rows to its request and answers the request once it is complete.
    private func deliver(_ rows: ArraySlice<[Float]>, of piece: Piece, from snapshot: ServedSnapshot) {
        let job = piece.job
        let restarted = condition.withLock {
            guard let earlier = job.snapshot, !earlier.servesTheSameModels(as: snapshot) else { return false }
            // A served model changed between this request's passes: start it again, all of it
            // on the same models; the second time, the rest runs whole under the run lock.
            job.taken = 0; job.rows = []; job.snapshot = nil
            job.restarts += 1
            job.whole = job.restarts >= 2
            if let index = queue.firstIndex(where: { $0 === job }) { queue.remove(at: index) }
            queue.insert(job, at: 0)
            return true
        }
        if restarted { return }
        job.snapshot = snapshot
        job.rows += rows
        if job.rows.count == job.texts.count {
            job.finish(.success(Answer(logits: job.rows, snapshot: snapshot)))
        }
    }

    /// Answers each request with `error` and drops what is left of it (a batch holds at most one
    /// piece of a request).
    private func fail(_ jobs: [Job], _ error: Error) {
        for job in jobs {
            condition.withLock { queue.removeAll { $0 === job } }
            job.finish(.failure(error))
        }
    }

    /// The texts a forming batch waits for: those queued when the previous pass ended and as
    /// many as it answered, at least 1 and at most `maxBatch`.
    static func target(queuedAtPassEnd: Int, previousBatchTexts: Int, maxBatch: Int) -> Int {
        max(1, min(maxBatch, queuedAtPassEnd + previousBatchTexts))
    }

    private var queuedTexts: Int { queue.reduce(0) { $0 + $1.remaining } }

    /// Drops the queued requests of more than one pass (more texts than `maxBatch`, or begun)
    /// whose clients have hung up: no answer could reach them, and each would hold the worker
    /// for many passes. A request of one pass is not checked: the check costs a trip to the
    /// connection's event loop, about what its pass would save. Called holding `condition`,
    /// which it releases while it asks the event loops (so that none of them ever waits for this
    /// thread). Between passes no piece of a request is in flight, so each dropped one is
    /// answered (with `CancellationError`) at once.
    private func dropRequestsOfDisconnectedClients() {
        let candidates = queue.filter { $0.remaining > maxBatch || $0.taken > 0 }
        guard !candidates.isEmpty else { return }
        condition.unlock()
        let gone = candidates.filter { !$0.isConnected() }
        condition.lock()
        guard !gone.isEmpty else { return }
        var dropped = 0
        queue.removeAll { job in
            guard gone.contains(where: { $0 === job }) else { return false }
            dropped += job.remaining
            job.finish(.failure(CancellationError()))
            return true
        }
        if dropped > 0 { metrics.abandoned(texts: dropped) }
    }

    /// Waits for work and gathers a batch; nil once stopping with nothing queued.
    private func nextBatch() -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        let target = Self.target(queuedAtPassEnd: queuedAtPassEnd, previousBatchTexts: previousBatchTexts,
                                 maxBatch: maxBatch)
        while true {
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty { return nil }
            let start = Date()
            let deadline = start.addingTimeInterval(maxWait)
            while queuedTexts < target && !stopping {
                if !condition.wait(until: deadline) { break }
            }
            metrics.batchWait(seconds: Date().timeIntervalSince(start))
            dropRequestsOfDisconnectedClients()
            if !queue.isEmpty { break }
        }
        let head = queue.removeFirst()
        if head.whole {
            let piece = Piece(job: head, range: head.taken ..< head.texts.count)
            head.taken = head.texts.count
            previousBatchTexts = min(maxBatch, piece.range.count)
            return Batch(pieces: [piece], holdsRunLock: true)
        }
        if head.remaining > maxBatch {
            // A piece of a large request; the rest waits behind the requests queued after it.
            let piece = Piece(job: head, range: head.taken ..< head.taken + maxBatch)
            head.taken += maxBatch
            queue.append(head)
            previousBatchTexts = maxBatch
            return Batch(pieces: [piece])
        }
        var pieces = [Piece(job: head, range: head.taken ..< head.texts.count)]
        head.taken = head.texts.count
        var count = pieces[0].range.count
        while let next = queue.first, count + next.remaining <= maxBatch {
            queue.removeFirst()
            pieces.append(Piece(job: next, range: next.taken ..< next.texts.count))
            count += next.remaining
            next.taken = next.texts.count
        }
        previousBatchTexts = count
        return Batch(pieces: pieces)
    }
}
