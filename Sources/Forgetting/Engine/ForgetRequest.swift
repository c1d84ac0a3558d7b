import Foundation

/// One request to forget: an example id or a whole group (a data subject), with an optional
/// caller-chosen request id and timestamp kept verbatim in the ledger.
public struct ForgetRequest: Sendable, Equatable, Codable {
    public enum Target: Sendable, Equatable {
        case example(String)
        case group(String)
    }

    public var target: Target
    /// The caller's request id; the engine assigns one when nil.
    public var requestID: String?
    /// The caller's timestamp, as written in the log (a number or a string); informational.
    public var timestamp: String?

    public init(target: Target, requestID: String? = nil, timestamp: String? = nil) {
        self.target = target; self.requestID = requestID; self.timestamp = timestamp
    }

    enum CodingKeys: String, CodingKey { case id, group, requestID = "request_id", timestamp }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        requestID = try container.decodeIfPresent(String.self, forKey: .requestID)
        timestamp = try container.decodeIfPresent(String.self, forKey: .timestamp)
        if let id = try container.decodeIfPresent(String.self, forKey: .id) {
            target = .example(id)
        } else {
            target = .group(try container.decode(String.self, forKey: .group))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch target {
        case .example(let id): try container.encode(id, forKey: .id)
        case .group(let group): try container.encode(group, forKey: .group)
        }
        try container.encodeIfPresent(requestID, forKey: .requestID)
        try container.encodeIfPresent(timestamp, forKey: .timestamp)
    }
}

/// Reads a deletion log: JSON Lines, one request per line (issue 6 item 2).
///
/// Each non-blank line is an object with exactly one of `"id"` or `"group"` (a non-empty
/// string), optionally `"request_id"` (string) and `"timestamp"` (string or number); other keys
/// are refused so a typo cannot silently forget nothing. The whole log is validated before
/// anything is applied: the first malformed line throws `ForgettingError.malformedRequest`
/// naming its 1-based line number.
public enum RequestLog {
    public static func read(from url: URL, source: String? = nil) throws -> [ForgetRequest] {
        let name = source ?? url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw ForgettingError.runFile(file: name, reason: "cannot read the deletion log (\(error.localizedDescription))")
        }
        return try parse(data, source: name)
    }

    public static func parse(_ data: Data, source: String) throws -> [ForgetRequest] {
        var requests: [ForgetRequest] = []
        var lineNumber = 0
        var start = data.startIndex
        while start < data.endIndex {
            lineNumber += 1
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            let line = data[start..<end]
            start = end < data.endIndex ? data.index(after: end) : end
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            requests.append(try parseLine(Data(line), source: source, line: lineNumber))
        }
        return requests
    }

    static func parseLine(_ line: Data, source: String, line number: Int) throws -> ForgetRequest {
        func fail(_ reason: String) -> ForgettingError {
            .malformedRequest(file: source, line: number, reason: reason)
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: line) } catch {
            throw fail("not valid JSON")
        }
        guard let fields = object as? [String: Any] else { throw fail("not a JSON object") }
        for key in fields.keys where !["id", "group", "request_id", "timestamp"].contains(key) {
            throw fail("unknown key \"\(key)\" (allowed: id, group, request_id, timestamp)")
        }
        func string(_ key: String) throws -> String? {
            guard let value = fields[key] else { return nil }
            guard let text = value as? String, !text.isEmpty else { throw fail("\"\(key)\" must be a non-empty string") }
            return text
        }
        let id = try string("id"), group = try string("group"), requestID = try string("request_id")
        var timestamp: String?
        if let value = fields["timestamp"] {
            if let text = value as? String { timestamp = text }
            else if let number = value as? NSNumber, !(value is Bool) { timestamp = number.stringValue }
            else { throw fail("\"timestamp\" must be a string or a number") }
        }
        switch (id, group) {
        case (let id?, nil): return ForgetRequest(target: .example(id), requestID: requestID, timestamp: timestamp)
        case (nil, let group?): return ForgetRequest(target: .group(group), requestID: requestID, timestamp: timestamp)
        case (nil, nil): throw fail("needs \"id\" or \"group\"")
        default: throw fail("has both \"id\" and \"group\"; one request names one of them")
        }
    }
}
