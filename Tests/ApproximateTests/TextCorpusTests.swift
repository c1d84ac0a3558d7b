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
        #expect(throws: ApproximateError.badRecord(path: "t.jsonl", line: 3, reason: "column 1: a line must start with '{'")) {
            try Self.texts(Array("\n\n[1, 2]\n".utf8))
        }
    }

    /// The reason of the error `bytes` give, or nil when they read.
    static func reason(_ bytes: [UInt8]) -> (line: Int, reason: String)? {
        do { _ = try texts(bytes); return nil } catch ApproximateError.badRecord(_, let line, let reason) {
            return (line, reason)
        } catch { return (0, "\(error)") }
    }

    @Test func aLineThatIsNotUTF8IsNamedSo() throws {
        let found = Self.reason(Array("{\"text\": \"a\"}\n\n{\"text\": \"".utf8) + [0xC3, 0x28] + Array("\"}\n".utf8))
        #expect(found?.line == 3 && found?.reason.contains("UTF-8") == true, "\(String(describing: found))")
    }

    /// The texts of unlearning and scoring are read as strictly as a plan's data: a key given
    /// twice is refused (which text was meant?), as is a lone surrogate, each naming its column;
    /// a byte-order mark is skipped at the start of the file only; a number that is no string is
    /// named as one.
    @Test func textsAreReadAsStrictlyAsAPlansData() throws {
        let twice = Self.reason(Array("{\"id\":\"a\",\"text\":\"first\",\"text\":\"second\"}\n".utf8))
        #expect(twice?.line == 1 && twice?.reason.contains("\"text\" appears twice") == true, "\(String(describing: twice))")
        let surrogate = Self.reason(Array(#"{"text":"abc \ud800 x"}"#.utf8))
        #expect(surrogate?.reason.contains("high surrogate") == true, "\(String(describing: surrogate))")
        #expect(try Self.texts([0xEF, 0xBB, 0xBF] + Array("{\"text\": \"a\"}\n".utf8)) == ["a"])
        let midBOM = Self.reason(Array("{\"text\": \"a\"}\n".utf8) + [0xEF, 0xBB, 0xBF] + Array("{\"text\": \"b\"}\n".utf8))
        #expect(midBOM?.line == 2, "\(String(describing: midBOM))")
        #expect(try Self.texts(Array(#"{"text":"big","n":1e999999}"#.utf8)) == ["big"])
        let number = Self.reason(Array(#"{"text":5}"#.utf8))
        #expect(number?.reason == "field 'text' is a number, not a string", "\(String(describing: number))")
    }
}
