import Foundation
import Testing
@testable import Forgetting

/// The shortcuts a 100,000-request log takes give exactly what the general code gives.
@Suite struct FastPathTests {
    /// Every line the byte scanner accepts parses to the same request through JSONSerialization;
    /// everything else is left to it.
    @Test func simpleLinesParseAsJSONSerializationDoes() throws {
        let simple = [
            #"{"id":"bbc-0017"}"#,
            #"  { "id" : "bbc-0017" , "request_id": "r-1", "timestamp": 1700000000000 }  "#,
            #"{"timestamp":"2026-11-22T05:00:00Z","group":"The Matrix","request_id":"x"}"#,
            #"{"id":"é/ü 漢字","timestamp":20}"#,
            "{\"id\":\"a\",\t\"request_id\":\"b\"}\r",
        ]
        for line in simple {
            let bytes = Array(line.utf8)
            let fast = bytes.withUnsafeBytes { SimpleRequestLine.parse($0) }
            let general = try RequestLog.parseLine(Data(bytes), source: "log", line: 1)
            #expect(fast == general, "\(line)")
            #expect(fast != nil, "\(line)")
        }
        let other: [(String, ForgetRequest?)] = [
            (#"{"id":"a\"b"}"#, ForgetRequest(target: .example("a\"b"))),                   // escape
            // Numbers the scanner leaves to JSONSerialization (which prints them its own way).
            (#"{"id":"a","timestamp":1.5}"#, nil), (#"{"id":"a","timestamp":1e3}"#, nil),
            (#"{"id":"a","timestamp":-0}"#, nil), (#"{"id":"a","timestamp":-42}"#, nil),
            (#"{"id":"a","timestamp":0}"#, nil), (#"{"id":"a","timestamp":1}"#, nil),
            (#"{"id":"a","timestamp":1234567890123456}"#, nil),
            // Errors.
            (#"{"id":""}"#, nil), (#"{"id":"a","group":"g"}"#, nil), (#"{"id":"a","id":"b"}"#, nil),
            (#"{"id":"a"} x"#, nil), (#"{"id":"a",}"#, nil), (#"{"idd":"a"}"#, nil), (#"{"id":5}"#, nil),
            (#"{"id":"a","timestamp":01}"#, nil), (#"{"id":"a","timestamp":true}"#, nil),
            ("{\"id\":\"a\u{1}\"}", nil),
            ("[1]", nil), ("{}", nil), (#"{"request_id":"x"}"#, nil),
        ]
        for (line, expected) in other {
            let bytes = Array(line.utf8)
            #expect(bytes.withUnsafeBytes { SimpleRequestLine.parse($0) } == nil, "\(line)")
            let general = try? RequestLog.parseLine(Data(bytes), source: "log", line: 1)
            if let expected { #expect(general == expected, "\(line)") }
            // Whole logs: the same requests or the same error, whichever path a line takes.
            let parsed = try? RequestLog.parse(Data(("{\"id\":\"ok\"}\n" + line + "\n").utf8), source: "log")
            #expect(parsed == general.map { [ForgetRequest(target: .example("ok")), $0] }, "\(line)")
        }
    }

    /// The receipt payload is byte for byte what JSONEncoder writes, with or without the shortcut.
    @Test func receiptJSONMatchesJSONEncoder() throws {
        func receipt(_ requests: [ForgetReceipt.RequestOutcome]) -> ForgetReceipt {
            ForgetReceipt(requests: requests, forgottenExamples: ["ex-1", "ex-2"], unknownIDs: ["nobody"],
                          unknownGroups: ["no-group"], recoveredRequestCount: 1, affectedSlices: [[0, 2], [1, 0]],
                          truncatedSequences: [SequenceTruncation(shard: 0, sequence: 1, fromLength: 3, toLength: 1,
                                                                  deactivatedStages: [2, 3])],
                          erasedStages: [.init(shard: 0, stage: 2, slices: [1, 2], key: "ab", file: "stages/shard-0/stage-2-ab.h5",
                                               deletedNow: true)],
                          served: [.init(shard: 0, sequence: 2, prefixLength: 3), .init(shard: 1, sequence: nil, prefixLength: 0)],
                          deadShards: [1], deletionRateRemaining: 12.345678901234, compositionPublished: true,
                          ledgerSequence: 100_001, ledgerHash: String(repeating: "f", count: 64))
        }
        let statuses: [ForgetReceipt.RequestOutcome.Status] = [.forgotten, .alreadyForgotten, .unknown]
        var requests: [ForgetReceipt.RequestOutcome] = []
        for index in 0..<1000 {
            let isGroup = index % 7 == 3
            let id: String? = isGroup ? nil : "ex-\(index % 50)"
            let group: String? = isGroup ? "movie \(index)" : nil
            requests.append(ForgetReceipt.RequestOutcome(requestID: "log-\(index)", ledgerSequence: Int64(index + 1),
                                                         id: id, group: group, status: statuses[index % 3]))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let plain = receipt(requests)
        #expect(ForgetReceipt.plainJSON(requests) != nil)
        #expect(try plain.json() == String(decoding: try encoder.encode(plain), as: UTF8.self))
        requests[500].requestID = "needs \"escaping\"\n"
        let escaped = receipt(requests)
        #expect(ForgetReceipt.plainJSON(requests) == nil)
        #expect(try escaped.json() == String(decoding: try encoder.encode(escaped), as: UTF8.self))
        #expect(try JSONDecoder().decode(ForgetReceipt.self, from: Data(try escaped.json().utf8)) == escaped)
    }
}
