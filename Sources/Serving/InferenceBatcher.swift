import Foundation
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

    private struct Job {
        let texts: [String]
        let reply: (Result<Answer, Error>) -> Void
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
    /// Texts of the previous batch (0 before the first).
    private var previousBatchTexts = 0

    init(store: SnapshotStore, maxBatch: Int, maxWait: TimeInterval, threads: Int, metrics: ServerMetrics) {
        self.store = store; self.maxBatch = maxBatch; self.maxWait = maxWait; self.threads = threads
        self.metrics = metrics
        let thread = Thread { [self] in loop() }
        thread.name = "lethe-inference"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// The ensemble's logits for `texts` and the snapshot that produced them.
    func infer(_ texts: [String]) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            condition.withLock {
                if stopping {
                    continuation.resume(throwing: Refusal.unavailable("the server is shutting down"))
                    return
                }
                queue.append(Job(texts: texts) { continuation.resume(with: $0) })
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
        while let jobs = nextBatch() {
            let texts = jobs.flatMap(\.texts)
            metrics.batch(size: texts.count)
            do {
                var snapshot = try store.fresh()
                var logits: [[Float]]
                repeat {
                    let start = DispatchTime.now().uptimeNanoseconds
                    logits = try snapshot.ensemble.ensembleLogits(texts, threads: threads)
                    metrics.pass(seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                    // A deletion accepted during the pass voids its answers: run it again on the
                    // composition that deletion publishes.
                    guard store.isSuperseded(snapshot) else { break }
                    snapshot = try store.fresh()
                } while true
                var offset = 0
                for job in jobs {
                    let rows = Array(logits[offset ..< offset + job.texts.count])
                    offset += job.texts.count
                    job.reply(.success(Answer(logits: rows, snapshot: snapshot)))
                }
            } catch {
                for job in jobs { job.reply(.failure(error)) }
            }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    /// The texts a forming batch waits for: those queued when the previous pass ended and as
    /// many as it answered, at least 1 and at most `maxBatch`.
    static func target(queuedAtPassEnd: Int, previousBatchTexts: Int, maxBatch: Int) -> Int {
        max(1, min(maxBatch, queuedAtPassEnd + previousBatchTexts))
    }

    private var queuedTexts: Int { queue.reduce(0) { $0 + $1.texts.count } }

    /// Waits for work and gathers a batch; nil once stopping with nothing queued.
    private func nextBatch() -> [Job]? {
        condition.lock()
        defer { condition.unlock() }
        let target = Self.target(queuedAtPassEnd: queuedTexts, previousBatchTexts: previousBatchTexts,
                                 maxBatch: maxBatch)
        while queue.isEmpty && !stopping { condition.wait() }
        if queue.isEmpty { return nil }
        let start = Date()
        let deadline = start.addingTimeInterval(maxWait)
        while queuedTexts < target && !stopping {
            if !condition.wait(until: deadline) { break }
        }
        metrics.batchWait(seconds: Date().timeIntervalSince(start))
        var taken: [Job] = [queue.removeFirst()]
        var count = taken[0].texts.count
        while let next = queue.first, count + next.texts.count <= maxBatch {
            taken.append(queue.removeFirst())
            count += next.texts.count
        }
        previousBatchTexts = count
        return taken
    }
}
