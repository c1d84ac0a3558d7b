import Foundation
import GRDB

/// The append-only, hash-chained ledger of deletion requests and their effects, in SQLite.
///
/// Durability: the database runs in WAL mode with `synchronous = FULL`, and every `append`
/// is one `BEGIN IMMEDIATE … COMMIT` transaction, so when `append` returns the WAL holding its
/// entries has been fsynced: the entries survive `kill -9` and power loss as far as SQLite
/// promises. A batch is all or nothing (100,000 requests are one transaction).
///
/// Integrity: each entry stores the hash of the previous one and its own hash over a
/// canonical encoding (`LedgerHashing`); `verifyChain(expectedHead:)` recomputes the chain and
/// reports the first break. Triggers refuse UPDATE and DELETE on entries and keys, so ordinary
/// code cannot rewrite history; deliberate tampering (dropping the triggers) is caught by
/// verification.
///
/// Threads and processes: `Ledger` is `Sendable`; appends are serialised by SQLite's write
/// lock (other processes wait up to `busyTimeout`), reads run concurrently with writes.
public final class Ledger: Sendable {
    /// Where the ledger lives.
    public let url: URL
    private let pool: DatabasePool

    /// The ledger format written into `ledger_meta` and checked on open.
    public static let formatName = "lethe-ledger"
    public static let formatVersion = 1

    /// Opens the ledger at `url`, creating the database and its schema if missing.
    ///
    /// - Parameter busyTimeout: how long a writer waits for another process's transaction.
    public static func open(at url: URL, busyTimeout: TimeInterval = 10) throws -> Ledger {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            // FULL: the WAL is fsynced at every commit (NORMAL would only fsync at
            // checkpoints and could lose the last transactions on power loss).
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: url.path, configuration: configuration)
        } catch {
            throw ForgettingError.ledgerUnavailable(file: url.path, detail: "\(error)")
        }
        let ledger = Ledger(url: url, pool: pool)
        // GRDB switches its writer connection to synchronous = NORMAL when it enables WAL,
        // after `prepareDatabase`; the writer is one long-lived connection, so FULL is set
        // again on it here (and checked by the tests).
        // The larger page cache keeps a 100k-entry batch's B-tree pages in memory until commit.
        try ledger.write("set synchronous = FULL") { db in
            try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA cache_size = -65536")
        }
        try ledger.prepareSchema()
        return ledger
    }

    /// Opens an existing ledger for reading only, as a user who may not write the run directory
    /// (an auditor) can: nothing is created, converted or checkpointed, and the format is checked.
    ///
    /// SQLite reads a WAL database read-only when its `-wal` and `-shm` files exist or can be
    /// created. When neither is possible (a ledger closed cleanly, in a directory this user cannot
    /// write), the database file holds every committed entry, so it is opened as immutable; the
    /// caller holds the run lock shared, so no lethe process writes it meanwhile.
    public static func openForReading(at url: URL) throws -> Ledger {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ForgettingError.ledgerUnavailable(file: url.path, detail: "no such file")
        }
        do {
            return try openReadOnly(at: url, path: url.path)
        } catch let error as ForgettingError {
            let wal = url.path + "-wal"
            let writable = access(url.deletingLastPathComponent().path, W_OK) == 0
            guard !writable else { throw error }
            guard !FileManager.default.fileExists(atPath: wal) else {
                // Committed entries may still be in the WAL, which SQLite reads only through a
                // -shm index it cannot create here: reading the database file alone could miss them.
                throw ForgettingError.ledgerUnavailable(file: url.path, detail: "its newest entries are in "
                    + "\(url.lastPathComponent)-wal, which SQLite reads only through a \(url.lastPathComponent)-shm file, "
                    + "missing here and not creatable without write access. Audit a copy of the run (`cp -a`), or ask "
                    + "its owner for write access to the directory")
            }
            return try openReadOnly(at: url, path: immutableURI(url.path))
        }
    }

    private static func openReadOnly(at url: URL, path: String) throws -> Ledger {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw ForgettingError.ledgerUnavailable(file: url.path, detail: "\(error)")
        }
        let ledger = Ledger(url: url, pool: pool)
        do {
            try ledger.read("check the format") { db in try ledger.checkFormat(db) }
        } catch {
            try? ledger.close()
            throw error
        }
        return ledger
    }

    /// An SQLite URI naming `path` read-only and immutable (the library is built to accept URIs).
    private static func immutableURI(_ path: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        return "file:" + (path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path) + "?mode=ro&immutable=1"
    }

    private init(url: URL, pool: DatabasePool) {
        self.url = url
        self.pool = pool
    }

    /// Closes the database connections; the ledger cannot be used afterwards.
    public func close() throws {
        do { try pool.close() } catch {
            throw ForgettingError.ledgerDatabase(file: url.path, operation: "close the ledger",
                                                 detail: "\(error)")
        }
    }

    // MARK: - Appending

    /// Appends `drafts` in one transaction and returns the stored entries.
    ///
    /// Sequence numbers continue from the current head; hashes chain from it. Either all
    /// entries are recorded or — on any error — none.
    @discardableResult
    public func append(_ drafts: [LedgerDraft]) throws -> [LedgerEntry] {
        for (index, draft) in drafts.enumerated() {
            if let reason = Self.problem(with: draft) {
                throw ForgettingError.invalidLedgerEntry(file: url.path, batchIndex: index,
                                                         reason: reason)
            }
        }
        if drafts.isEmpty { return [] }
        return try write("append \(drafts.count) entries") { db in
            var entries: [LedgerEntry] = []
            try db.inTransaction(.immediate) {
                entries = try Self.insert(drafts, into: db)
                return .commit
            }
            return entries
        }
    }

    /// Appends one entry (its own transaction).
    @discardableResult
    public func append(_ draft: LedgerDraft) throws -> LedgerEntry {
        // `append([draft])` returns exactly one entry for one valid draft.
        try append([draft])[0]
    }

    private static func insert(_ drafts: [LedgerDraft], into db: Database) throws -> [LedgerEntry] {
        let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1")
        var sequenceNumber: Int64 = 0
        var previousHash = LedgerHashing.genesisHash
        if let head {
            let seq = try? head.decode(Int64.self, atIndex: 0)
            guard let seq, seq < Int64.max / 2 else {
                throw MalformedRow(sequenceNumber: seq, column: "seq", found: head[0] as DatabaseValue)
            }
            guard let hash = try? head.decode(String.self, atIndex: 1) else {
                throw MalformedRow(sequenceNumber: seq, column: "hash", found: head[1] as DatabaseValue)
            }
            (sequenceNumber, previousHash) = (seq, hash)
        }
        let insertEntry = try BatchInsert(db, sql: """
            INSERT INTO ledger_entries (seq, timestamp_ms, kind, payload, keys, previous_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        let insertKey = try BatchInsert(db, sql: "INSERT INTO ledger_keys (field, value, seq) VALUES (?, ?, ?)")
        var entries: [LedgerEntry] = []
        entries.reserveCapacity(drafts.count)
        var encoding = LedgerHashing.Encoding()
        for draft in drafts {
            sequenceNumber += 1
            let keys = LedgerKey.canonical(draft.keys)
            let hash = encoding.hash(sequenceNumber: sequenceNumber,
                                          timestampMilliseconds: draft.timestampMilliseconds,
                                          kind: draft.kind.rawValue, payload: draft.payload,
                                          sortedKeys: keys, previousHash: previousHash)
            try insertEntry.run(.integer(sequenceNumber), .integer(draft.timestampMilliseconds),
                                .text(draft.kind.rawValue), .text(draft.payload),
                                .text(LedgerKey.encode(keys)), .text(previousHash), .text(hash))
            for key in keys {
                try insertKey.run(.text(key.field.rawValue), .text(key.value), .integer(sequenceNumber))
            }
            entries.append(LedgerEntry(sequenceNumber: sequenceNumber,
                                       timestampMilliseconds: draft.timestampMilliseconds,
                                       kind: draft.kind, payload: draft.payload, keys: keys,
                                       previousHash: previousHash, hash: hash))
            previousHash = hash
        }
        return entries
    }

    /// Why a draft cannot be recorded, or nil if it can.
    private static func problem(with draft: LedgerDraft) -> String? {
        let kind = draft.kind.rawValue
        if kind.isEmpty || !kind.utf8.allSatisfy({ (97...122).contains($0) || $0 == 95 || (48...57).contains($0) }) {
            return "kind '\(kind)' must be non-empty lower-case letters, digits or '_'"
        }
        guard let first = draft.payload.utf8.first(where: { ![9, 10, 13, 32].contains($0) }),
              first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else {
            return "payload must be a JSON object or array"
        }
        if let key = draft.keys.first(where: { $0.field.rawValue.isEmpty }) {
            return "index key with value '\(key.value)' has an empty field name"
        }
        return nil
    }

    // MARK: - Reading

    /// The latest entry's sequence number and hash, or nil for an empty ledger.
    public func head() throws -> LedgerHead? {
        try read("read the head") { db in
            try Row.fetchOne(db, sql: "SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1")
                .map { LedgerHead(sequenceNumber: $0[0], hash: $0[1]) }
        }
    }

    /// The query of the newest entry of one kind (`LedgerWatch` asks the same).
    static let lastOfKindSQL = "SELECT seq FROM ledger_entries WHERE kind = ? ORDER BY seq DESC LIMIT 1"

    /// The sequence number of the last entry of `kind`, or nil (a scan from the end).
    public func lastSequenceNumber(ofKind kind: LedgerEntryKind) throws -> Int64? {
        try read("look up the last \(kind) entry") { db in
            try Int64.fetchOne(db, sql: Self.lastOfKindSQL, arguments: [kind.rawValue])
        }
    }

    /// Number of entries.
    public func count() throws -> Int {
        try read("count entries") { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM ledger_entries") ?? 0
        }
    }

    /// Entries in sequence order, starting at `sequenceNumber` (1 = the first), at most `limit`.
    public func entries(from sequenceNumber: Int64 = 1, limit: Int? = nil) throws -> [LedgerEntry] {
        try read("read entries") { db in
            try Row.fetchAll(db, sql: "\(Self.entryColumns) WHERE seq >= ? ORDER BY seq LIMIT ?",
                             arguments: [sequenceNumber, limit ?? -1]).map { try Self.entry($0) }
        }
    }

    /// The entry at `sequenceNumber`, or nil.
    public func entry(at sequenceNumber: Int64) throws -> LedgerEntry? {
        try entries(from: sequenceNumber, limit: 1).first { $0.sequenceNumber == sequenceNumber }
    }

    /// Entries carrying index key `key`, in sequence order (through the side-table index).
    public func entries(matching key: LedgerKey) throws -> [LedgerEntry] {
        try read("look up \(key)") { db in
            try Row.fetchAll(db, sql: """
                \(Self.entryColumns)
                WHERE seq IN (SELECT seq FROM ledger_keys WHERE field = ? AND value = ?) ORDER BY seq
                """, arguments: [key.field.rawValue, key.value]).map { try Self.entry($0) }
        }
    }

    /// The last entry carrying index key `key`, or nil (one index probe, however many there are).
    public func lastEntry(matching key: LedgerKey) throws -> LedgerEntry? {
        try read("look up the last \(key)") { db in
            try Row.fetchOne(db, sql: """
                \(Self.entryColumns)
                WHERE seq = (SELECT MAX(seq) FROM ledger_keys WHERE field = ? AND value = ?)
                """, arguments: [key.field.rawValue, key.value]).map { try Self.entry($0) }
        }
    }

    /// The sequence number of the last entry carrying index key `key`, or nil.
    public func lastSequenceNumber(matching key: LedgerKey) throws -> Int64? {
        try read("look up the last \(key)") { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM ledger_keys WHERE field = ? AND value = ?",
                               arguments: [key.field.rawValue, key.value])
        }
    }

    /// Entries indexed under request id `id`.
    public func entries(forRequestID id: String) throws -> [LedgerEntry] { try entries(matching: .requestID(id)) }
    /// The request entries of each of `ids` (request ids), oldest first; ids with none are
    /// absent. One query per 500 ids, not one per id (a log of 100,000 requests).
    public func requestEntries(forRequestIDs ids: [String]) throws -> [String: [LedgerEntry]] {
        var found: [String: [LedgerEntry]] = [:]
        let unique = Array(Set(ids))
        for start in stride(from: 0, to: unique.count, by: 500) {
            let chunk = Array(unique[start..<min(start + 500, unique.count)])
            let rows = try read("look up request ids") { db in
                try Row.fetchAll(db, sql: """
                    SELECT e.seq, e.timestamp_ms, e.kind, e.payload, e.keys, e.previous_hash, e.hash, k.value
                    FROM ledger_keys k JOIN ledger_entries e ON e.seq = k.seq
                    WHERE k.field = ? AND k.value IN (\(Array(repeating: "?", count: chunk.count).joined(separator: ",")))
                    ORDER BY e.seq
                    """, arguments: StatementArguments([LedgerKey.Field.requestID.rawValue] + chunk))
            }
            // The first seven columns are `entryColumns`'; the eighth is the request id matched.
            for row in rows {
                let entry = try Self.entry(row)
                guard let id = String.fromDatabaseValue(row[7] as DatabaseValue), entry.kind == .request else { continue }
                found[id, default: []].append(entry)
            }
        }
        return found
    }

    /// Entries indexed under example id `id`.
    public func entries(forExampleID id: String) throws -> [LedgerEntry] { try entries(matching: .exampleID(id)) }
    /// Entries indexed under group `group`.
    public func entries(forGroup group: String) throws -> [LedgerEntry] { try entries(matching: .group(group)) }

    // MARK: - Internals shared with verification

    static let entryColumns =
        "SELECT seq, timestamp_ms, kind, payload, keys, previous_hash, hash FROM ledger_entries"

    /// An entry from a row of `entryColumns`. An undecodable keys column (only possible after
    /// tampering) reads as one key holding the raw text, so the hash check reports the entry; a
    /// column of the wrong type (a number that is text, a blob, NULL) throws `MalformedRow`,
    /// which `read` turns into `ledgerTampered` naming the file, the entry and the column.
    static func entry(_ row: Row) throws -> LedgerEntry {
        func column<T: DatabaseValueConvertible>(_ index: Int, _ name: String) throws -> T {
            do { return try row.decode(T.self, atIndex: index) } catch {
                let seq = (try? row.decode(Int64?.self, atIndex: 0)).flatMap { $0 }
                throw MalformedRow(sequenceNumber: seq, column: name, found: row[index] as DatabaseValue)
            }
        }
        let encodedKeys: String = try column(4, "keys")
        let keys = LedgerKey.decode(encodedKeys)
            ?? [LedgerKey(field: .init(rawValue: "undecodable"), value: encodedKeys)]
        return LedgerEntry(sequenceNumber: try column(0, "seq"), timestampMilliseconds: try column(1, "timestamp_ms"),
                           kind: LedgerEntryKind(rawValue: try column(2, "kind")), payload: try column(3, "payload"),
                           keys: keys, previousHash: try column(5, "previous_hash"), hash: try column(6, "hash"))
    }

    /// A ledger row whose column holds a value of another type than the schema's: only an edit
    /// outside Lethe makes one.
    struct MalformedRow: Error, CustomStringConvertible {
        let sequenceNumber: Int64?
        let column: String
        let found: DatabaseValue
        var description: String {
            "entry \(sequenceNumber.map { "#\($0)" } ?? "with an unreadable seq") holds \(found) in its \(column) "
                + "column, a value Lethe never writes there: the ledger was edited outside Lethe"
        }
    }

    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch let error as ForgettingError { throw error } catch let row as MalformedRow {
            throw ForgettingError.ledgerTampered(file: url.path, reason: row.description)
        } catch {
            throw ForgettingError.ledgerDatabase(file: url.path, operation: operation, detail: "\(error)")
        }
    }

    func write<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.writeWithoutTransaction(body) } catch let row as MalformedRow {
            throw ForgettingError.ledgerTampered(file: url.path, reason: row.description)
        } catch let error as ForgettingError {
            throw error
        } catch {
            throw ForgettingError.ledgerDatabase(file: url.path, operation: operation, detail: "\(error)")
        }
    }
}
