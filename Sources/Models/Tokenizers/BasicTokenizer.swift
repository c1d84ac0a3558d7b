import Foundation

/// BERT's basic tokenization: text normalisation, then splitting into words and punctuation.
///
/// Follows the reference `tokenizers` implementation (`BertNormalizer` with `clean_text`,
/// `handle_chinese_chars`, accent stripping tied to lowercasing, then `BertPreTokenizer`), in
/// its order:
/// 1. drop NUL, U+FFFD and control characters (category C*, except tab/newline/return) and map
///    every white-space character to a space;
/// 2. surround each CJK ideograph with spaces, so each becomes its own word;
/// 3. when lowercasing: canonical decomposition (NFD), drop non-spacing marks (Mn), then lowercase
///    each scalar (context-free, as Rust's `char::to_lowercase`);
/// 4. split on white space and isolate every punctuation character (ASCII punctuation or
///    Unicode category P*).
public struct BasicTokenizer: Sendable {
    /// Lowercase and strip accents (true for uncased models such as MiniLM).
    public let lowercase: Bool

    public init(lowercase: Bool = true) { self.lowercase = lowercase }

    /// The words and punctuation marks of `text`, after normalisation.
    public func words(_ text: String) -> [[Unicode.Scalar]] {
        let normalized = normalize(text)
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for scalar in normalized {
            if Self.isWhitespace(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
            } else if Self.isPunctuation(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([scalar])
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Steps 1–3: cleaning, CJK spacing, accent stripping and lowercasing.
    public func normalize(_ text: String) -> [Unicode.Scalar] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if Self.isWhitespace(scalar) {
                cleaned.append(" ")
            } else if Self.isCJKIdeograph(scalar) {
                cleaned.append(" "); cleaned.append(scalar); cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        guard lowercase else { return Array(cleaned) }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(decomposed.unicodeScalars.count)
        for scalar in decomposed.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            if scalar.isASCII {
                let v = scalar.value
                result.append((v >= 65 && v <= 90) ? Unicode.Scalar(v + 32)! : scalar)
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return result
    }

    /// Unicode White_Space, as Rust's `char::is_whitespace`.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// Categories Cc, Cf, Cn, Co, Cs, except tab, newline and carriage return (white space).
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// ASCII punctuation (which includes symbols such as `$`, `+`, `^`) or any Unicode P* category.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
            return true
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK Unified Ideographs blocks BERT treats as single-character words (not kana or hangul).
    static func isCJKIdeograph(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
