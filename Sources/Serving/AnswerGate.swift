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
/// until its bytes have been handed to the socket. `/v1/forget`, after its deletions are durable
/// and published, *drains*: it waits until no answer of an older generation is counted. One
/// admitted before the deletion was committed is then written; one after it was refused. A
/// client that does not read its answer within `drainWait` has its connection closed, so no
/// such answer is written after the acknowledgment.
final class AnswerGate: @unchecked Sendable {
    private let lock = NSLock()
    private var admitted: [Int: (generation: Int64, channel: (any Channel)?)] = [:]
    private var nextToken = 0

    /// How long a drain waits for admitted answers before closing their connections.
    static let drainWait: TimeInterval = 2

    /// An admitted answer; released when it has been written (or, failing that, when dropped).
    final class Ticket: @unchecked Sendable {
        private weak var gate: AnswerGate?
        private let token: Int
        fileprivate init(gate: AnswerGate, token: Int) { self.gate = gate; self.token = token }
        func release() { gate?.release(token) }
        deinit { release() }
    }

    /// Admits an answer of `generation` unless `isSuperseded` (a read of the ledger, made under
    /// the gate's lock so that no deletion commits between the check and the count) says an
    /// accepted deletion is newer; nil then.
    func admit(generation: Int64, channel: (any Channel)?, isSuperseded: () -> Bool) -> Ticket? {
        lock.withLock {
            guard !isSuperseded() else { return nil }
            nextToken += 1
            admitted[nextToken] = (generation, channel)
            return Ticket(gate: self, token: nextToken)
        }
    }

    private func release(_ token: Int) {
        _ = lock.withLock { admitted.removeValue(forKey: token) }
    }

    /// Answers of a generation below `generation` admitted and not yet written.
    func pending(below generation: Int64) -> Int {
        lock.withLock { admitted.values.filter { $0.generation < generation }.count }
    }

    /// Waits until every admitted answer of a generation below `generation` is written; after
    /// `wait`, closes the connections of those left (their bytes are then never sent). Returns
    /// how many were closed.
    @discardableResult
    func drain(below generation: Int64, wait: TimeInterval = drainWait) async -> Int {
        let deadline = Date().addingTimeInterval(wait)
        while pending(below: generation) > 0 && Date() < deadline {
            try? await Task.sleep(nanoseconds: 500_000)
        }
        let left = lock.withLock { admitted.filter { $0.value.generation < generation } }
        for (token, entry) in left {
            entry.channel?.close(promise: nil)
            release(token)
        }
        return left.count
    }
}
