import Foundation
import NIOCore

/// Orders inference answers against this server's own deletions, so that `/v1/forget`
/// acknowledges only after every answer from a model it deactivates has been written.
///
/// A pass checks the ledger after it ends, but its answer still travels through the request's
/// task and the connection's event loop before its bytes reach the socket. A deletion accepted
/// in that window would be acknowledged while an answer from a model that saw the example is
/// still on its way out. So an answer is *admitted* before it is written: under the gate's lock
/// the ledger is read again, and an answer whose generation an accepted deletion supersedes is
/// refused (its request runs again on the new composition). An admitted answer stays counted
/// until its last byte is in the kernel's socket buffer. `/v1/forget`, after its deletions are
/// durable and published, *drains*: it waits until no answer of an older generation is
/// counted. One admitted before the deletion was committed is then written; one after it was
/// refused. An answer whose client stops reading (no piece of it written for `stallWait`) has
/// its connection closed, so none of it is written after the acknowledgment; one whose client
/// reads is waited for, however large, up to `drainCap`.
final class AnswerGate: @unchecked Sendable {
    private struct Admitted {
        let generation: Int64
        let channel: (any Channel)?
        var progress: Date
    }
    private let lock = NSLock()
    private var admitted: [Int: Admitted] = [:]
    private var nextToken = 0

    /// How long an answer may go without writing a piece before its connection is closed.
    static let stallWait: TimeInterval = 2
    /// The longest a drain waits for answers that keep progressing.
    static let drainCap: TimeInterval = 60

    /// An admitted answer; released when it has been written (or, failing that, when dropped).
    final class Ticket: @unchecked Sendable {
        private weak var gate: AnswerGate?
        private let token: Int
        fileprivate init(gate: AnswerGate, token: Int) { self.gate = gate; self.token = token }
        /// A piece of the answer reached the socket.
        func progressed() { gate?.progressed(token) }
        func release() { gate?.release(token) }
        deinit { release() }
    }

    /// Admits an answer of `generation` unless `isSuperseded` (a read of the ledger) says an
    /// accepted deletion is newer; nil then. Deletions commit without this lock; what orders the
    /// two is that a drain runs after its deletion's commit and counts under this lock, so an
    /// answer is either counted before the drain looks or checked after the commit.
    func admit(generation: Int64, channel: (any Channel)?, isSuperseded: () -> Bool) -> Ticket? {
        lock.withLock {
            guard !isSuperseded() else { return nil }
            nextToken += 1
            admitted[nextToken] = Admitted(generation: generation, channel: channel, progress: Date())
            return Ticket(gate: self, token: nextToken)
        }
    }

    private func progressed(_ token: Int) {
        lock.withLock { admitted[token]?.progress = Date() }
    }

    private func release(_ token: Int) {
        _ = lock.withLock { admitted.removeValue(forKey: token) }
    }

    /// Answers of a generation below `generation` admitted and not yet written.
    func pending(below generation: Int64) -> Int {
        lock.withLock { admitted.values.filter { $0.generation < generation }.count }
    }

    /// Waits until every admitted answer of a generation below `generation` is written. An
    /// answer that wrote nothing for `stall`, and every one left after `cap`, has its connection
    /// closed (its remaining bytes are then never sent). Returns how many were closed.
    @discardableResult
    func drain(below generation: Int64, stall: TimeInterval = stallWait, cap: TimeInterval = drainCap) async -> Int {
        let deadline = Date().addingTimeInterval(cap)
        var closed = 0
        while true {
            let now = Date()
            let (waiting, stalled) = lock.withLock { () -> (Int, [(Int, (any Channel)?)]) in
                let older = admitted.filter { $0.value.generation < generation }
                let stalled = older.filter { now >= deadline || now.timeIntervalSince($0.value.progress) >= stall }
                for token in stalled.keys { admitted.removeValue(forKey: token) }
                return (older.count - stalled.count, stalled.map { ($0.key, $0.value.channel) })
            }
            for (_, channel) in stalled { channel?.close(promise: nil) }
            closed += stalled.count
            if waiting == 0 { return closed }
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
    }
}
