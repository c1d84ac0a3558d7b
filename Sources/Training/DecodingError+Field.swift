import Foundation

extension DecodingError {
    /// Which field of a JSON document failed to decode, in a few words for an error message
    /// (instead of the decoder's debug dump).
    public static func fieldDescription(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            let path = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            return "field \"\(path)\" is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not valid JSON" : "field \"\(path)\" has the wrong type or value"
        default:
            return "unreadable"
        }
    }
}
