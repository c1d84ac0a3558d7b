import Foundation

extension DecodingError {
    /// Which field of a JSON document failed to decode, in a few words for an error message
    /// (instead of the decoder's debug dump). With the document's `data`, a document that is
    /// valid JSON is not called invalid (Foundation's decoder reports a number that does not fit
    /// its field, such as 4.5 for a whole number, as "not valid JSON").
    public static func fieldDescription(_ error: Error, data: Data? = nil) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "field \"\(path(context.codingPath + [key]))\" is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = path(context.codingPath)
            return path.isEmpty ? "the document is not the JSON object expected" : "field \"\(path)\" has the wrong type or value"
        case DecodingError.dataCorrupted(let context):
            let path = path(context.codingPath)
            if path.isEmpty, let data, (try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)) != nil {
                return "valid JSON, but a field holds a number of the wrong kind (a fraction where a whole number "
                    + "goes, or one out of range)"
            }
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
