import Foundation
import Support

/// The result of a measuring command, in one of two shapes: text lines printed (and flushed,
/// so a log follows a long run) as they come, or, with `--json`, no text and one JSON object
/// with every recorded field when `finish()` is called.
public final class ResultReport {
    public let json: Bool
    private var fields: [String: Any] = [:]

    public init(json: Bool) { self.json = json }

    /// Prints `line` unless the report is JSON.
    public func say(_ line: @autoclosure () -> String) {
        guard !json else { return }
        print(line())
        fflush(nil)
    }

    /// Records a number, string, array or dictionary of them; a non-finite number is recorded
    /// as null (JSON has no NaN).
    public func record(_ key: String, _ value: Any) {
        fields[key] = Self.finite(value)
    }

    /// Records an `Encodable` value (its JSON form; non-finite numbers as "nan"/"inf" strings).
    public func record<Value: Encodable>(_ key: String, encoding value: Value) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .snakeCased
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                      nan: "nan")
        fields[key] = try JSONSerialization.jsonObject(with: try encoder.encode(value), options: [.fragmentsAllowed])
    }

    /// Prints the recorded fields as one key-sorted JSON object when the report is JSON.
    public func finish() throws {
        guard json else { return }
        writeLine(String(decoding: try encoded(), as: UTF8.self))
    }

    /// Writes the recorded fields as one JSON object to `url` (atomically), whatever the shape.
    public func write(to url: URL) throws {
        try encoded().write(to: url, options: .atomic)
    }

    private func encoded() throws -> Data {
        try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    private static func finite(_ value: Any) -> Any {
        switch value {
        case let d as Double: return d.isFinite ? d : NSNull()
        case let f as Float: return f.isFinite ? Double(f) : NSNull()
        case let a as [Any]: return a.map(finite)
        case let m as [String: Any]: return m.mapValues(finite)
        default: return value
        }
    }
}
