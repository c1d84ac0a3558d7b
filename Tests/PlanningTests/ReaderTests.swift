import Foundation
import Testing
@testable import Planning

@Suite struct ReaderTests {
    private func parse(_ text: String) throws -> Dataset {
        try Dataset.parse(Data(text.utf8), source: "t.jsonl")
    }

    private func failure(_ text: String) -> PlanningError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error as? PlanningError
        }
    }

    @Test func readsFieldsGroupsAndExtras() throws {
        let dataset = try parse("""
            {"id": "a", "text": "hello", "label": "x", "lead": "first para", "n": 3, "tags": ["q", {"z": "]"}]}

            {"label": "y", "text": "bye", "id": "b", "group": "g1"}\r
            {"id": "c", "text": "t", "label": "x", "group": null}
            """)
        #expect(dataset.examples.count == 3)
        let a = try #require(dataset[id: "a"])
        #expect(a.text == "hello" && a.label == "x" && a.group == nil)
        #expect(a.field("lead") == "first para")
        #expect(a.field("n") == nil)  // non-string extras are not kept
        #expect(a.extraFields == ["lead": "first para"])
        #expect(dataset[id: "b"]?.group == "g1")
        #expect(dataset[id: "c"]?.group == nil)
        #expect(dataset.index(of: "c") == 2)
        #expect(dataset.labelVocabulary.names == ["x", "y"])
    }

    @Test func decodesEveryEscape() throws {
        let line = #"{"id": "e", "text": "q\"b\\s\/n\nt\tr\rf\fb\b é=\u00e9 €=\u20AC 😀=\ud83d\ude00 end", "label": "\u0041"}"#
        let example = try #require(try parse(line).examples.first)
        #expect(example.text == "q\"b\\s/n\nt\tr\rf\u{0C}b\u{08} é=é €=€ 😀=😀 end")
        #expect(example.label == "A")
    }

    @Test func skipsByteOrderMarkAndComputesHash() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array(#"{"id":"a","text":"t","label":"l"}"#.utf8)
        let dataset = try Dataset.parse(Data(bytes), source: "bom.jsonl")
        #expect(dataset.examples.map(\.id) == ["a"])
        // SHA-256 of the exact bytes, BOM included (python3 hashlib over the same bytes).
        #expect(dataset.sha256 == "a8997a748c4204730455e57fee1880f768d19eeafbc325541e6213b2280bdf20")
    }

    /// A line of many keys is read whole (each key checked against the others through a set, not
    /// a walk over the ones before it), and a key repeated at its end is still found.
    @Test func aLineOfManyKeysIsReadAndItsRepeatedKeyFound() throws {
        let extras = (0..<100_000).map { "\"k\($0)\": 0" }.joined(separator: ", ")
        let dataset = try parse(#"{"id": "a", "text": "t", "label": "l", "# + extras + "}")
        #expect(dataset.examples.map(\.id) == ["a"])
        let error = failure(#"{"id": "a", "text": "t", "label": "l", "# + extras + #", "k7": 1}"#)
        guard case let .malformedJSON(_, line, _, reason)? = error else {
            Issue.record("expected malformedJSON, got \(String(describing: error))")
            return
        }
        #expect(line == 1 && reason.contains("\"k7\" appears twice"), "\(reason)")
    }

    @Test func malformedJSONNamesLineAndColumn() {
        let error = failure("""
            {"id": "a", "text": "t", "label": "l"}
            {"id": "b", "text": "t" "label": "l"}
            """)
        guard case let .malformedJSON(file, line, column, _)? = error else {
            Issue.record("expected malformedJSON, got \(String(describing: error))")
            return
        }
        #expect(file == "t.jsonl" && line == 2 && column == 25)
        #expect(error?.description.hasPrefix("t.jsonl:2:25: malformed JSON line: expected ',' or '}'") == true)
    }

    @Test(arguments: [
        (#"{"id": "a", "text": "\ud83d", "label": "l"}"#, "not followed by a low surrogate"),
        (#"{"id": "a", "text": "\ude00", "label": "l"}"#, "lone low surrogate"),
        (#"{"id": "a", "text": "\ud83d\u0041", "label": "l"}"#, "not a low surrogate"),
        (#"{"id": "a", "text": "\x", "label": "l"}"#, "unknown escape"),
        (#"{"id": "a", "text": "\u12G4", "label": "l"}"#, "four hex digits"),
        ("{\"id\": \"a\", \"text\": \"tab\there\", \"label\": \"l\"}", "control character"),
        (#"{"id": "a", "text": "t", "label": "l"} x"#, "after the closing"),
        (#"{"id": "a", "text": "t", "label": "l", "id": "b"}"#, "appears twice"),
        (#"{"id": "a", "text": "t", "label": "l""#, "expected ',' or '}'"),
        (#"["id", "a"]"#, "must start with '{'"),
        (#"{"id": "a", "text": "t", "label": "l", "n": 01}"#, "expected ',' or '}'"),
        (#"{"id": "a", "text": "t", "label": "l", "n": [1, 2}"#, "'}' does not close '['"),
        (#"{"id": "a", "text": "t", "label": "l", "n": [1, {"k": "]"}"#, "not closed"),
        (#"{"id": "a", "text": "t", "label": "l", "b": tru}"#, "expected true"),
    ])
    func rejectsBadJSON(line: String, reason: String) {
        guard case let .malformedJSON(_, lineNumber, _, found)? = failure(line) else {
            Issue.record("expected malformedJSON for \(line)")
            return
        }
        #expect(lineNumber == 1)
        #expect(found.contains(reason), "reason was: \(found)")
    }

    @Test func rejectsInvalidUTF8() {
        let bytes = Array(#"{"id": "a", "text": ""#.utf8) + [0xC3, 0x28] + Array(#"", "label": "l"}"#.utf8)
        #expect(throws: PlanningError.malformedJSON(file: "u.jsonl", line: 1, column: 22, reason: "the string is not valid UTF-8")) {
            try Dataset.parse(Data(bytes), source: "u.jsonl")
        }
    }

    @Test func fieldErrorsNameFileLineAndField() {
        #expect(failure("\n" + #"{"id": "a", "label": "l"}"#) == .missingField(file: "t.jsonl", line: 2, field: "text"))
        #expect(failure(#"{"text": "t", "label": "l"}"#) == .missingField(file: "t.jsonl", line: 1, field: "id"))
        #expect(failure(#"{"id": 7, "text": "t", "label": "l"}"#)
                == .wrongFieldType(file: "t.jsonl", line: 1, field: "id", expected: "string", found: "number"))
        #expect(failure(#"{"id": "a", "text": "t", "label": null}"#)
                == .wrongFieldType(file: "t.jsonl", line: 1, field: "label", expected: "string", found: "null"))
        #expect(failure(#"{"id": "a", "text": "t", "label": "l", "group": ["g"]}"#)
                == .wrongFieldType(file: "t.jsonl", line: 1, field: "group", expected: "string", found: "array"))
        #expect(failure(#"{"id": "a", "text": "", "label": "l"}"#) == .emptyText(file: "t.jsonl", line: 1, id: "a"))
        // An empty label would become a class of its own for plan, and "no label" for evaluate.
        #expect(failure(#"{"id": "a", "text": "t", "label": ""}"#) == .emptyLabel(file: "t.jsonl", line: 1, id: "a"))
        #expect(failure(#"{"id": "", "text": "t", "label": "l"}"#)
                == .invalidID(file: "t.jsonl", line: 1, id: "", reason: "it is empty"))
        if case .invalidID(_, 1, "a\nb", _)? = failure(#"{"id": "a\nb", "text": "t", "label": "l"}"#) {} else {
            Issue.record("an id with a newline must be refused")
        }
        #expect(failure("") == .emptyDataset(file: "t.jsonl"))
        #expect(failure("\n  \n") == .emptyDataset(file: "t.jsonl"))
    }

    /// Every id and group a plan accepts can be named by a deletion request: those holding a
    /// control character (C0, DEL or C1, which a request refuses) and empty or blank groups are
    /// refused, naming the line; other Unicode is kept.
    @Test func idsAndGroupsADeletionRequestCannotNameAreRefused() throws {
        #expect(failure(#"{"id": "a\u0085b", "text": "t", "label": "l"}"#)
                == .invalidID(file: "t.jsonl", line: 1, id: "a\u{85}b", reason: "it contains the control character "
                              + "U+0085 (slice hashes join ids with newlines, and a deletion request may not name one)"))
        #expect(failure(#"{"id": "a\u007f", "text": "t", "label": "l"}"#)?.description.contains("U+007F") == true)
        for (group, reason) in [("", "it is empty"), (" \\t ", "it is blank"), ("g\\u009f", "it contains the control character U+009F")] {
            let line = #"{"id": "a", "text": "t", "label": "l", "group": ""# + group + #""}"#
            let refusal = failure("\n" + line)
            guard case let .invalidGroup("t.jsonl", 2, _, found)? = refusal else {
                Issue.record("group \(group) was not refused: \(String(describing: refusal))"); continue
            }
            #expect(found == reason)
        }
        // Longer than a deletion request may name: refused, the message quoting only its start.
        let long = String(repeating: "L", count: 5000), longest = String(repeating: "é", count: 2048)
        let tooLong = failure(#"{"id": ""# + long + #"", "text": "t", "label": "l"}"#)
        #expect(tooLong == .invalidID(file: "t.jsonl", line: 1, id: long,
                                      reason: "it is 5000 bytes long, and a deletion request names at most 4096"))
        #expect(tooLong?.description.contains("…\" (5000 bytes)") == true && tooLong!.description.count < 300)
        if case .invalidGroup(_, 1, _, "it is 4097 bytes long, and at most 4096 fit")?
            = failure(#"{"id": "a", "text": "t", "label": "l", "group": "x"# + longest + #""}"#) {} else {
            Issue.record("a group of 4097 bytes must be refused")
        }
        #expect(try parse(#"{"id": ""# + longest + #"", "text": "t", "label": "l"}"#).examples.map(\.id) == [longest])
        // Letters beyond ASCII, in U+0080–U+00BF's lead byte's range too (U+00A0, U+00B5), are ids.
        let kept = try parse(#"{"id": "caf\u00e9 \u00a0\u00b5", "text": "t", "label": "l", "group": "Ren\u00e9e"}"#)
        #expect(kept.examples.map(\.id) == ["café \u{a0}µ"] && kept.examples.map(\.group) == ["Renée"])
    }

    /// Text data (no label on any line) is a data set for a decoder; a file that labels some
    /// lines and not others is refused, naming the first unlabelled line and a labelled one.
    @Test func textDataHasNoLabelsAndMixedFilesAreRefused() throws {
        let text = try parse(#"{"id": "a", "text": "one", "group": "g"}"# + "\n" + #"{"id": "b", "text": "two"}"#)
        #expect(text.isTextOnly && text.labelVocabulary.count == 0 && text.examples.map(\.label) == ["", ""])
        let labelled = try parse(#"{"id": "a", "text": "one", "label": "x"}"#)
        #expect(!labelled.isTextOnly && labelled.labelVocabulary.names == ["x"])
        #expect(failure(#"{"id": "a", "text": "t", "label": "l"}"# + "\n\n" + #"{"id": "b", "text": "u"}"#)
                == .mixedLabels(file: "t.jsonl", unlabelledLine: 3, labelledLine: 1))
        #expect(failure(#"{"id": "a", "text": "t"}"# + "\n" + #"{"id": "b", "text": "u", "label": "l"}"#)
                == .mixedLabels(file: "t.jsonl", unlabelledLine: 1, labelledLine: 2))
        #expect(PlanningError.mixedLabels(file: "t.jsonl", unlabelledLine: 3, labelledLine: 1).description
                    .hasPrefix("t.jsonl:3: this line has no \"label\" but line 1 has one"))
    }

    @Test func duplicateIDNamesBothLines() {
        let error = failure("""
            {"id": "a", "text": "t", "label": "l"}
            {"id": "b", "text": "t", "label": "l"}

            {"id": "a", "text": "u", "label": "l"}
            """)
        #expect(error == .duplicateID(file: "t.jsonl", id: "a", firstLine: 1, secondLine: 4))
        #expect(error?.description == "t.jsonl: id \"a\" appears on line 1 and again on line 4. "
            + "Ids must be unique; rename or remove one of them.")
    }

    @Test func missingFileIsReported() {
        #expect(throws: PlanningError.unreadableFile(file: "/nonexistent/x.jsonl", reason: "no such file")) {
            try Dataset.read(from: URL(fileURLWithPath: "/nonexistent/x.jsonl"))
        }
    }

    /// The real BBC News training split written by `make setup` (Datasets/convert.py).
    @Test func readsBBCNews() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Datasets/bbc-news/train.jsonl").standardized
        let dataset = try Dataset.read(from: url)
        #expect(dataset.examples.count == 1781)
        #expect(dataset.labelVocabulary.names == ["business", "entertainment", "politics", "sport", "tech"])
        #expect(dataset.examples.allSatisfy { $0.field("lead")?.isEmpty == false })
        #expect(dataset[id: "business/001"]?.text == "Ad sales boost Time Warner profit")
    }

    @Test func labelVocabularyOrdersByBytesAndValidatesSavedNames() throws {
        let vocabulary = LabelVocabulary(labels: ["b", "a", "É", "Z", "a"])
        #expect(vocabulary.names == ["Z", "a", "b", "É"])
        #expect(vocabulary.index(of: "b") == 2 && vocabulary.index(of: "c") == nil)
        #expect(vocabulary.name(at: 3) == "É")
        #expect(try LabelVocabulary(savedNames: ["Z", "a"], file: "f") .count == 2)
        #expect(throws: PlanningError.self) { try LabelVocabulary(savedNames: ["a", "a"], file: "f") }
    }

    @Test func sliceHashEncodingMatchesHashlib() {
        // python3 -c "import hashlib; print(hashlib.sha256(b'a\nb\nc').hexdigest())"
        #expect(SliceHash.of(ids: ["c", "a", "b"]) == "ea7fb08b7a2dc4619ffb7c7bb38d95a2047935fa165d71b12efd3852a2e6d0cc")
        // ... 'business/001\nbusiness/002\nzé'.encode() — é (U+00E9) sorts after ASCII by bytes.
        #expect(SliceHash.of(ids: ["zé", "business/002", "business/001"])
                == "04a73d1246fd9b146f751e641879cd0f35e6383933d807c88521f605c7caeabe")
        #expect(SliceHash.of(ids: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }
}
