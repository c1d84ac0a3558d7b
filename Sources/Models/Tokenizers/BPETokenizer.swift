/// A byte-level BPE tokenizer (GPT-2 style) built from a GGUF file's tokenizer metadata.
///
/// Encoding: special (control) tokens are cut out first; the text between them is split by the
/// `smollm` `PreTokenizer`; each piece's UTF-8 bytes are mapped to the GPT-2 byte alphabet and
/// merged pairwise, lowest merge rank first, until no listed merge applies. No BOS is added.
/// Decoding concatenates token strings and maps the byte alphabet back to bytes.
public struct BPETokenizer: Sendable {
    /// Token strings by id, in the byte alphabet.
    public let tokens: [String]
    /// Control tokens (GGUF token type 3), e.g. `<|im_start|>` = 1, `<|im_end|>` = 2.
    public let specialTokens: [String: Int]
    /// End-of-sequence id (`<|im_end|>` for SmolLM2); also the padding id.
    public let eosID: Int
    private let tokenIDs: [String: Int]
    /// (left id, right id) → (rank, merged id).
    private let merges: [Pair: Merge]
    /// The token of each byte, or -1 when the vocabulary has none.
    private let byteTokenIDs: [Int]
    private let byteForScalar: [UInt32: UInt8]

    struct Pair: Hashable { let left: Int32, right: Int32 }
    struct Merge { let rank: Int32, merged: Int32 }

    /// The vocabulary size.
    public var vocabularySize: Int { tokens.count }

    /// Builds the tokenizer from `tokenizer.ggml.{model,tokens,merges,token_type,eos_token_id}`.
    public init(gguf: GGUFFile) throws {
        let model = try gguf.value("tokenizer.ggml.model", expected: "string").string
        guard model == "gpt2" else {
            throw ModelsError.badTokenizer(reason: "tokenizer.ggml.model is '\(model ?? "?")', expected 'gpt2' (byte-level BPE)")
        }
        let tokens = try gguf.strings("tokenizer.ggml.tokens")
        let merges = try gguf.strings("tokenizer.ggml.merges")
        var types: [Int] = []
        if let typeValues = gguf.metadata["tokenizer.ggml.token_type"]?.array {
            types = typeValues.map { $0.integer ?? 1 }
        }
        let eosKey = "tokenizer.ggml.eos_token_id"
        let eos = try gguf.integer(eosKey)
        // The id pads batches and ends generation, so it is used as a row of the embedding and
        // stored as a 32-bit id: one outside the vocabulary is refused here, where the file is known.
        guard (0 ..< tokens.count).contains(eos) else {
            throw ModelsError.ggufInvalid(path: gguf.path, what: "metadata '\(eosKey)'",
                                          reason: "token id \(eos) is outside the vocabulary of \(tokens.count) tokens")
        }
        try self.init(tokens: tokens, merges: merges, tokenTypes: types, eosID: eos)
    }

    /// Builds the tokenizer from explicit tables; `tokenTypes[i] == 3` marks a control token.
    public init(tokens: [String], merges: [String], tokenTypes: [Int], eosID: Int) throws {
        guard (0 ..< tokens.count).contains(eosID) else {
            throw ModelsError.badTokenizer(reason: "end-of-sequence id \(eosID) is outside the vocabulary of \(tokens.count) tokens")
        }
        self.tokens = tokens
        self.eosID = eosID
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = i }
        tokenIDs = ids
        var specials: [String: Int] = [:]
        for (i, type) in tokenTypes.enumerated() where type == 3 && i < tokens.count { specials[tokens[i]] = i }
        specialTokens = specials
        let alphabet = ByteAlphabet.scalars
        var byteIDs: [Int] = []
        var reverse: [UInt32: UInt8] = [:]
        for b in 0 ..< 256 {
            // SmolLM2's vocabulary lacks a few control bytes; like the reference BPE (no byte
            // fallback, no unknown token) such bytes are dropped when encoding.
            byteIDs.append(ids[String(Character(alphabet[b]))] ?? -1)
            reverse[alphabet[b].value] = UInt8(b)
        }
        byteTokenIDs = byteIDs
        byteForScalar = reverse
        var table: [Pair: Merge] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let l = ids[String(parts[0])], let r = ids[String(parts[1])],
                  let m = ids[String(parts[0]) + String(parts[1])] else {
                throw ModelsError.badTokenizer(reason: "merge \(rank) '\(merge)' names a token not in the vocabulary")
            }
            let pair = Pair(left: Int32(l), right: Int32(r))
            if table[pair] == nil { table[pair] = Merge(rank: Int32(rank), merged: Int32(m)) }
        }
        self.merges = table
    }

    /// Token ids of `text`; with `allowSpecial`, control-token strings in the text become their ids.
    public func encode(_ text: String, allowSpecial: Bool = true) -> [Int] {
        var ids: [Int] = []
        for segment in segments(text, allowSpecial: allowSpecial) {
            switch segment {
            case let .special(id): ids.append(id)
            case let .text(t):
                for piece in PreTokenizer.split(t) { encodePiece(piece, into: &ids) }
            }
        }
        return ids
    }

    /// The text of `ids` (invalid UTF-8 sequences become U+FFFD). Throws for an unknown id.
    public func decode(_ ids: [Int]) throws -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0 && id < tokens.count else {
                throw ModelsError.tokenOutOfRange(id: id, vocabularySize: tokens.count)
            }
            if specialTokens[tokens[id]] == id {
                bytes.append(contentsOf: Array(tokens[id].utf8))
                continue
            }
            for scalar in tokens[id].unicodeScalars {
                if let b = byteForScalar[scalar.value] { bytes.append(b) } else { bytes.append(contentsOf: Array(String(scalar).utf8)) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    enum Segment { case text(String), special(Int) }

    /// Cuts `text` at control-token strings (longest match at each position).
    func segments(_ text: String, allowSpecial: Bool) -> [Segment] {
        guard allowSpecial, !specialTokens.isEmpty, text.contains("<") else { return [.text(text)] }
        var out: [Segment] = []
        var current = ""
        var rest = Substring(text)
        while let c = rest.first {
            if c == "<" {
                var best: (String, Int)?
                for (s, id) in specialTokens where rest.hasPrefix(s) && s.count > (best?.0.count ?? 0) { best = (s, id) }
                if let (s, id) = best {
                    if !current.isEmpty { out.append(.text(current)); current = "" }
                    out.append(.special(id))
                    rest = rest.dropFirst(s.count)
                    continue
                }
            }
            current.append(c)
            rest = rest.dropFirst()
        }
        if !current.isEmpty { out.append(.text(current)) }
        return out
    }

    /// Merges one piece: start from its byte tokens and apply the lowest-ranked merge until none
    /// applies; among equal ranks (the same pair at several places) the leftmost goes first.
    ///
    /// The symbols form a linked list over their first byte's index, and every adjacent pair that
    /// has a merge waits in a min-heap keyed by (rank, left index). A merge makes at most two new
    /// pairs, and a heap entry whose symbols have changed since it was pushed is skipped when it
    /// comes out, so a piece of n bytes costs O(n log n) rather than a scan of all pairs per merge.
    func encodePiece(_ piece: Substring.UnicodeScalarView, into ids: inout [Int]) {
        var symbols: [Int32] = []
        for b in String(piece).utf8 { symbols.append(Int32(byteTokenIDs[Int(b)])) }
        let n = symbols.count
        // next[i] == n ends the list; next[i] == -1 marks a symbol merged into its left neighbour.
        var next = Array(1 ... max(n, 1))
        var previous = Array(-1 ..< max(n - 1, 0))
        var heap = MergeHeap()
        func push(_ left: Int) {
            let right = next[left]
            guard right < n, let m = merges[Pair(left: symbols[left], right: symbols[right])] else { return }
            heap.push(MergeCandidate(rank: m.rank, left: left, right: right,
                                     leftID: symbols[left], rightID: symbols[right], merged: m.merged))
        }
        for i in 0 ..< max(n - 1, 0) { push(i) }
        while let c = heap.pop() {
            guard next[c.left] == c.right, symbols[c.left] == c.leftID, symbols[c.right] == c.rightID else { continue }
            symbols[c.left] = c.merged
            let after = next[c.right]
            next[c.left] = after
            if after < n { previous[after] = c.left }
            next[c.right] = -1
            if previous[c.left] >= 0 { push(previous[c.left]) }
            push(c.left)
        }
        // The first symbol only ever absorbs its right neighbours, so the list starts at 0.
        var i = 0
        while i < n {
            if symbols[i] >= 0 { ids.append(Int(symbols[i])) }
            i = next[i]
        }
    }
}

/// A pair of adjacent symbols of a piece that a merge applies to, as it was when found.
struct MergeCandidate {
    let rank: Int32
    /// Byte indices of the two symbols (each symbol is named by its first byte).
    let left: Int, right: Int
    /// The token ids of the two symbols when the pair was found, to recognise a stale entry.
    let leftID: Int32, rightID: Int32
    let merged: Int32

    /// Lower rank first; at equal rank (the same pair) the leftmost first.
    func precedes(_ other: MergeCandidate) -> Bool {
        rank != other.rank ? rank < other.rank : left < other.left
    }
}

/// A binary min-heap of merge candidates ordered by `MergeCandidate.precedes`.
struct MergeHeap {
    private var items: [MergeCandidate] = []

    mutating func push(_ item: MergeCandidate) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> MergeCandidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let l = 2 * parent + 1, r = l + 1
                var best = parent
                if l < items.count && items[l].precedes(items[best]) { best = l }
                if r < items.count && items[r].precedes(items[best]) { best = r }
                if best == parent { break }
                items.swapAt(parent, best)
                parent = best
            }
        }
        return top
    }
}

/// GPT-2's reversible map from bytes to printable Unicode scalars: printable Latin-1 bytes
/// (33–126, 161–172, 174–255) map to themselves, the other 68 to U+0100 onwards in byte order.
enum ByteAlphabet {
    static let scalars: [Unicode.Scalar] = {
        var out = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0 ..< 256 {
            if (33 ... 126).contains(b) || (161 ... 172).contains(b) || (174 ... 255).contains(b) {
                out[b] = Unicode.Scalar(UInt32(b))!
            } else {
                out[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return out
    }()
}
