import Foundation
import Planning
import Testing
@testable import Serving
import Support

/// The request bodies the server parses: a key given twice in one object is refused, since the
/// JSON parser would keep one value and drop the other without a word.
@Suite struct RequestBodiesTests {
    static func refusal(_ body: String, _ parse: ([UInt8]) throws -> Void) -> String? {
        do { try parse(Array(body.utf8)); return nil } catch let bad as BadRequest { return bad.message } catch {
            return "\(error)"
        }
    }

    @Test func aKeyGivenTwiceInAForgetBodyIsRefused() throws {
        let forget = { (body: [UInt8]) in _ = try ForgetBody.parse(body, ndjson: false) }
        #expect(Self.refusal(#"{"ids": ["a"], "ids": ["b"]}"#, forget)?.contains(#"the key "ids" appears twice"#) == true)
        // An escaped spelling is the same key.
        #expect(Self.refusal(#"{"ids": ["a"], "\u0069ds": ["b"]}"#, forget)?.contains(#""ids" appears twice"#) == true)
        #expect(Self.refusal(#"{"ids": ["a", "a"], "groups": ["g"]}"#, forget) == nil)
        #expect(try ForgetBody.parse(Array(#"{"ids": ["a"], "groups": ["ids"]}"#.utf8), ndjson: false).count == 2)
    }

    /// A shape of booleans, data nested unlike its shape, an empty request_id: refused. Names of
    /// spaces or invisible characters are ids a dataset may hold: taken. A body that is not
    /// UTF-8, or lines of JSON sent as one document, is refused saying so.
    @Test func shapesNestingNamesAndUnparsableBodiesAreCheckedAsTheySay() throws {
        let infer = { (body: [UInt8]) in _ = try InferRequest.parse(body) }
        func tensor(_ shape: String, _ data: String) -> String {
            #"{"inputs": [{"name": "text", "shape": \#(shape), "datatype": "BYTES", "data": \#(data)}]}"#
        }
        #expect(Self.refusal(tensor("[true]", #"["a"]"#), infer)?.contains("non-negative integers") == true)
        #expect(Self.refusal(tensor("[2]", #"[["a"], ["b"]]"#), infer)?.contains("nests its data unlike its shape") == true)
        #expect(Self.refusal(tensor("[2, 1]", #"[["a"], "b"]"#), infer)?.contains("nests its data unlike its shape") == true)
        #expect(try InferRequest.parse(Array(tensor("[2, 1]", #"[["a"], ["b"]]"#).utf8)).texts == ["a", "b"])
        #expect(try InferRequest.parse(Array(tensor("[1]", #"["a"]"#).utf8)).texts == ["a"])
        let forget = { (body: [UInt8]) in _ = try ForgetBody.parse(body, ndjson: false) }
        #expect(Self.refusal(#"{"ids": ["a"], "request_id": ""}"#, forget)?.contains("\"request_id\" is empty") == true)
        #expect(Self.refusal(#"{"ids": [""]}"#, forget)?.contains("holds an empty name") == true)
        #expect(try ForgetBody.parse(Array(#"{"ids": [" ", "\u200b"]}"#.utf8), ndjson: false).count == 2)
        // A group of nothing but spaces is one no dataset holds (the reader refuses it).
        #expect(Self.refusal(#"{"groups": ["  "]}"#, forget)?.contains("holds an empty name") == true)
        let notUTF8: [UInt8] = Array(#"{"ids": ["a"#.utf8) + [0xFF] + Array(#""]}"#.utf8)
        #expect((try? ForgetBody.parse(notUTF8, ndjson: false)) == nil)
        do { _ = try ForgetBody.parse(notUTF8, ndjson: false) } catch let bad as BadRequest {
            #expect(bad.message.contains("not UTF-8"), "\(bad.message)")
        }
        #expect(Self.refusal("{\"id\": \"a\"}\n{\"id\": \"b\"}\n", forget)?.contains("application/x-ndjson") == true)
        #expect(Self.refusal(#"{"ids": ["a"]"#, forget)?.contains("the body is not valid JSON") == true)
    }

    @Test func aKeyGivenTwiceInAnInferenceBodyIsRefusedAtAnyDepth() throws {
        let infer = { (body: [UInt8]) in _ = try InferRequest.parse(body) }
        let tensor = #"{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}"#
        #expect(Self.refusal(#"{"inputs": [\#(tensor)], "inputs": [\#(tensor)]}"#, infer)?.contains(#""inputs" appears twice"#) == true)
        let nested = #"{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"], "data": ["y"]}"#
        #expect(Self.refusal(#"{"inputs": [\#(nested)]}"#, infer)?.contains(#""data" appears twice"#) == true)
        // The same key in two sibling objects, or as a string value, is not a repetition.
        #expect(Self.refusal(#"{"inputs": [\#(tensor)], "outputs": [{"name": "label"}, {"name": "probabilities"}]}"#, infer) == nil)
        #expect(Self.refusal(#"{"id": "inputs", "inputs": [\#(tensor)]}"#, infer) == nil)
    }

    /// The scanner on its own: depth, escapes inside keys and values, and brackets inside strings.
    @Test func theRepeatedKeyScannerFollowsTheDocument() {
        func first(_ text: String) -> String? {
            guard case let .repeatedKey(key)? = LenientJSON.firstProblem(inDocument: Array(text.utf8)) else { return nil }
            return key
        }
        #expect(first(#"{"a": {"b": 1, "c": {"b": 2}}, "d": [{"a": 1}, {"a": 2}]}"#) == nil)
        #expect(first(#"{"a": {"b": 1, "c": 2, "b": 3}}"#) == "b")
        #expect(first(#"{"x\"}{": 1, "y": "\"a\": [", "x\"}{": 2}"#) == "x\"}{")
        #expect(first(#"[1, {"k": [{"k": 1}], "k": 2}]"#) == "k")
        #expect(first(#""just a string""#) == nil)
        // Keys are compared as code points: precomposed and decomposed "café" are two keys.
        #expect(first(#"{"caf\u00e9": 1, "cafe\u0301": 2}"#) == nil)
        #expect(first("{\"caf\u{e9}\": 1, \"cafe\u{301}\": 2}") == nil)
        #expect(first(#"{"caf\u00e9": 1, "caf\u00e9": 2}"#) == "café")
    }

    /// A comma before a closing bracket, which Foundation's parsers accept, is found at any depth
    /// (not inside strings), and an infer or forget body carrying one is refused.
    @Test func aTrailingCommaIsFoundAndRefused() throws {
        func problem(_ text: String) -> LenientJSON? { LenientJSON.firstProblem(inDocument: Array(text.utf8)) }
        #expect(problem("[0.5, 0.5,]") == .trailingComma(offset: 9))
        #expect(problem("{\"a\": [1, 2 ,\n ], \"b\": 1}") == .trailingComma(offset: 12))
        #expect(problem(#"{"a": 1,}"#) == .trailingComma(offset: 7))
        #expect(problem(#"{"a": ",]", "b": [",}"]}"#) == nil)
        #expect(problem(#"[[1, 2], [3, 4]]"#) == nil)
        // Foundation takes it, so only this check stands between it and a dropped entry.
        #expect(try JSONSerialization.jsonObject(with: Data(#"{"ids": ["a",]}"#.utf8)) is [String: Any])
        let infer = { (body: [UInt8]) in _ = try InferRequest.parse(body) }
        let tensor = #"{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a",]}"#
        #expect(Self.refusal(#"{"inputs": [\#(tensor)]}"#, infer)?.contains("a comma before a closing bracket") == true)
        let forget = { (body: [UInt8]) in _ = try ForgetBody.parse(body, ndjson: false) }
        #expect(Self.refusal(#"{"ids": ["a", "b",]}"#, forget)?.contains("a comma before a closing bracket at byte 18") == true)
    }
}
