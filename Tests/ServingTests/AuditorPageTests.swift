import Testing
@testable import Serving

/// The auditor page's form and its HTML escaping.
@Suite struct AuditorPageTests {
    /// A browser sends a GET form's field with `+` for a space and percent escapes for the rest;
    /// the id is taken exactly as typed, spaces at its ends included.
    @Test func theFormsFieldIsDecodedAsABrowserSendsIt() {
        #expect(AuditorPage.formValue(named: "id", inQuery: "id=a+b") == "a b")
        #expect(AuditorPage.formValue(named: "id", inQuery: "id=x%2By") == "x+y")
        #expect(AuditorPage.formValue(named: "id", inQuery: "id=%20%20lead+") == "  lead ")
        #expect(AuditorPage.formValue(named: "id", inQuery: "q=1&id=business%2F001") == "business/001")
        #expect(AuditorPage.formValue(named: "id", inQuery: "id=") == "")
        #expect(AuditorPage.formValue(named: "id", inQuery: "id") == "")
        #expect(AuditorPage.formValue(named: "id", inQuery: "idx=1") == nil)
        #expect(AuditorPage.formValue(named: "id", inQuery: nil) == nil)
        #expect(AuditorPage.formValue(named: "id", inQuery: "id=%FF") == nil, "not UTF-8")
        #expect(AuditorPage.formField(named: "id", inQuery: "id=%FF") == .some(nil), "present, but not UTF-8")
        #expect(AuditorPage.formField(named: "id", inQuery: "q=1") == nil)
    }

    @Test func controlCharactersAreNotWrittenIntoThePage() {
        #expect(AuditorPage.escaped("a\u{0}b<\u{1B}>\u{85}") == "a\u{FFFD}b&lt;\u{FFFD}&gt;\u{FFFD}")
        #expect(AuditorPage.escaped("abc\u{202E}fed\u{2066}x") == "abc\u{FFFD}fed\u{FFFD}x", "bidirectional overrides")
        #expect(AuditorPage.escaped("line\nand\ttab \"q\" 'a' &") == "line\nand\ttab &quot;q&quot; &#39;a&#39; &amp;")
    }
}
