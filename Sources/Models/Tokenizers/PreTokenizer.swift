/// The `smollm` pre-tokenizer: splits text into the pieces that byte-level BPE merges within.
///
/// Two passes, as in SmolLM2's tokenizer.json: first every numeric scalar (general category
/// Nd, Nl or No) becomes a piece of its own; then each remaining run is cut by the GPT-2 pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, where `\s` is
/// the Unicode White_Space property. The pattern is evaluated by hand: at each position the
/// alternatives are tried in order and the first that matches wins (leftmost-first semantics,
/// as in the regex engines the reference uses), with no regex engine involved.
public enum PreTokenizer {
    /// The pieces of `text` in order; concatenated they give back `text` exactly.
    public static func split(_ text: String) -> [Substring.UnicodeScalarView] {
        let scalars = Substring(text).unicodeScalars
        var pieces: [Substring.UnicodeScalarView] = []
        var runStart = scalars.startIndex
        var i = scalars.startIndex
        while i < scalars.endIndex {
            if isNumber(scalars[i]) {
                if runStart < i { splitGPT2(scalars[runStart ..< i], into: &pieces) }
                let next = scalars.index(after: i)
                pieces.append(scalars[i ..< next])
                runStart = next
                i = next
            } else {
                i = scalars.index(after: i)
            }
        }
        if runStart < scalars.endIndex { splitGPT2(scalars[runStart...], into: &pieces) }
        return pieces
    }

    /// Applies the GPT-2 pattern to one run (which may still contain no digits, by construction).
    static func splitGPT2(_ run: Substring.UnicodeScalarView, into pieces: inout [Substring.UnicodeScalarView]) {
        var i = run.startIndex
        while i < run.endIndex {
            let end = matchAt(run, i)
            pieces.append(run[i ..< end])
            i = end
        }
    }

    /// The end of the match starting at `i` (always past `i`: the last alternative, `\s+`, and
    /// the punctuation class together cover every scalar).
    static func matchAt(_ s: Substring.UnicodeScalarView, _ i: Substring.UnicodeScalarView.Index) -> Substring.UnicodeScalarView.Index {
        let end = s.endIndex
        let c = s[i]
        let next = s.index(after: i)
        // 's 't 're 've 'm 'll 'd (lowercase only, as written in the pattern).
        if c == "'" && next < end {
            let c1 = s[next]
            let after1 = s.index(after: next)
            if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" { return after1 }
            if after1 < end {
                let c2 = s[after1]
                if (c1 == "r" && c2 == "e") || (c1 == "v" && c2 == "e") || (c1 == "l" && c2 == "l") {
                    return s.index(after: after1)
                }
            }
        }
        // ` ?X+` for the three classes: an optional space, then at least one class member.
        let body = (c == " " && next < end) ? next : i
        let head = s[body]
        for klass in [isLetter, isNumber, isOther] where klass(head) {
            var j = s.index(after: body)
            while j < end && klass(s[j]) { j = s.index(after: j) }
            return j
        }
        // Whitespace: `\s+(?!\S)` takes the run but leaves its last scalar when a non-space
        // follows (so that scalar can lead the next word); `\s+` takes a single one otherwise.
        var j = i
        while j < end && isSpace(s[j]) { j = s.index(after: j) }
        if j == end { return j }
        let last = s.index(before: j)
        return last > i ? last : j
    }

    @inline(__always) static func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }

    @inline(__always) static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    @inline(__always) static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c >= "0" && c <= "9" }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    @inline(__always) static func isOther(_ c: Unicode.Scalar) -> Bool {
        !isSpace(c) && !isLetter(c) && !isNumber(c)
    }
}
