import Foundation
import RunFixtures
import Testing

/// `--json` prints exactly one JSON object on stdout, and nothing else, for the measuring
/// commands that need no model files (the others are covered where their runs are built).
@Suite struct JSONOutputTests {
    static func object(_ arguments: [String]) throws -> [String: Any] {
        let output = try LetheProcess.succeed(arguments)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "one line of JSON, got: \(output)")
        let parsed = try JSONSerialization.jsonObject(with: Data(output.utf8))
        return try #require(parsed as? [String: Any], "not an object: \(output)")
    }

    @Test func benchPlanPrintsOneObjectWithItsMeasurements() throws {
        let o = try Self.object(["bench", "plan", "--examples", "400", "--shards", "2", "--slices", "2",
                                 "--budget", "2", "--lookups", "50", "--json"])
        #expect(o["examples"] as? Int == 400 && o["lookups"] as? Int == 50)
        for key in ["plan_seconds", "load_seconds", "lookup_p50_us", "lookup_p99_us", "peak_resident_mb"] {
            let value = try #require(o[key] as? Double, "\(key) in \(o)")
            #expect(value >= 0 && value.isFinite)
        }
        let p50 = try #require(o["lookup_p50_us"] as? Double), p99 = try #require(o["lookup_p99_us"] as? Double)
        #expect(p50 <= p99)
    }

    @Test func benchStorePrintsEveryLayout() throws {
        let o = try Self.object(["bench", "store", "--megabytes", "2", "--repetitions", "1", "--json"])
        let layouts = try #require(o["layouts"] as? [[String: Any]])
        #expect(layouts.count == 4)
        for layout in layouts {
            #expect((layout["write_mb_per_s"] as? Double ?? 0) > 0 && (layout["read_mb_per_s"] as? Double ?? 0) > 0)
            #expect((layout["file_bytes"] as? Int ?? 0) > 0)
        }
        // float16 halves the payload; gzip and plain float32 keep about 2 MiB of data.
        let plain = try #require(layouts[0]["file_bytes"] as? Int), half = try #require(layouts[2]["file_bytes"] as? Int)
        #expect(plain >= 2 * 1_048_576 && Double(half) < 0.6 * Double(plain))
    }

    /// `bench forget --breakdown --json` names each phase of a forget in snake_case, like every
    /// other report key, and its phases add up to no more than the forget they split.
    @Test func benchForgetBreakdownKeysAreSnakeCase() throws {
        let o = try Self.object(["bench", "forget", "--count", "5", "--log-size", "200", "--breakdown", "--json"])
        let timings = try #require(o["timings"] as? [String: Double])
        let badKeys = timings.keys.filter { !$0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" || $0 == "." } }
        #expect(badKeys.isEmpty, "\(badKeys)")
        for phase in ["plan_load", "ledger_open", "unfinished_flag", "ledger_append", "tombstone_write", "publish", "erase",
                      "receipt_append"] {
            #expect(timings["log_phase_ms." + phase] != nil && timings["phase_median_ms." + phase] != nil, "\(phase)")
        }
        let logPhases = timings.filter { $0.key.hasPrefix("log_phase_ms.") }.values.reduce(0, +)
        #expect(logPhases <= (timings["log_seconds"] ?? 0) * 1e3, "\(timings)")
    }

    /// A failure under `--json` still prints one object on stdout, naming the error and the exit
    /// code; the message goes to stderr as well. A command that printed its result and exits with
    /// a status of its own adds nothing.
    @Test func failuresPrintOneErrorObject() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-no-run-\(UUID().uuidString)").path
        for (arguments, code) in [(["status", "--run", missing, "--json"], Int32(1)),
                                  (["audit", "--run", missing, "--json"], 64),
                                  (["plan", "--shards", "x", "--json"], 64),
                                  (["bench", "plan", "--examples", "0", "--json"], 64)] {
            let (status, stdout, stderr) = try LetheProcess.runApart(arguments)
            #expect(status == code, "\(arguments): \(stderr)")
            let parsed = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any]
            let object = try #require(parsed, "\(arguments): stdout \(stdout)")
            #expect(object["exit_code"] as? Int == Int(code) && object.count == 2, "\(object)")
            let message = try #require(object["error"] as? String)
            #expect(!message.isEmpty && stderr.contains(message), "\(arguments): \(message) / \(stderr)")
            #expect(stdout.split(separator: "\n").count == 1)
        }
        // Without --json, stdout stays empty.
        #expect(try LetheProcess.runApart(["status", "--run", missing]).stdout.isEmpty)
    }
}
