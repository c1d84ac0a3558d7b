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

    /// Key-sorted JSON, written by hand: a 100,000-request log encodes each payload once, and
    /// a JSONEncoder per payload cost more than the ledger transaction.
    public var json: String {
        var out = "{\"examples\":["
        for (index, example) in examples.enumerated() {
            if index > 0 { out += "," }
            JSONText.appendString(example, to: &out)
        }
        out += "]"
        if let group { out += ",\"group\":"; JSONText.appendString(group, to: &out) }
        if let id { out += ",\"id\":"; JSONText.appendString(id, to: &out) }
        out += ",\"request_id\":"; JSONText.appendString(requestID, to: &out)
        if let timestamp { out += ",\"timestamp\":"; JSONText.appendString(timestamp, to: &out) }
        out += "}"
        return out
    }
}

/// Minimal JSON string quoting (RFC 8259 §7).
enum JSONText {
    static func appendString(_ value: String, to out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
