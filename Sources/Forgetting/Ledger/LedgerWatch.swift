import Foundation
import GRDB
import Synchronization

/// A cheap, repeated look at one fact of a ledger another process appends to: the sequence
/// number of the newest entry of a kind.
///
/// A server asks this every few milliseconds for as long as it runs. A full read (a pooled
/// connection, a transaction, the query) costs far more than the answer is worth when nothing
/// changed, which is almost always. So the watch keeps one read-only connection of its own and
/// first asks SQLite's `PRAGMA data_version`, which changes on that connection whenever another
/// connection commits; only then does it run the query again. The version is read before the
/// query, so a commit that lands between the two is either in the query's answer or changes
/// the version seen next time: no commit is missed. The connection is read-only, so watching
/// never creates or changes a ledger.
public final class LedgerWatch: Sendable {
    /// The watched ledger.
    public let url: URL
    private let queue: DatabaseQueue
    private struct Cache { var version: Int64?; var answers: [LedgerEntryKind: Int64?] = [:] }
    private let cache = Mutex(Cache())

    /// Opens a read-only connection to the existing ledger at `url`.
    public init(url: URL) throws {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(1)
        do {
            queue = try DatabaseQueue(path: url.path, configuration: configuration)
        } catch {
            throw ForgettingError.ledgerUnavailable(file: url.path, detail: "\(error)")
        }
        self.url = url
    }

    /// The sequence number of the newest entry of `kind` (nil when there is none), as of now.
    public func lastSequenceNumber(ofKind kind: LedgerEntryKind) throws -> Int64? {
        do {
            return try queue.inDatabase { db in
                let version = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version"))
                if let version, let known = cache.withLock({ $0.version == version ? $0.answers[kind] : nil }) {
                    return known
                }
                let answer = try Int64.fetchOne(db.cachedStatement(sql: Ledger.lastOfKindSQL),
                                                arguments: [kind.rawValue])
                cache.withLock { cache in
                    if cache.version != version { cache = Cache(version: version) }
                    cache.answers[kind] = .some(answer)
                }
                return answer
            }
        } catch {
            throw ForgettingError.ledgerDatabase(file: url.path, operation: "look up the last \(kind) entry",
                                                 detail: "\(error)")
        }
    }
}
