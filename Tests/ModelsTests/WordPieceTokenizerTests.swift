import Foundation
import Testing
@testable import Models

@Suite struct WordPieceTokenizerTests {
    struct Row: Decodable { let text: String; let max_length: Int?; let ids: [Int32] }

    static func tokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabularyFile: TestAssets.miniLMDirectory + "/vocab.txt")
    }

    @Test func goldenSentencesOfAssets() throws {
        let t = try Self.tokenizer()
        #expect(t.encode("The weather is lovely today.") == [101, 1996, 4633, 2003, 8403, 2651, 1012, 102])
        #expect(t.encode("It's so sunny outside!") == [101, 2009, 1005, 1055, 2061, 11559, 2648, 999, 102])
        #expect(t.encode("He drove to the stadium.") == [101, 2002, 5225, 2000, 1996, 3346, 1012, 102])
        #expect([t.padID, t.unknownID, t.classID, t.separatorID] == [0, 100, 101, 102])
    }

    @Test func matchesReferenceTokenizerOnEveryFixtureRow() throws {
        let t = try Self.tokenizer()
        let url = try #require(TestAssets.fixture("tokenizer/reference_ids.jsonl"))
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        #expect(lines.count >= 380)
        var mismatches = 0
        for line in lines {
            let row = try JSONDecoder().decode(Row.self, from: Data(line.utf8))
            let ids = t.encode(row.text, maxLength: row.max_length ?? 100_000)
            if ids != row.ids {
                mismatches += 1
                Issue.record("\(row.text.debugDescription): got \(t.tokenStrings(ids)), want \(t.tokenStrings(row.ids))")
            }
        }
        #expect(mismatches == 0)
    }

    @Test func batchPadsAndMasks() throws {
        let batch = TokenBatch([[101, 7, 102], [101, 102]])
        #expect(batch.sequenceLength == 3 && batch.batchSize == 2)
        #expect(batch.ids == [101, 7, 102, 101, 102, 0])
        #expect(batch.mask == [1, 1, 1, 1, 1, 0])
        #expect(batch.realTokenCount == 5)
    }

    @Test func rejectsBadVocabulary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-vocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("vocab.txt").path
        try "[PAD]\n[UNK]\nhello\nhello\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ModelsError.vocabularyInvalid(path: path, line: 4, reason: "duplicate token 'hello'")) {
            try WordPieceTokenizer(vocabularyFile: path)
        }
    }
}
