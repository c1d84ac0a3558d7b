import GRDB

/// The first place where a ledger's hash chain does not hold, with what was found.
public enum LedgerBreak: Equatable, Sendable, CustomStringConvertible {
    /// Entries `first...last` are absent: rows were deleted (or the sequence was renumbered).
    case missingEntries(first: Int64, last: Int64)
    /// The entry at `sequenceNumber` does not record the hash of the entry before it;
    /// `chainsToSequenceNumber` is set when it records the hash of another entry (rows reordered).
    case brokenLink(sequenceNumber: Int64, recordedPreviousHash: String, expectedPreviousHash: String,
                    chainsToSequenceNumber: Int64?)
    /// The entry's content (timestamp, kind, payload or index keys) no longer matches its hash.
    case contentAltered(sequenceNumber: Int64, storedHash: String, recomputedHash: String)
    /// The lookup index (`ledger_keys`) disagrees with the keys the entry itself records.
    case indexMismatch(sequenceNumber: Int64)
    /// Index keys point at an entry that does not exist.
    case danglingKeys(sequenceNumber: Int64)
    /// The ledger ends elsewhere than the head recorded earlier (entries removed from the end,
    /// or the whole chain rewritten).
    case headMismatch(expected: LedgerHead, found: LedgerHead?)
    /// A row holds a value of another type than its column's (an edit outside Lethe).
    case malformedRow(String)

    public var description: String {
        switch self {
        case .missingEntries(let first, let last):
            return first == last ? "entry \(first) is missing (deleted row)"
                : "entries \(first)...\(last) are missing (deleted rows)"
        case .brokenLink(let seq, let recorded, let expected, let other):
            if let other {
                return "entry \(seq) chains to the entry now at \(other), not to entry \(seq - 1): "
                    + "rows were reordered"
            }
            return "entry \(seq) records previous hash \(recorded), but entry \(seq - 1) hashes to "
                + "\(expected): the chain was cut or rows were inserted"
        case .contentAltered(let seq, let stored, let recomputed):
            return "entry \(seq) was edited: its content hashes to \(recomputed), the ledger recorded "
                + "\(stored)"
        case .indexMismatch(let seq):
            return "the lookup index disagrees with entry \(seq)'s recorded keys: index rows were "
                + "edited, added or deleted"
        case .danglingKeys(let seq):
            return "index keys point at entry \(seq), which does not exist"
        case .malformedRow(let detail):
            return detail
        case .headMismatch(let expected, let found):
            return "the ledger ends at \(found.map(\.description) ?? "nothing"), expected \(expected): "
                + "entries were removed from the end or the chain was rewritten"
        }
    }
}

/// The outcome of `Ledger.verifyChain(expectedHead:)`.
public struct LedgerVerification: Equatable, Sendable, CustomStringConvertible {
    /// Entries examined.
    public var entryCount: Int
    /// The latest entry as found (nil for an empty ledger).
    public var head: LedgerHead?
    /// The first break, or nil when the whole chain holds.
    public var firstBreak: LedgerBreak?

    /// Whether every link and hash checked out.
    public var isIntact: Bool { firstBreak == nil }

    public var description: String {
        if let firstBreak { return "ledger broken: \(firstBreak)" }
        return "ledger intact: \(entryCount) entries, head \(head.map(\.description) ?? "none")"
    }
}

extension Ledger {
    /// Recomputes the whole hash chain and reports the first break.
    ///
    /// Checks, in sequence order: no gap in sequence numbers (deleted rows); each entry's
    /// previous hash is the stored hash of the entry before it (reordered or inserted rows);
    /// each entry's stored hash equals the hash of its content (edited rows, edited keys); the
    /// lookup index holds exactly each entry's keys, and no index row points at a missing entry; and, if `expectedHead` is given (e.g. from the
    /// last receipt), that the ledger still ends there — the chain alone cannot reveal entries
    /// cut from its end.
    public func verifyChain(expectedHead: LedgerHead? = nil) throws -> LedgerVerification {
        try read("verify the chain") { db in
            let rows = try Row.fetchAll(db, sql: "\(Self.entryColumns) ORDER BY seq")
            var verification = LedgerVerification(entryCount: rows.count, head: nil, firstBreak: nil)
            let entries: [LedgerEntry]
            var indexed: [Int64: [LedgerKey]] = [:]
            do {
                entries = try rows.map { try Self.entry($0) }
                let cursor = try Row.fetchCursor(db, sql: "SELECT seq, field, value FROM ledger_keys")
                while let row = try cursor.next() {
                    guard let seq = try? row.decode(Int64.self, atIndex: 0),
                          let field = try? row.decode(String.self, atIndex: 1),
                          let value = try? row.decode(String.self, atIndex: 2) else {
                        throw MalformedRow(sequenceNumber: try? row.decode(Int64.self, atIndex: 0),
                                           column: "ledger_keys", found: row[0] as DatabaseValue)
                    }
                    indexed[seq, default: []].append(LedgerKey(field: .init(rawValue: field), value: value))
                }
            } catch let malformed as MalformedRow {
                verification.firstBreak = .malformedRow(malformed.description)
                return verification
            }
            var storedHashes: [String: Int64] = [:]
            for entry in entries { storedHashes[entry.hash] = entry.sequenceNumber }
            if let last = entries.last {
                verification.head = LedgerHead(sequenceNumber: last.sequenceNumber, hash: last.hash)
            }
            var expectedSeq: Int64 = 1
            var previousHash = LedgerHashing.genesisHash
            for entry in entries {
                if let problem = Self.check(entry, expectedSeq: expectedSeq, previousHash: previousHash,
                                            storedHashes: storedHashes) {
                    verification.firstBreak = problem
                    return verification
                }
                if (indexed.removeValue(forKey: entry.sequenceNumber) ?? []).sorted() != entry.keys {
                    verification.firstBreak = .indexMismatch(sequenceNumber: entry.sequenceNumber)
                    return verification
                }
                expectedSeq = entry.sequenceNumber &+ 1   // wraps only past an edited seq of Int64.max
                previousHash = entry.hash
            }
            if let dangling = indexed.keys.min() {
                verification.firstBreak = .danglingKeys(sequenceNumber: dangling)
                return verification
            }
            if let expectedHead, expectedHead != verification.head {
                verification.firstBreak = .headMismatch(expected: expectedHead, found: verification.head)
            }
            return verification
        }
    }

    private static func check(_ entry: LedgerEntry, expectedSeq: Int64, previousHash: String,
                              storedHashes: [String: Int64]) -> LedgerBreak? {
        if entry.sequenceNumber != expectedSeq {
            return .missingEntries(first: expectedSeq, last: entry.sequenceNumber - 1)
        }
        if entry.previousHash != previousHash {
            let other = storedHashes[entry.previousHash]
            return .brokenLink(sequenceNumber: entry.sequenceNumber,
                               recordedPreviousHash: entry.previousHash,
                               expectedPreviousHash: previousHash,
                               chainsToSequenceNumber: other)
        }
        let recomputed = LedgerHashing.hash(sequenceNumber: entry.sequenceNumber,
                                            timestampMilliseconds: entry.timestampMilliseconds,
                                            kind: entry.kind.rawValue, payload: entry.payload,
                                            sortedKeys: entry.keys, previousHash: entry.previousHash)
        if recomputed != entry.hash {
            return .contentAltered(sequenceNumber: entry.sequenceNumber, storedHash: entry.hash,
                                   recomputedHash: recomputed)
        }
        return nil
    }
}
