import CommandSupport
import Foundation
import Testing

/// The JSON shape of a measuring command: every recorded field in one object, a non-finite
/// number as null (JSON has no NaN), an Encodable value as its JSON form.
@Suite struct ResultReportTests {
    struct Point: Encodable { let loss: Double, name: String }

    @Test func recordsFieldsAsOneObjectWithNonFiniteNumbersAsNull() throws {
        let report = ResultReport(json: true)
        report.record("seconds", 1.5)
        report.record("ratio", Double.nan)
        report.record("rows", [["speed": Float.infinity, "n": 3] as [String: Any]])
        try report.record("point", encoding: Point(loss: .nan, name: "ga"))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-report-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try report.write(to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text == #"{"point":{"loss":"nan","name":"ga"},"ratio":null,"rows":[{"n":3,"speed":null}],"seconds":1.5}"#)
    }
}
