import Audit
import Forgetting
import Foundation
import Hummingbird
import Training

/// `GET /`: one HTML page for an auditor, no script: what is served (shards, sequences,
/// prefixes, dead shards), the generation, δ remaining, the last 50 ledger entries, and a form
/// that audits an id (`/?id=…`, answered on the page itself).
extension LetheServer {
    func page(_ request: Request) async throws -> Response {
        let id = request.uri.queryParameters["id"].map(String.init)?.trimmingCharacters(in: .whitespaces)
        let layout = self.layout, readiness = store.readiness, snapshot = store.current
        let html = try await Blocking.run { () throws -> String in
            let status = try ForgettingStatus.load(run: layout.directory)
            var entries: [LedgerEntry] = []
            if FileManager.default.fileExists(atPath: layout.ledgerURL.path) {
                let ledger = try Ledger.openForReading(at: layout.ledgerURL)
                let count = Int64(try ledger.count())
                entries = try ledger.entries(from: max(1, count - 49), limit: 50).reversed()
            }
            var audit: String?
            if let id, !id.isEmpty {
                do { audit = try ExampleAudit.audit(run: layout.directory, id: id).summary } catch {
                    audit = "\(error)"
                }
            }
            return AuditorPage(run: layout.directory.path, readiness: readiness, snapshot: snapshot, status: status,
                               entries: entries, auditID: id, audit: audit).html
        }
        return JSONResponse.raw(Array(html.utf8), contentType: "text/html; charset=utf-8")
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
            .dead{color:#a00}.ok{color:#070}pre{white-space:pre-wrap}</style></head><body>
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
                + "<td><code>\(escape(String(entry.payload.prefix(400))))</code></td></tr>\n"
        }
        out += "</table>\n</body></html>\n"
        return out
    }

    func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
