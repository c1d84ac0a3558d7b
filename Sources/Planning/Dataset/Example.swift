import Foundation

/// One training example of a JSON Lines dataset.
///
/// `id` is the lineage key: unique in its file, non-empty, free of control characters (so the
/// newline-joined slice hash encoding is unambiguous). `group` names the data subject (a user, a
/// movie) whose examples can be forgotten together. Every other string-valued field of the line
/// (BBC's `lead` and `body`, for instance) is kept in `extraFields` and reachable by name.
public struct Example: Sendable, Equatable {
    public let id: String
    public let text: String
    public let label: String
    public let group: String?
    /// String-valued fields other than id, text, label and group, by name.
    public let extraFields: [String: String]

    public init(id: String, text: String, label: String, group: String? = nil,
                extraFields: [String: String] = [:]) {
        self.id = id
        self.text = text
        self.label = label
        self.group = group
        self.extraFields = extraFields
    }

    /// The value of a field by its JSON name: `id`, `text`, `label`, `group` or any extra string
    /// field; nil when the line did not have it (or it was not a string).
    public func field(_ name: String) -> String? {
        switch name {
        case "id": return id
        case "text": return text
        case "label": return label
        case "group": return group
        default: return extraFields[name]
        }
    }
}

extension Example {
    /// The longest id or group name, in UTF-8 bytes: a deletion request must be able to name
    /// every example and group a plan holds, and the ledger keeps every request forever.
    public static let maxNameBytes = 4096

    /// `name` quoted for a message: whole when short, else its first 60 characters and its length
    /// (an id a message quotes can be as long as `maxNameBytes`, or, refused, longer).
    public static func quoted(_ name: String) -> String {
        name.count <= 80 ? String(reflecting: name)
            : String(reflecting: String(name.prefix(60))).dropLast() + "…\" (\(name.utf8.count) bytes)"
    }

    /// The first control character of `text` (Unicode category Cc: U+0000–001F, U+007F–009F) as
    /// "U+XXXX", or nil: the characters a deletion request refuses in the names it carries.
    public static func controlCharacter(in text: String) -> String? {
        // The fast path: no byte below 0x20, no DEL and no lead byte 0xC2 (U+0080–U+00BF) means none.
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 }) else { return nil }
        return text.unicodeScalars.first { $0.properties.generalCategory == .control }
            .map { "U+" + String(format: "%04X", $0.value) }
    }
}
