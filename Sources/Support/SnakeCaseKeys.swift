import Foundation

/// `key` in snake_case, the spelling of every key Lethe writes in JSON: a word starts at a
/// capital after a lower-case letter or a digit, and at the last capital of a run of capitals
/// followed by lower case ("HTTPServer" → "http_server"), except before a plural "s"
/// ("logicalCPUs" → "logical_cpus", "runFLOPs" → "run_flops"). Foundation's
/// `.convertToSnakeCase` splits those plurals ("logical_cp_us").
public func snakeCased(_ key: String) -> String {
    let characters = Array(key)
    var result = ""
    for (i, character) in characters.enumerated() {
        if character.isUppercase, i > 0 {
            let before = characters[i - 1]
            let next: Character? = i + 1 < characters.count ? characters[i + 1] : nil
            let plural = next == "s" && (i + 2 == characters.count || !characters[i + 2].isLowercase)
            if before.isLowercase || before.isNumber || (before.isUppercase && next?.isLowercase == true && !plural) {
                result.append("_")
            }
        }
        result += character.lowercased()
    }
    return result
}

extension JSONEncoder {
    /// An encoder of the reports commands print: keys in snake_case (`snakeCased`), sorted, and
    /// slashes unescaped.
    public static func report(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .snakeCased
        return encoder
    }
}

extension JSONEncoder.KeyEncodingStrategy {
    /// Every key through `snakeCased`.
    public static var snakeCased: Self { .custom { path in SnakeKey(Support.snakeCased(path[path.count - 1].stringValue)) } }
}

private struct SnakeKey: CodingKey {
    let stringValue: String
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}
