import Foundation
import Training

/// What a ledger entry records: a deletion request, the receipt of its effects, a retrain…
///
/// An open set of lower-case names; the common ones are predefined.
public struct LedgerEntryKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
                               ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// A request to forget examples or groups, recorded before anything changes.
    public static let request: LedgerEntryKind = "request"
    /// The receipt of a forget: what was truncated, erased and is served now.
    public static let receipt: LedgerEntryKind = "receipt"
    /// A background retrain of affected sequences and its outcome.
    public static let retrain: LedgerEntryKind = "retrain"
    /// A composition published by training: which shards now serve another model.
    public static let publish: LedgerEntryKind = "publish"
}

/// An index key of an entry: a (field, value) pair the audit looks entries up by.
///
/// Keys are stored in a side table filled in the same transaction as their entry, and they
/// are covered by the entry's hash, so the index cannot be altered unnoticed either.
public struct LedgerKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The name of an indexed field (open set; the audit's are predefined).
    public struct Field: RawRepresentable, Hashable, Comparable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static func < (a: Field, b: Field) -> Bool { a.rawValue < b.rawValue }

        public static let requestID = Field(rawValue: "request_id")
        public static let exampleID = Field(rawValue: "example_id")
        public static let group = Field(rawValue: "group")
    }

    public var field: Field
    public var value: String

    public init(field: Field, value: String) {
        self.field = field
        self.value = value
    }

    public static func requestID(_ value: String) -> LedgerKey { LedgerKey(field: .requestID, value: value) }
    public static func exampleID(_ value: String) -> LedgerKey { LedgerKey(field: .exampleID, value: value) }
    public static func group(_ value: String) -> LedgerKey { LedgerKey(field: .group, value: value) }
    /// The shard a retrain or publish entry concerns.
    public static func shard(_ shard: Int) -> LedgerKey { LedgerKey(field: Field(rawValue: "shard"), value: "\(shard)") }

    public static func < (a: LedgerKey, b: LedgerKey) -> Bool {
        (a.field.rawValue, a.value) < (b.field.rawValue, b.value)
    }

    /// `keys` sorted with duplicates removed: the canonical order used for hashing and storage.
    /// Keys are values as bytes: two spellings of one id in different Unicode normal forms (which
    /// Swift's `==` calls equal) are both kept, ordered by their bytes, since SQLite looks them up
    /// by bytes.
    static func canonical(_ keys: [LedgerKey]) -> [LedgerKey] {
        if keys.count < 2 { return keys }
        func bytes(_ key: LedgerKey) -> [UInt8] { Array(key.field.rawValue.utf8) + [0] + Array(key.value.utf8) }
        var sorted = keys.sorted { a, b in a < b || (!(b < a) && bytes(a).lexicographicallyPrecedes(bytes(b))) }
        var write = 1
        for read in 1..<sorted.count where bytes(sorted[read]) != bytes(sorted[write - 1]) {
            sorted[write] = sorted[read]
            write += 1
        }
        sorted.removeLast(sorted.count - write)
        return sorted
    }

    public var description: String { "\(field.rawValue)=\(value)" }

    /// Netstring encoding of sorted keys, as stored in an entry's `keys` column:
    /// `<byte count>:<field><byte count>:<value>` for each key, concatenated.
    static func encode(_ keys: [LedgerKey]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(keys.count * 32)
        func append(_ part: String) {
            bytes.append(contentsOf: String(part.utf8.count).utf8)
            bytes.append(UInt8(ascii: ":"))
            bytes.append(contentsOf: part.utf8)
        }
        for key in keys {
            append(key.field.rawValue)
            append(key.value)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The keys of an encoded `keys` column, or nil if the text is not a valid encoding.
    static func decode(_ text: String) -> [LedgerKey]? {
        let bytes = Array(text.utf8)
        var index = 0
        func next() -> String? {
            var count = 0
            var sawDigit = false
            while index < bytes.count, (48...57).contains(bytes[index]) {
                count = count * 10 + Int(bytes[index] - 48)
                sawDigit = true
                index += 1
                if count > bytes.count { return nil }
            }
            guard sawDigit, index < bytes.count, bytes[index] == UInt8(ascii: ":"),
                  index + 1 + count <= bytes.count else { return nil }
            let start = index + 1
            index = start + count
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
        var keys: [LedgerKey] = []
        while index < bytes.count {
            guard let field = next(), let value = next() else { return nil }
            keys.append(LedgerKey(field: Field(rawValue: field), value: value))
        }
        return keys
    }
}

/// An entry to append: everything but its position and hashes, which the ledger assigns.
public struct LedgerDraft: Sendable, Equatable {
    public var kind: LedgerEntryKind
    /// When the event happened, in milliseconds since 1970-01-01 UTC, supplied by the caller
    /// (the library never reads the clock).
    public var timestampMilliseconds: Int64
    /// JSON text, stored and hashed byte for byte as given.
    public var payload: String
    /// Index keys (duplicates are dropped; order does not matter).
    public var keys: [LedgerKey]

    public init(kind: LedgerEntryKind, timestampMilliseconds: Int64, payload: String,
                keys: [LedgerKey] = []) {
        self.kind = kind
        self.timestampMilliseconds = timestampMilliseconds
        self.payload = payload
        self.keys = keys
    }

    /// A draft whose payload is `value` encoded as JSON with sorted keys.
    public init<Payload: Encodable>(kind: LedgerEntryKind, timestampMilliseconds: Int64,
                                    encoding value: Payload, keys: [LedgerKey] = []) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        self.init(kind: kind, timestampMilliseconds: timestampMilliseconds,
                  payload: String(decoding: data, as: UTF8.self), keys: keys)
    }
}

/// An entry as stored: its 1-based sequence number, content, and place in the hash chain.
public struct LedgerEntry: Sendable, Equatable {
    /// Position in the ledger: 1, 2, 3, … without gaps.
    public var sequenceNumber: Int64
    public var timestampMilliseconds: Int64
    public var kind: LedgerEntryKind
    public var payload: String
    /// The entry's index keys, sorted.
    public var keys: [LedgerKey]
    /// SHA-256 of the previous entry, lower-case hex (64 zeros for the first entry).
    public var previousHash: String
    /// SHA-256 of this entry's canonical encoding (see `LedgerHashing`), lower-case hex.
    public var hash: String

    /// The payload decoded as JSON into `type`.
    /// The payload as `type`; a payload that is not one throws `ForgettingError.unreadableLedgerEntry`
    /// naming this entry (Lethe writes only payloads it reads, so the ledger was written outside it).
    public func decodePayload<Payload: Decodable>(as type: Payload.Type) throws -> Payload {
        let data = Data(payload.utf8)
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw ForgettingError.unreadableLedgerEntry(sequenceNumber: sequenceNumber, kind: kind.rawValue,
                                                        reason: DecodingError.fieldDescription(error, data: data))
        }
    }
}

/// The latest entry's position and hash: what a receipt quotes and what a later verification
/// compares against to detect entries removed from the end.
public struct LedgerHead: Sendable, Equatable, CustomStringConvertible {
    public var sequenceNumber: Int64
    public var hash: String

    public init(sequenceNumber: Int64, hash: String) {
        self.sequenceNumber = sequenceNumber
        self.hash = hash
    }

    public var description: String { "#\(sequenceNumber) \(hash)" }
}
