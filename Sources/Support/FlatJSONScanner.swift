import Foundation
/// A strict scanner for one JSON Lines record: a JSON object whose members Lethe reads as strings.
///
/// Why hand-written: Foundation's `JSONSerialization`/`JSONDecoder` on Linux allocate a bridged
/// object graph per line and dominate the 1,000,000-example plan benchmark; this scanner works on
/// the raw UTF-8 bytes and allocates only the strings it returns.
///
/// Contract (RFC 8259 for the parts it accepts):
/// - The line is one object `{ "key": value, … }` with optional whitespace (space, tab, CR, LF).
/// - String values are decoded with every escape: `\" \\ \/ \b \f \n \r \t` and `\uXXXX`,
///   including UTF-16 surrogate pairs; a lone surrogate, an unescaped control character
///   (< U+0020) or invalid UTF-8 is an error.
/// - Non-string values (numbers, `true`, `false`, `null`, nested objects and arrays) are checked
///   for balanced brackets and reported by kind only (`Value.other`); nested values are skipped,
///   not validated in depth.
/// - A key appearing twice is an error (JSON leaves the meaning open; Lethe refuses to guess).
public struct FlatJSONScanner {
    /// A member's value as the reader needs it.
    public enum Value: Equatable, Sendable {
        case string(String)
        case null
        /// Any other JSON value; `kind` is "number", "boolean", "object" or "array".
        case other(kind: String)

        /// "string", "null", or the kind of another value.
        public var kindName: String {
            switch self {
            case .string: "string"
            case .null: "null"
            case let .other(kind): kind
            }
        }
    }

    /// Why a line failed, with the 1-based byte column where the scanner stopped.
    public struct Failure: Error, Equatable {
        public var column: Int
        public var reason: String
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    /// Reused between escape-bearing strings to avoid an allocation per string.
    private var scratch: [UInt8] = []

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Parses `bytes` as one object and returns its members in file order.
    public static func members(of bytes: UnsafeBufferPointer<UInt8>) throws(Failure) -> [(key: String, value: Value)] {
        var scanner = FlatJSONScanner(bytes)
        return try scanner.object()
    }

    /// `members(of:)` for one line of a file's bytes.
    public static func members(ofLine line: Data) throws(Failure) -> [(key: String, value: Value)] {
        do {
            return try line.withUnsafeBytes { raw in try members(of: raw.bindMemory(to: UInt8.self)) }
        } catch let failure as Failure {
            throw failure
        } catch {
            preconditionFailure("members(of:) throws only Failure")
        }
    }

    /// The lines of a JSON Lines file's bytes that hold something, with their 1-based numbers
    /// (blank lines are skipped but counted, so a number is the line an editor shows). A UTF-8
    /// byte-order mark is skipped at the start of the file only.
    public static func nonBlankLines(of data: Data) -> [(number: Int, bytes: Data)] {
        let body = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data[...]
        return body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated().compactMap { index, line in
            line.allSatisfy({ $0 == 32 || $0 == 13 || $0 == 9 }) ? nil : (index + 1, line)
        }
    }

    // MARK: Grammar

    private mutating func object() throws(Failure) -> [(key: String, value: Value)] {
        skipWhitespace()
        try expect(UInt8(ascii: "{"), "a line must start with '{'")
        var members: [(key: String, value: Value)] = []
        var keys = Set<String>()   // a line of many keys is read in linear time
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
                index += 1
                let keyColumn = index
                let key = try string()
                guard keys.insert(key).inserted else {
                    throw Failure(column: keyColumn, reason: "key \"\(key)\" appears twice")
                }
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "expected ':' after key \"\(key)\"")
                skipWhitespace()
                members.append((key, try value()))
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "}"), "expected ',' or '}' after the value of \"\(key)\"")
                break
            }
        }
        skipWhitespace()
        if index < bytes.count { throw fail("unexpected text after the closing '}'") }
        return members
    }

    private mutating func value() throws(Failure) -> Value {
        guard let first = peek() else { throw fail("a value is missing before the end of the line") }
        switch first {
        case UInt8(ascii: "\""):
            index += 1
            return .string(try string())
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "t"):
            try literal("true")
            return .other(kind: "boolean")
        case UInt8(ascii: "f"):
            try literal("false")
            return .other(kind: "boolean")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number()
            return .other(kind: "number")
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            try skipNested()
            return .other(kind: first == UInt8(ascii: "{") ? "object" : "array")
        default:
            throw fail("unexpected character \(Self.show(first)) where a value should start")
        }
    }

    /// Scans a string whose opening quote was consumed; leaves `index` after the closing quote.
    private mutating func string() throws(Failure) -> String {
        let start = index
        // Fast path: no escape, so the bytes between the quotes are the string.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return try Self.decodeUTF8(raw, column: start + 1)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail("control character \(Self.show(byte)) inside a string must be escaped") }
            index += 1
        }
        guard index < bytes.count else { throw Failure(column: start, reason: "a string is not closed") }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        return try escapedString(start: start)
    }

    /// Slow path from the first backslash on: decodes escapes into `scratch`.
    private mutating func escapedString(start: Int) throws(Failure) -> String {
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return try scratch.withUnsafeBufferPointer { buffer throws(Failure) in
                    try Self.decodeUTF8(buffer, column: start + 1)
                }
            }
            if byte < 0x20 { throw fail("control character \(Self.show(byte)) inside a string must be escaped") }
            if byte != UInt8(ascii: "\\") {
                scratch.append(byte)
                index += 1
                continue
            }
            index += 1
            guard let code = peek() else { break }
            index += 1
            switch code {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(code)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"): appendUTF8(of: try unicodeEscape())
            default:
                index -= 1
                throw fail("unknown escape \\\(Self.show(code))")
            }
        }
        throw Failure(column: start, reason: "a string is not closed")
    }

    /// Decodes the hex digits after `\u`, joining a UTF-16 surrogate pair into one scalar.
    private mutating func unicodeEscape() throws(Failure) -> UInt32 {
        let high = try hex4()
        switch high {
        case 0xD800...0xDBFF:
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                  bytes[index + 1] == UInt8(ascii: "u") else {
                throw fail("high surrogate \\u\(String(high, radix: 16, uppercase: true)) is not followed by a low surrogate")
            }
            index += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else {
                throw fail("high surrogate \\u\(String(high, radix: 16, uppercase: true)) is followed by \\u\(String(low, radix: 16, uppercase: true)), not a low surrogate")
            }
            // UTF-16: scalar = 0x10000 + (high − 0xD800)·0x400 + (low − 0xDC00).
            return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        case 0xDC00...0xDFFF:
            throw fail("lone low surrogate \\u\(String(high, radix: 16, uppercase: true))")
        default:
            return high
        }
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("\\u needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("\\u needs four hex digits, found \(Self.show(byte))")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func appendUTF8(of scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    private mutating func number() throws(Failure) {
        if peek() == UInt8(ascii: "-") { index += 1 }
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else {
            guard digits() > 0 else { throw fail("a number needs digits") }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw fail("a number needs digits after '.'") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw fail("a number needs digits in its exponent") }
        }
    }

    private mutating func digits() -> Int {
        let start = index
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    /// Skips a nested object or array, honouring strings so brackets inside them do not count,
    /// and checking that every bracket is closed by its own kind.
    private mutating func skipNested() throws(Failure) {
        var open: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                open.append(byte)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let opener = open.removeLast()
                guard (opener == UInt8(ascii: "{")) == (byte == UInt8(ascii: "}")) else {
                    index -= 1
                    throw fail("\(Self.show(byte)) does not close \(Self.show(opener))")
                }
                if open.isEmpty { return }
            case UInt8(ascii: "\""):
                _ = try string()
            default: break
            }
        }
        throw fail("a nested object or array is not closed")
    }

    // MARK: Helpers

    /// Decodes UTF-8, refusing invalid sequences. ASCII (the common case for ids and labels)
    /// skips validation: `String(decoding:)` is exact for it and much cheaper.
    private static func decodeUTF8(_ raw: UnsafeBufferPointer<UInt8>, column: Int) throws(Failure) -> String {
        var combined: UInt8 = 0
        for byte in raw { combined |= byte }
        if combined < 0x80 { return String(decoding: raw, as: UTF8.self) }
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw Failure(column: column, reason: "the string is not valid UTF-8")
        }
        return text
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A { index += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ reason: String) throws(Failure) {
        guard peek() == byte else { throw fail(reason) }
        index += 1
    }

    private mutating func literal(_ word: String) throws(Failure) {
        for expected in word.utf8 {
            guard peek() == expected else { throw fail("expected \(word)") }
            index += 1
        }
    }

    private func fail(_ reason: String) -> Failure { Failure(column: index + 1, reason: reason) }

    private static func show(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }
}

/// What Foundation's JSON parsers accept in a document without a word but a strict reader
/// refuses: a key an object repeats (one of its values is kept, the other dropped) and a comma
/// before a closing bracket (`[0.5, 0.5,]`, which JSON does not allow and which may mark an
/// entry left out by mistake).
public enum LenientJSON: Equatable, Sendable {
    case repeatedKey(String)
    /// The comma's 0-based byte offset in the document.
    case trailingComma(offset: Int)

    /// How a message says it, e.g. `a comma before "]" at byte 10; remove it`.
    public var text: String {
        switch self {
        case let .repeatedKey(key): return "the key \"\(key)\" appears twice in one object"
        case let .trailingComma(offset): return "a comma before a closing bracket at byte \(offset + 1); remove it"
        }
    }

    /// The first such problem of the JSON document `bytes`, at any depth; nil when there is none.
    /// `bytes` must already parse as JSON (with Foundation); keys are compared after their escapes
    /// are decoded (`"a"` and `"\u0061"` are one key), as code points: two Unicode spellings of
    /// "café" are two keys, as JSON defines them.
    public static func firstProblem(inDocument bytes: [UInt8]) -> LenientJSON? {
        // Per open container: nil for an array, the keys (their UTF-8 bytes) seen so far for an object.
        var stack: [Set<[UInt8]>?] = []
        var expectingKey = false
        var lastComma: Int?   // the offset of a comma not yet followed by a value or key
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                index += 1
                continue
            case UInt8(ascii: "{"): stack.append([]); expectingKey = true
            case UInt8(ascii: "["): stack.append(nil); expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if let lastComma { return .trailingComma(offset: lastComma) }
                _ = stack.popLast(); expectingKey = false
            case UInt8(ascii: ","):
                expectingKey = stack.last.map { $0 != nil } ?? false
                lastComma = index
                index += 1
                continue
            case UInt8(ascii: "\""):
                let start = index
                var escaped = false
                index += 1
                while index < bytes.count {
                    let c = bytes[index]
                    if c == UInt8(ascii: "\\") { escaped = true; index += 2; continue }
                    if c == UInt8(ascii: "\"") { break }
                    index += 1
                }
                if expectingKey, let top = stack.indices.last, stack[top] != nil {
                    let raw = bytes[start ... min(index, bytes.count - 1)]
                    let key = escaped
                        ? (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)) as? String
                        : String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
                    guard let key else { return nil }
                    // Inserted in place: a copy of the set per key would be quadratic.
                    if !stack[top]!.insert(Array(key.utf8)).inserted { return .repeatedKey(key) }
                    expectingKey = false
                }
            default: break
            }
            lastComma = nil
            index += 1
        }
        return nil
    }
}
