import Foundation

/// A measured result that is NaN or infinite. A valid model on valid text only gives finite
/// perplexities, probabilities and embeddings, so such a value means the weights of the model
/// or of an adapter are damaged (or training diverged); printing it as a number would pass a
/// broken file off as a result. Text and `--json` output refuse it alike, naming the files.
public struct NonFiniteResult: Error, CustomStringConvertible, Equatable {
    /// The result field, e.g. `perplexity` or `forget.perplexity`.
    public let field: String
    /// The value as printed (`nan`, `inf`, `-inf`).
    public let value: String
    /// The model, adapter or run the result was computed with.
    public let files: [String]

    public init(field: String, value: String, files: [String]) {
        self.field = field; self.value = value; self.files = files
    }

    public var description: String {
        "\(field) is \(value): the model or adapter produced a non-finite value (\(files.joined(separator: ", "))). "
            + "Check those files: re-fetch the model, or retrain the adapter (a lower --lr) or leave it out, and run again."
    }

    /// Throws for the first non-finite number in `result`, the same check a JSON encoder makes
    /// when it refuses NaN and infinity; the field is named by its coding path.
    public static func check<Result: Encodable>(_ result: Result, files: [String]) throws {
        do {
            _ = try JSONEncoder().encode(result)
        } catch let EncodingError.invalidValue(value, context) {
            let field = context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
            throw NonFiniteResult(field: field.isEmpty ? "the result" : field, value: "\(value)", files: files)
        }
    }
}
