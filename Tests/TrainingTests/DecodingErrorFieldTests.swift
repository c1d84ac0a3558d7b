import Foundation
import Training
import Testing

/// What a JSON file that does not decode is said to hold: the field, or that the document is
/// valid JSON whose number does not fit (Foundation calls 4.5 for a whole number "not valid JSON").
@Suite struct DecodingErrorFieldTests {
    struct Settings: Decodable { var r: Int; var lr: Double }

    func description(_ text: String) -> String {
        do { _ = try JSONDecoder().decode(Settings.self, from: Data(text.utf8)); return "decoded" } catch {
            return DecodingError.fieldDescription(error, data: Data(text.utf8))
        }
    }

    @Test func aFractionForAWholeNumberIsNotCalledInvalidJSON() {
        #expect(description(#"{"r": 4.5, "lr": 1}"#).hasPrefix("valid JSON, but a field holds a number of the wrong kind"))
        #expect(description(#"{"r": 4, "lr": NaN}"#) == "not valid JSON")
        #expect(description(#"{"r": "x", "lr": 1}"#) == #"field "r" has the wrong type or value"#)
        #expect(description(#"{"lr": 1}"#) == #"field "r" is missing"#)
        #expect(description(#"{"r": 4, "lr": 1}"#) == "decoded")
    }
}
