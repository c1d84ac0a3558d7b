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

    @Test func decodeRejectsUnknownID() throws {
        let t = try Self.tokenizer.get()
        #expect(throws: ModelsError.tokenOutOfRange(id: 49152, vocabularySize: 49152)) { try t.decode([49152]) }
    }
}
