import Audit
import Forgetting
import Foundation
import HTTPTypes
import Hummingbird
import Training

/// `GET /`: one HTML page for an auditor, no script: what is served (shards, sequences,
/// prefixes, dead shards), the generation, δ remaining, the last 50 ledger entries, and a form
/// that audits an id (`/?id=…`, answered on the page itself).
extension LetheServer {
    func page(_ request: Request) async throws -> Response {
        let field = AuditorPage.formField(named: "id", inQuery: request.uri.query)
        let id = field.flatMap { $0 }, undecodable = field == .some(nil)
        let layout = self.layout
        let (status, entries, audit) = try await Blocking.run { () throws -> (ForgettingStatus, [LedgerEntry], String?) in
            let status = try ForgettingStatus.load(run: layout.directory)
            var entries: [LedgerEntry] = []
            if FileManager.default.fileExists(atPath: layout.ledgerURL.path) {
                let ledger = try Ledger.openForReading(at: layout.ledgerURL)
                let count = Int64(try ledger.count())
                entries = try ledger.entries(from: max(1, count - 49), limit: 50).reversed()
            }
            var audit: String? = undecodable ? "The id in the address is not valid percent-encoded UTF-8." : nil
            if let id, !id.isEmpty {
                do { audit = try ExampleAudit.audit(run: layout.directory, id: id).summary } catch {
                    audit = "\(error)"
                }
            }
            return (status, entries, audit)
        }
        // Read after the run's files: a forget that changed them since this server's snapshot
        // shows here as "not ready" (its swap pending), never as a ready server still serving
        // what the audit below calls forgotten.
        let html = AuditorPage(run: layout.directory.path, readiness: store.readiness, snapshot: store.current,
                               status: status, entries: entries, auditID: id, audit: audit).html
        var response = JSONResponse.raw(Array(html.utf8), contentType: "text/html; charset=utf-8")
        // The page runs no script and loads nothing.
        response.headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        return response
    }
}

struct AuditorPage {
    let run: String
    let readiness: SnapshotStore.Readiness
    let snapshot: ServedSnapshot?
    let status: ForgettingStatus
    let entries: [LedgerEntry]
    let auditID: String?
    let audit: String?

    var html: String {
        var out = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Lethe — \(escape(run))</title>
            <style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}
            td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
            .dead{color:#a00}.ok{color:#070}pre{white-space:pre-wrap}code{overflow-wrap:anywhere}</style></head><body>
            <h1>Lethe: \(escape(run))</h1>

            """
        out += "<p id=\"readiness\" class=\"\(readiness.ready ? "ok" : "dead")\">"
            + (readiness.ready ? "ready" : "not ready: " + escape(readiness.reason ?? "")) + "</p>\n"
        if let snapshot {
            let generation = snapshot.generation
            out += "<p>Generation <b id=\"generation\">\(generation.sequenceNumber)</b> (ledger head "
                + "\(escape(generation.hash.isEmpty ? "none" : String(generation.hash.prefix(16)) + "…"))), snapshot "
                + "\(snapshot.number), strategy \(snapshot.composition.strategy.rawValue).</p>\n"
            out += "<h2>Served shards</h2>\n<table id=\"shards\"><tr><th>shard</th><th>sequence</th><th>prefix</th>"
                + "<th>stages</th></tr>\n"
            for entry in snapshot.composition.shards.sorted(by: { $0.shard < $1.shard }) {
                if entry.isDead {
                    out += "<tr class=\"dead\"><td>\(entry.shard)</td><td colspan=\"3\">dead</td></tr>\n"
                } else {
                    out += "<tr><td>\(entry.shard)</td><td>\(entry.sequence ?? -1)</td><td>\(entry.prefixLength)</td>"
                        + "<td>\(entry.stageKeys.map { escape("\($0)") }.joined(separator: "<br>"))</td></tr>\n"
                }
            }
            out += "</table>\n"
        }
        out += "<p>Dead shards: <span id=\"dead\">\(status.deadShards.isEmpty ? "none" : status.deadShards.map(String.init).joined(separator: ", "))</span>. "
            + "Deleted examples: \(status.deletedExampleCount). Pending requests: \(status.pendingRequestCount). "
            + String(format: "δ remaining: <span id=\"delta\">%.4f</span>.", status.deletionRateRemaining) + "</p>\n"
        out += """
            <h2>Audit an example</h2>
            <form method="get" action="/"><input name="id" value="\(escape(auditID ?? ""))" placeholder="example id">
            <button type="submit">Audit</button></form>

            """
        if let audit { out += "<pre id=\"audit\">\(escape(audit))</pre>\n" }
        out += "<h2>Last \(entries.count) ledger entries</h2>\n<table id=\"ledger\"><tr><th>#</th><th>time (UTC)</th>"
            + "<th>kind</th><th>payload</th></tr>\n"
        let format = ISO8601DateFormatter()
        for entry in entries {
            let time = format.string(from: Date(timeIntervalSince1970: Double(entry.timestampMilliseconds) / 1000))
            out += "<tr><td>\(entry.sequenceNumber)</td><td>\(time)</td><td>\(escape(entry.kind.rawValue))</td>"
                + "<td><code>\(escape(String(entry.payload.prefix(400))))\(entry.payload.count > 400 ? "…" : "")</code></td></tr>\n"
        }
        out += "</table>\n</body></html>\n"
        return out
    }

    /// Field `name` of a query as an HTML form sends it (`+` for a space, then percent escapes):
    /// nil when absent, `.some(nil)` when its value is not valid UTF-8, else the value exactly as
    /// typed.
    static func formField(named name: String, inQuery query: String?) -> String?? {
        for pair in (query ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard decode(parts[0]) == name else { continue }
            return .some(parts.count > 1 ? decode(parts[1]) : "")
        }
        return nil
    }

    /// The value of field `name`, or nil when absent or not valid UTF-8.
    static func formValue(named name: String, inQuery query: String?) -> String? {
        formField(named: name, inQuery: query).flatMap { $0 }
    }

    func escape(_ text: String) -> String { Self.escaped(text) }

    /// `text` as HTML text or attribute value.
    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            // Control characters (NUL among them) have no place in HTML text, and bidirectional
            // overrides would reorder the text around them: shown as U+FFFD.
            case _ where c.unicodeScalars.contains(where: { scalar in
                (scalar.properties.generalCategory == .control && scalar != "\n" && scalar != "\t")
                    || (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value) }):
                out += "\u{FFFD}"
            default: out.append(c)
            }
        }
        return out
    }
}
