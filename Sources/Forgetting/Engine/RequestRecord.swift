import Foundation

/// The ledger payload of one accepted request: what was asked and which planned examples it
/// resolved to when it was accepted (a group's members, or the id itself when planned).
public struct RequestRecord: Codable, Sendable, Equatable {
    public var requestID: String
    public var id: String?
    public var group: String?
    public var timestamp: String?
    /// Planned example ids the request names, sorted; empty when none is known.
    public var examples: [String]

    public init(requestID: String, id: String?, group: String?, timestamp: String?, examples: [String]) {
        self.requestID = requestID; self.id = id; self.group = group
        self.timestamp = timestamp; self.examples = examples
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", id, group, timestamp, examples
    }

    /// Key-sorted JSON, written by hand into a byte buffer: a 100,000-request log encodes
    /// each payload once, and a JSONEncoder per payload (or String concatenation) cost more
    /// than the ledger transaction.
    public var json: String {
        var out = JSONBytes()
        out.raw("{\"examples\":[")
        for (index, example) in examples.enumerated() {
            if index > 0 { out.raw(",") }
            out.string(example)
        }
        out.raw("]")
        if let group { out.raw(",\"group\":"); out.string(group) }
        if let id { out.raw(",\"id\":"); out.string(id) }
        out.raw(",\"request_id\":"); out.string(requestID)
        if let timestamp { out.raw(",\"timestamp\":"); out.string(timestamp) }
        out.raw("}")
        return out.text
    }
}

/// JSON text built as UTF-8 bytes, with minimal string quoting (RFC 8259 §7: `"`, `\\` and
/// control characters escaped, `\u00XX` for those without a short form).
struct JSONBytes {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Appends text that needs no quoting (punctuation, keys, numbers).
    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func raw(_ text: String) { appendUTF8(of: text) }

    /// Appends `value` as a quoted JSON string.
    mutating func string(_ value: String) {
        bytes.append(0x22)
        let plain = value.utf8.withContiguousStorageIfAvailable { utf8 in
            utf8.allSatisfy { $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }
        } ?? false
        if plain {
            appendUTF8(of: value)
        } else {
            for byte in value.utf8 {
                switch byte {
                case 0x22: raw("\\\"")
                case 0x5C: raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case ..<0x20:
                    let digits = Array("0123456789abcdef".utf8)
                    raw("\\u00")
                    bytes.append(digits[Int(byte >> 4)]); bytes.append(digits[Int(byte & 15)])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(0x22)
    }

    /// Copies the string's UTF-8 in one go (appending a `String.UTF8View` goes byte by byte).
    private mutating func appendUTF8(of text: String) {
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { bytes.append(contentsOf: $0) }
        if copied == nil { bytes.append(contentsOf: Array(text.utf8)) }
    }
}
