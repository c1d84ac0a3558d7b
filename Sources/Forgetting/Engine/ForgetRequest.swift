import Foundation
import Planning
import Support

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

    /// The longest id, group, request id or timestamp a request may carry, in UTF-8 bytes: the
    /// ledger keeps every request forever.
    public static let maxFieldBytes = Example.maxNameBytes

    /// What makes `value` unfit as the request field `field` (too long, or a control character
    /// such as NUL or a line break, which no dataset id holds and which would reach terminals
    /// and logs raw), or nil.
    public static func problem(field: String, _ value: String) -> String? {
        if value.utf8.count > maxFieldBytes {
            return "\"\(field)\" is \(value.utf8.count) bytes long; at most \(maxFieldBytes)"
        }
        if let control = Example.controlCharacter(in: value) {
            return "\"\(field)\" holds the control character \(control); ids, groups, request ids and timestamps hold none"
        }
        return nil
    }

    /// The first field of this request `problem(field:_:)` refuses, or nil.
    public var problem: String? {
        let name: (String, String) = switch target {
        case .example(let id): ("id", id)
        case .group(let group): ("group", group)
        }
        return [name, ("request_id", requestID), ("timestamp", timestamp)]
            .lazy.compactMap { field, value in value.flatMap { Self.problem(field: field, $0) } }.first
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

/// Reads a deletion log: JSON Lines, one request per line.
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
        do { data = try InputFile.read(url) } catch {
            throw ForgettingError.unreadableLog(file: name, reason: fileErrorReason(error))
        }
        return try parse(data, source: name)
    }

    public static func parse(_ data: Data, source: String) throws -> [ForgetRequest] {
        var requests: [ForgetRequest] = []
        requests.reserveCapacity(data.count / 40)
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var lineNumber = 0
            var start = 0
            while start < bytes.count {
                lineNumber += 1
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                start = end + 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                // The common shape goes through a byte scanner; anything else (escapes, other
                // numbers, errors) through JSONSerialization, which also words the errors.
                let request = try SimpleRequestLine.parse(line) ?? parseLine(Data(line), source: source, line: lineNumber)
                if let problem = request.problem {
                    throw ForgettingError.malformedRequest(file: source, line: lineNumber, reason: problem)
                }
                requests.append(request)
            }
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
        switch LenientJSON.firstProblem(inDocument: Array(line)) {
        case let .repeatedKey(key)?: throw fail("the key \"\(key)\" appears twice; give one request per line")
        case let problem?: throw fail("the line has \(problem.text)")
        case nil: break
        }
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

/// A fast reader for the usual request line: one flat JSON object whose keys are among `id`,
/// `group`, `request_id`, `timestamp`, each once, with string values free of escapes and
/// control characters (and valid UTF-8), or a plain integer timestamp. It accepts only lines
/// that `RequestLog.parseLine` accepts with the same result, and returns nil for every other
/// line (including every malformed one), which then goes to `parseLine`.
enum SimpleRequestLine {
    static func parse(_ line: UnsafeRawBufferPointer) -> ForgetRequest? {
        var scanner = Scanner(line: line)
        guard let values = scanner.object() else { return nil }  // id, group, request_id, timestamp
        switch (values[0], values[1]) {
        case (let id?, nil): return ForgetRequest(target: .example(id), requestID: values[2], timestamp: values[3])
        case (nil, let group?): return ForgetRequest(target: .group(group), requestID: values[2], timestamp: values[3])
        default: return nil
        }
    }

    /// A cursor over one line's bytes; every method returns nil when the line leaves the simple shape.
    struct Scanner {
        let line: UnsafeRawBufferPointer
        var index = 0

        init(line: UnsafeRawBufferPointer) { self.line = line }

        /// The whole line as one flat object: the value of each known key, in slot order.
        mutating func object() -> [String?]? {
            var values: [String?] = [nil, nil, nil, nil]
            skipSpace()
            guard take(0x7B) else { return nil }  // {
            while true {
                skipSpace()
                guard take(0x22), let key = plainString(), let slot = Self.slot(of: key),
                      values[slot] == nil else { return nil }  // unknown or repeated key
                skipSpace()
                guard take(0x3A) else { return nil }  // :
                skipSpace()
                guard let value = value(slot: slot) else { return nil }
                values[slot] = value
                skipSpace()
                if take(0x2C) { continue }  // ,
                guard take(0x7D) else { return nil }  // }
                skipSpace()
                return index == line.count ? values : nil
            }
        }

        static func slot(of key: UnsafeRawBufferPointer) -> Int? {
            switch String(decoding: key, as: UTF8.self) {
            case "id": return 0
            case "group": return 1
            case "request_id": return 2
            case "timestamp": return 3
            default: return nil
            }
        }

        /// A non-empty plain string, or for the timestamp a plain integer of 2 to 15 digits
        /// (exact in a double, printed as written); other numbers (signs, fractions, exponents,
        /// 0 and 1, which Foundation may bridge to Bool) go to the general parser.
        mutating func value(slot: Int) -> String? {
            guard index < line.count else { return nil }
            if take(0x22) {
                guard let bytes = plainString(), !bytes.isEmpty else { return nil }
                return String(validating: bytes, as: UTF8.self)
            }
            guard slot == 3 else { return nil }
            let start = index
            while index < line.count, (0x30...0x39).contains(line[index]) { index += 1 }
            let digits = index - start
            guard digits >= 2, digits <= 15, line[start] != 0x30,
                  index == line.count || ![0x2E, 0x65, 0x45].contains(line[index]) else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: line[start..<index]), as: UTF8.self)
        }

        mutating func skipSpace() {
            while index < line.count, line[index] == 0x20 || line[index] == 0x09 || line[index] == 0x0D { index += 1 }
        }

        /// Consumes `byte` if it is next.
        mutating func take(_ byte: UInt8) -> Bool {
            guard index < line.count, line[index] == byte else { return false }
            index += 1
            return true
        }

        /// The bytes of a string without escapes or control characters, after its opening quote.
        mutating func plainString() -> UnsafeRawBufferPointer? {
            let start = index
            while index < line.count {
                let byte = line[index]
                if byte == 0x22 {
                    index += 1
                    return UnsafeRawBufferPointer(rebasing: line[start..<(index - 1)])
                }
                if byte == 0x5C || byte < 0x20 { return nil }
                index += 1
            }
            return nil
        }
    }
}
