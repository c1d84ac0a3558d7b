import Foundation
import Testing
@testable import Models

@Suite struct BPETokenizerTests {
    static let tokenizer: Result<BPETokenizer, Error> = Result { try BPETokenizer(gguf: try TestSupport.smolLM.get()) }

    @Test func goldenIDsOfAssets() throws {
        let t = try Self.tokenizer.get()
        #expect(t.encode("The capital of France is") == [504, 3575, 282, 4649, 314])
        #expect(t.encode("Once upon a time, there was a little") == [6403, 1980, 253, 655, 28, 665, 436, 253, 1838])
        #expect(t.encode("The quick brown fox jumps over the lazy dog. It was a sunny day and the children were playing in the park.")
                == [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 657, 436, 253, 12926, 1194, 284, 260, 1122, 592, 4464, 281, 260, 5949, 30])
        #expect(t.specialTokens["<|im_start|>"] == 1 && t.specialTokens["<|im_end|>"] == 2 && t.eosID == 2)
    }

    @Test func hardCasesMatchReferenceTokenizer() throws {
        let t = try Self.tokenizer.get()
        let cases = try #require(try TestSupport.reference()["tokenizer_cases"] as? [[String: Any]])
        #expect(cases.count >= 18)
        for c in cases {
            let text = try #require(c["text"] as? String)
            let ids = try #require(c["ids"] as? [Int])
            #expect(t.encode(text) == ids, "\(text.debugDescription)")
            #expect(try t.decode(ids) == (c["decoded"] as? String), "\(text.debugDescription)")
        }
    }

    @Test func preTokenizerPieces() {
        let pieces = PreTokenizer.split("it's  12ab\n x").map { String($0) }
        #expect(pieces == ["it", "'s", "  ", "1", "2", "ab", "\n", " x"])
        #expect(PreTokenizer.split("a\u{3000}\u{3000}b").map { String($0) } == ["a", "\u{3000}", "\u{3000}", "b"])
    }

    /// A GGUF holding only a byte-level BPE tokenizer of three tokens and one merge, whose
    /// end-of-sequence id is `eos` (stored as a uint32, as SmolLM2 stores it).
    static func tokenizerFile(eos: UInt32) throws -> GGUFFile {
        typealias B = GGUFBuilder
        var b = GGUFBuilder()
        b.add("tokenizer.ggml.model", type: 8, B.string("gpt2"))
        b.add("tokenizer.ggml.tokens", type: 9, B.le(UInt32(8)) + B.le(UInt64(3)) + B.string("a") + B.string("b") + B.string("ab"))
        b.add("tokenizer.ggml.merges", type: 9, B.le(UInt32(8)) + B.le(UInt64(1)) + B.string("a b"))
        b.add("tokenizer.ggml.eos_token_id", type: 4, B.le(eos))
        return try GGUFFile(data: Data(b.build()), path: "tok.gguf")
    }

    @Test func endOfSequenceIDOutsideTheVocabularyIsRefusedNamingFileAndKey() throws {
        let ok = try BPETokenizer(gguf: try Self.tokenizerFile(eos: 2))
        #expect(ok.eosID == 2 && ok.encode("ab") == [2])
        for eos: UInt32 in [3, 60000, 4_000_000_000] {
            do {
                _ = try BPETokenizer(gguf: try Self.tokenizerFile(eos: eos))
                Issue.record("eos \(eos) accepted")
            } catch let error as ModelsError {
                #expect(error == .ggufInvalid(path: "tok.gguf", what: "metadata 'tokenizer.ggml.eos_token_id'",
                                              reason: "token id \(eos) is outside the vocabulary of 3 tokens"))
                #expect(error.description.hasPrefix("tok.gguf: metadata 'tokenizer.ggml.eos_token_id'"))
            }
        }
        #expect(throws: ModelsError.badTokenizer(reason: "end-of-sequence id -1 is outside the vocabulary of 3 tokens")) {
            try BPETokenizer(tokens: ["a", "b", "ab"], merges: ["a b"], tokenTypes: [], eosID: -1)
        }
    }

    @Test func decodeRejectsUnknownID() throws {
        let t = try Self.tokenizer.get()
        #expect(throws: ModelsError.tokenOutOfRange(id: 49152, vocabularySize: 49152)) { try t.decode([49152]) }
    }
}

/// Long pieces: the heap-driven merge gives the ids of the plain algorithm (rescan every pair,
/// merge the lowest rank, leftmost first) and a very long piece finishes.
@Suite struct BPELongPieceTests {
    /// The plain merge loop over tables read straight from the GGUF file: rank of each listed
    /// pair and the id it merges to, and the token of each byte.
    struct ReferenceMerger {
        let ranks: [Int: (rank: Int, merged: Int32)]
        let byteIDs: [Int32]

        /// One dictionary key for a pair of ids (either may be -1, a byte without a token).
        static func key(_ left: Int32, _ right: Int32) -> Int { Int(left) << 32 | Int(UInt32(bitPattern: right)) }

        init(gguf: GGUFFile) throws {
            let tokens = try gguf.strings("tokenizer.ggml.tokens")
            var ids: [String: Int32] = [:]
            for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
            var ranks: [Int: (rank: Int, merged: Int32)] = [:]
            for (rank, merge) in try gguf.strings("tokenizer.ggml.merges").enumerated() {
                let parts = merge.split(separator: " ", maxSplits: 1).map(String.init)
                let key = Self.key(ids[parts[0]]!, ids[parts[1]]!)
                if ranks[key] == nil { ranks[key] = (rank, ids[parts[0] + parts[1]]!) }
            }
            self.ranks = ranks
            byteIDs = ByteAlphabet.scalars.map { ids[String(Character($0))] ?? -1 }
        }

        func encode(_ piece: String) -> [Int] {
            var symbols = piece.utf8.map { byteIDs[Int($0)] }
            while symbols.count > 1 {
                var best: (rank: Int, index: Int, merged: Int32)?
                for k in 0 ..< symbols.count - 1 {
                    if let m = ranks[Self.key(symbols[k], symbols[k + 1])], m.rank < (best?.rank ?? Int.max) {
                        best = (m.rank, k, m.merged)
                    }
                }
                guard let b = best else { break }
                symbols[b.index] = b.merged
                symbols.remove(at: b.index + 1)
            }
            return symbols.filter { $0 >= 0 }.map(Int.init)
        }
    }

    static let reference: Result<ReferenceMerger, Error> = Result { try ReferenceMerger(gguf: try TestSupport.smolLM.get()) }

    /// Letters (with accented and CJK ones, whose UTF-8 takes several bytes) drawn from a
    /// fixed-seed generator, so every run checks the same text.
    static func randomLetters(count: Int, seed: UInt64) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzéü日本ABCXYZ")
        var state = seed
        return String((0 ..< count).map { _ -> Character in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return alphabet[Int(state >> 33) % alphabet.count]
        })
    }

    @Test func longPiecesGiveTheIDsOfThePlainMergeLoop() throws {
        let t = try BPETokenizerTests.tokenizer.get()
        let reference = try Self.reference.get()
        let texts = [String(repeating: "a", count: 5000), String(repeating: "ab", count: 3000),
                     " " + String(repeating: "the", count: 1500), String(repeating: "\u{1}", count: 50) + "x",
                     Self.randomLetters(count: 4000, seed: 1), Self.randomLetters(count: 3000, seed: 2),
                     String(repeating: "é", count: 2000)]
        for text in texts {
            let pieces = PreTokenizer.split(text).map { String($0) }
            #expect(pieces.count <= 2, "\(text.prefix(20)) is meant to be one long piece")
            #expect(t.encode(text, allowSpecial: false) == pieces.flatMap(reference.encode), "\(text.prefix(20))…")
        }
    }

    @Test func aPieceOfTwoHundredThousandBytesIsTokenized() throws {
        let t = try BPETokenizerTests.tokenizer.get()
        let ids = t.encode(String(repeating: "a", count: 200_000), allowSpecial: false)
        #expect(!ids.isEmpty)
        #expect(try t.decode(ids) == String(repeating: "a", count: 200_000))
    }
}
