import Foundation

extension DecodingError {
    /// Which field of a JSON document failed to decode, in a few words for an error message
    /// (instead of the decoder's debug dump).
    public static func fieldDescription(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "field \"\(path(context.codingPath + [key]))\" is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = path(context.codingPath)
            return path.isEmpty ? "the document is not the JSON object expected" : "field \"\(path)\" has the wrong type or value"
        case DecodingError.dataCorrupted(let context):
            let path = path(context.codingPath)
            return path.isEmpty ? "not valid JSON" : "field \"\(path)\" has the wrong type or value"
        default:
            return "unreadable"
        }
    }

    /// A coding path as a reader writes it: `evaluation.attacks[0].attack`.
    private static func path(_ keys: [any CodingKey]) -> String {
        keys.reduce(into: "") { text, key in
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") { text += "[\(index)]" }
            else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
    }
}
