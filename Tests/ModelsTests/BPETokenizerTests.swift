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
