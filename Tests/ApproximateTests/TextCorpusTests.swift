import Foundation
import Testing
@testable import Approximate

/// Reading JSON Lines texts: an error names the line number an editor shows, blank lines
/// included, and says what is wrong with it.
@Suite struct TextCorpusTests {
    static func texts(_ bytes: [UInt8]) throws -> [String] {
        try TextCorpus.texts(Data(bytes), path: "t.jsonl", field: "text", limit: nil)
    }

    @Test func blankLinesCountInTheLineNumberOfAnError() throws {
        #expect(try Self.texts(Array("{\"text\": \"a\"}\n\n \n{\"text\": \"b\"}\n\n".utf8)) == ["a", "b"])
        #expect(throws: ApproximateError.badRecord(path: "t.jsonl", line: 4, reason: "no string field 'text'")) {
            try Self.texts(Array("{\"text\": \"a\"}\n\n\r\n{\"txt\": \"typo\"}\n".utf8))
        }
        #expect(throws: ApproximateError.badRecord(path: "t.jsonl", line: 3, reason: "not a JSON object")) {
            try Self.texts(Array("\n\n[1, 2]\n".utf8))
        }
    }

    @Test func aLineThatIsNotUTF8IsNamedSo() throws {
        #expect(throws: ApproximateError.badRecord(path: "t.jsonl", line: 3, reason: "not UTF-8")) {
            try Self.texts(Array("{\"text\": \"a\"}\n\n{\"text\": \"".utf8) + [0xC3, 0x28] + Array("\"}\n".utf8))
        }
    }
}
