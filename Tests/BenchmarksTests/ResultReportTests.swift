import CommandSupport
import Foundation
import Support
import Testing

/// The JSON shape of a measuring command: every recorded field in one object, a non-finite
/// number as null (JSON has no NaN), an Encodable value as its JSON form.
@Suite struct ResultReportTests {
    struct Point: Encodable { let loss: Double, name: String, tokensPerSecond: Double }

    @Test func recordsFieldsAsOneObjectWithNonFiniteNumbersAsNull() throws {
        let report = ResultReport(json: true)
        report.record("seconds", 1.5)
        report.record("ratio", Double.nan)
        report.record("rows", [["speed": Float.infinity, "n": 3] as [String: Any]])
        try report.record("point", encoding: Point(loss: .nan, name: "ga", tokensPerSecond: 2))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-report-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try report.write(to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text == #"{"point":{"loss":"nan","name":"ga","tokens_per_second":2},"ratio":null,"rows":[{"n":3,"speed":null}],"seconds":1.5}"#)
    }

    /// Every key a report prints is snake_case; capitals (acronyms, plurals of them, digits)
    /// become words the way a reader would split them.
    @Test func reportKeysAreSnakeCase() throws {
        let cases = ["coreName": "core_name", "logicalCPUs": "logical_cpus", "bf16Gflops": "bf16_gflops",
                     "rocAUC": "roc_auc", "runFLOPs": "run_flops", "HTTPServer": "http_server",
                     "blockStepCPUMilliseconds": "block_step_cpu_milliseconds", "p99Milliseconds": "p99_milliseconds",
                     "token_count": "token_count", "gflops": "gflops", "min-k++": "min-k++"]
        for (key, expected) in cases { #expect(snakeCased(key) == expected, "\(key)") }
        struct Row: Encodable { let requestsPerSecond: Double, logicalCPUs: Int, byShard: [String: Int] }
        let text = String(decoding: try JSONEncoder.report().encode(Row(requestsPerSecond: 1, logicalCPUs: 2,
                                                                           byShard: ["s0": 1])), as: UTF8.self)
        #expect(text == #"{"by_shard":{"s0":1},"logical_cpus":2,"requests_per_second":1}"#)
    }
}
