import Foundation

/// BERT's WordPiece tokenizer: basic tokenization, greedy longest-match sub-words, special tokens.
///
/// Contract: `encode` gives the ids the reference tokenizer (`tokenizers`' BertTokenizer on the
/// model's own vocab.txt) gives, `[CLS] pieces… [SEP]`, truncated to `maxLength` tokens
/// (the `[SEP]` is kept). A word longer than `maxCharactersPerWord` Unicode scalars, or one
/// that cannot be covered by vocabulary pieces, becomes a single `[UNK]`. As in the reference,
/// the special tokens (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`) written literally in the
/// raw text are recognised before normalisation and map to their own ids.
public struct WordPieceTokenizer: Sendable {
    /// Token string for each id (line i of vocab.txt is id i).
    public let tokens: [String]
    /// Id of each token string.
    public let ids: [String: Int32]
    public let basic: BasicTokenizer
    public let maxCharactersPerWord: Int
    public let padID: Int32, unknownID: Int32, classID: Int32, separatorID: Int32

    /// Reads `vocab.txt` (one token per line) and looks up the special tokens.
    /// - Throws: `ModelsError.vocabularyInvalid` naming the line for duplicates or missing specials.
    public init(vocabularyFile path: String, lowercase: Bool = true, maxCharactersPerWord: Int = 100) throws {
        try MappedFile.requireRegular(path)  // a FIFO would block the read; a directory reads as missing
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelsError.fileUnreadable(path: path, reason: "no such file or not readable")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ModelsError.vocabularyInvalid(path: path, line: 0, reason: "not UTF-8")
        }
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(lines.count)
        for (index, rawLine) in lines.enumerated() {
            let token = rawLine.hasSuffix("\r") ? String(rawLine.dropLast()) : rawLine
            lines[index] = token
            if ids[token] != nil {
                throw ModelsError.vocabularyInvalid(path: path, line: index + 1, reason: "duplicate token '\(token)'")
            }
            ids[token] = Int32(index)
        }
        func special(_ token: String) throws -> Int32 {
            guard let id = ids[token] else {
                throw ModelsError.vocabularyInvalid(path: path, line: lines.count, reason: "no \(token) token")
            }
            return id
        }
        self.tokens = lines
        self.ids = ids
        self.basic = BasicTokenizer(lowercase: lowercase)
        self.maxCharactersPerWord = maxCharactersPerWord
        self.padID = try special("[PAD]")
        self.unknownID = try special("[UNK]")
        self.classID = try special("[CLS]")
        self.separatorID = try special("[SEP]")
    }

    /// The ids of `text` as `[CLS] pieces… [SEP]`, at most `maxLength` (≥ 2) ids.
    ///
    /// The text is read in windows cut where tokenization cannot cross (see `windowEnd`), and
    /// reading stops once `maxLength` ids are reached: a long text costs the memory and time of
    /// its first few windows, not of the whole text, and the ids are those of the whole text.
    public func encode(_ text: String, maxLength: Int = 512) -> [Int32] {
        precondition(maxLength >= 2, "maxLength must leave room for [CLS] and [SEP]")
        var result: [Int32] = [classID]
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        windows: while start < scalars.endIndex {
            let end = Self.windowEnd(scalars, from: start)
            for segment in splitOnSpecialTokens(String(scalars[start ..< end])) {
                switch segment {
                case let .special(id):
                    result.append(id)
                case let .text(piece):
                    for word in basic.words(piece) {
                        appendPieces(of: word, to: &result)
                        if result.count >= maxLength - 1 { break windows }
                    }
                }
                if result.count >= maxLength - 1 { break windows }
            }
            start = end
        }
        if result.count > maxLength - 1 { result.removeLast(result.count - (maxLength - 1)) }
        result.append(separatorID)
        return result
    }

    /// Scalars per window before `encode` looks for a place to cut.
    static let windowScalars = 4096

    /// The end of the window that starts at `start`: the first safe cut at least `windowScalars`
    /// scalars on, or the end of the text. A cut is safe right before a white-space scalar that
    /// normalisation keeps (it becomes a space) or before an ASCII punctuation mark: both are
    /// word boundaries, no special token (`[SEP]`…) contains white space or punctuation other
    /// than its leading `[`, before which a cut is also safe, and both are starters, so the
    /// canonical decomposition of the two sides equals that of the whole.
    static func windowEnd(_ scalars: String.UnicodeScalarView, from start: String.Index) -> String.Index {
        guard var i = scalars.index(start, offsetBy: windowScalars, limitedBy: scalars.endIndex) else {
            return scalars.endIndex
        }
        while i < scalars.endIndex {
            let scalar = scalars[i]
            if scalar == " " || scalar == "\n" || scalar == "\t" || scalar == "\r" { return i }
            if scalar.isASCII, scalar != "]", BasicTokenizer.isPunctuation(scalar) { return i }
            i = scalars.index(after: i)
        }
        return i
    }

    /// The WordPiece ids of one basic word (no special tokens).
    public func pieces(of word: [Unicode.Scalar]) -> [Int32] {
        var result: [Int32] = []
        appendPieces(of: word, to: &result)
        return result
    }

    /// The token strings of `ids` (for display and debugging).
    public func tokenStrings(_ ids: [Int32]) -> [String] {
        ids.map { Int($0) < tokens.count && $0 >= 0 ? tokens[Int($0)] : "<\($0)>" }
    }

    private enum Segment { case text(String), special(Int32) }

    /// Cuts `text` at literal occurrences of the special tokens (leftmost first).
    private func splitOnSpecialTokens(_ text: String) -> [Segment] {
        let scalars = Array(text.unicodeScalars)
        guard scalars.contains("[") else { return [.text(text)] }
        let specials: [([Unicode.Scalar], Int32)] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .compactMap { token in ids[token].map { (Array(token.unicodeScalars), $0) } }
        var segments: [Segment] = []
        var pending = String.UnicodeScalarView()
        var i = 0
        scan: while i < scalars.count {
            if scalars[i] == "[" {
                for (token, id) in specials where i + token.count <= scalars.count
                    && scalars[i..<(i + token.count)].elementsEqual(token) {
                    if !pending.isEmpty { segments.append(.text(String(pending))); pending = .init() }
                    segments.append(.special(id))
                    i += token.count
                    continue scan
                }
            }
            pending.append(scalars[i])
            i += 1
        }
        if !pending.isEmpty { segments.append(.text(String(pending))) }
        return segments
    }

    /// Greedy longest match: at each start, the longest vocabulary piece (prefixed `##` after the
    /// first); if some position has no match, the whole word is `[UNK]`.
    private func appendPieces(of word: [Unicode.Scalar], to result: inout [Int32]) {
        if word.count > maxCharactersPerWord { result.append(unknownID); return }
        let mark = result.count
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while start < end {
                var piece = start > 0 ? "##" : ""
                piece.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = ids[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else {
                result.removeLast(result.count - mark)
                result.append(unknownID)
                return
            }
            result.append(id)
            start = end
        }
    }
}
