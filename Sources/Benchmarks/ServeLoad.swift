import CommandSupport
import Foundation
import Kernels
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A server child process on an ephemeral loopback port that prints one JSON line
/// `{"event": "listening", "port": N}` when ready (`lethe serve`, Tools/serve_torch.py).
final class ServeChild {
    let process = Process()
    let port: Int
    /// Stops the server if SIGINT or SIGTERM ends the benchmark first.
    private var cleanup = 0

    convenience init(binary: URL, run: URL, threads: Int, maxBatch: Int, maxWaitMs: Double, precision: Precision?) throws {
        try self.init(executable: binary, arguments: ["serve", "--run", run.path, "--port", "0", "--threads", "\(threads)",
                                                      "--max-batch", "\(maxBatch)", "--max-wait-ms", "\(maxWaitMs)"]
                                                      + (precision.map { ["--precision", $0.rawValue] } ?? []))
    }

    init(executable: URL, arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        cleanup = InterruptCleanup.shared.stop(process)
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let object = (try? JSONSerialization.jsonObject(with: line.prefix { $0 != UInt8(ascii: "\n") })) as? [String: Any]
        guard let port = object?["port"] as? Int else {
            process.terminate()
            throw LoadError.serverDidNotStart(String(decoding: line, as: UTF8.self))
        }
        self.port = port
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// SIGTERM and wait: the server drains and exits.
    func stop() -> Int32 {
        InterruptCleanup.shared.release(cleanup)
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

enum LoadError: Error, CustomStringConvertible {
    case serverDidNotStart(String)
    case wrkFailed(String)
    case missingTool(String)

    var description: String {
        switch self {
        case let .serverDidNotStart(line): return "lethe serve did not start (it printed: \(line))"
        case let .wrkFailed(output): return "wrk failed: \(output)"
        case let .missingTool(name): return "\(name) is not installed: run `make setup` (it installs Debian's \(name))"
        }
    }
}

/// One wrk run: POST one-text inference requests, cycling through `texts`, from `connections`
/// connections for `seconds`, and its throughput and latency percentiles.
struct WrkRun: Codable {
    let connections: Int
    let seconds: Double
    let requestsPerSecond: Double
    let p50Milliseconds: Double
    let p99Milliseconds: Double
    let requests: Int
    let errors: Int

    enum CodingKeys: String, CodingKey {
        case connections, seconds, requestsPerSecond = "requests_per_second", p50Milliseconds = "p50_ms"
        case p99Milliseconds = "p99_ms", requests, errors
    }

    static func run(url: String, texts: [String], connections: Int, seconds: Double, scriptDirectory: URL) throws -> WrkRun {
        guard let wrk = ["/usr/bin/wrk", "/usr/local/bin/wrk"].first(where: FileManager.default.isExecutableFile) else {
            throw LoadError.missingTool("wrk")
        }
        let script = scriptDirectory.appendingPathComponent("infer.lua")
        try luaScript(texts: texts).write(to: script, atomically: true, encoding: .utf8)
        let (status, text) = try ChildProcess.run(
            URL(fileURLWithPath: wrk), ["-t", "\(min(connections, 2))", "-c", "\(connections)", "-d",
                                        "\(Int(seconds.rounded(.up)))s", "--latency", "--timeout", "10s", "-s", script.path, url])
        guard status == 0 else { throw LoadError.wrkFailed(text) }
        return try parse(text, connections: connections, seconds: seconds)
    }

    /// The request bodies as Lua long strings; `request()` cycles through them.
    static func luaScript(texts: [String]) throws -> String {
        var lines = ["wrk.method = \"POST\"", "wrk.headers[\"Content-Type\"] = \"application/json\"", "bodies = {"]
        for text in texts {
            let body: [String: Any] = ["inputs": [["name": "text", "shape": [1], "datatype": "BYTES", "data": [text]]]]
            let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
            lines.append("  [==[\(json)]==],")
        }
        lines += ["}", "counter = 0", "request = function()", "  counter = counter % #bodies + 1",
                  "  return wrk.format(nil, nil, nil, bodies[counter])", "end",
                  "errors = 0", "response = function(status, headers, body)",
                  "  if status ~= 200 then errors = errors + 1 end", "end"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reads `Requests/sec`, the 50% and 99% latency lines, the request count and non-2xx count.
    static func parse(_ text: String, connections: Int, seconds: Double) throws -> WrkRun {
        func number(after prefix: String) -> Double? {
            for line in text.split(separator: "\n") {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard trimmed.hasPrefix(prefix) else { continue }
                return Double(trimmed.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces)
                    .split(separator: " ").first ?? "")
            }
            return nil
        }
        func milliseconds(_ percentile: String) -> Double? {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                guard parts.count == 2, parts[0] == percentile else { continue }
                let value = String(parts[1])
                for (unit, scale) in [("us", 1e-3), ("ms", 1.0), ("s", 1000.0)] where value.hasSuffix(unit) {
                    if let v = Double(value.dropLast(unit.count)) { return v * scale }
                }
            }
            return nil
        }
        guard let rate = number(after: "Requests/sec:"), let p50 = milliseconds("50%"), let p99 = milliseconds("99%") else {
            throw LoadError.wrkFailed(text)
        }
        var requests = 0
        for line in text.split(separator: "\n") where line.contains("requests in") {
            requests = Int(line.trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") ?? 0
        }
        // Requests that got no answer in time ("Socket errors: connect 0, read 0, write 0,
        // timeout 64") count as errors: a row where the server answered nothing is not clean.
        var socketErrors = 0
        for line in text.split(separator: "\n") where line.contains("Socket errors:") {
            socketErrors = line.split(whereSeparator: { $0 == "," || $0 == ":" }).dropFirst().compactMap {
                Int($0.split(separator: " ").last ?? "")
            }.reduce(0, +)
        }
        let errors = Int(number(after: "Non-2xx or 3xx responses:") ?? 0) + socketErrors
        return WrkRun(connections: connections, seconds: seconds, requestsPerSecond: rate, p50Milliseconds: p50,
                      p99Milliseconds: p99, requests: requests, errors: errors)
    }
}

/// A blocking HTTP call for the benchmark's side streams (forgets, generation polls).
enum BlockingHTTP {
    struct Answer { let status: Int; let headers: [String: String]; let body: Data }

    static func send(_ method: String, _ url: String, body: Data? = nil) -> Answer? {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 30
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let done = DispatchSemaphore(value: 0)
        let box = AnswerBox()
        URLSession.shared.dataTask(with: request) { data, response, _ in
            if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (key, value) in http.allHeaderFields {
                    if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
                }
                box.set(Answer(status: http.statusCode, headers: headers, body: data ?? Data()))
            }
            done.signal()
        }.resume()
        done.wait()
        return box.value
    }

    static func infer(_ base: String, text: String) -> Answer? {
        let body: [String: Any] = ["inputs": [["name": "text", "shape": [1], "datatype": "BYTES", "data": [text]]]]
        return send("POST", base + "/v2/models/lethe/infer", body: try? JSONSerialization.data(withJSONObject: body))
    }

    private final class AnswerBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Answer?
        func set(_ answer: Answer) { lock.withLock { stored = answer } }
        var value: Answer? { lock.withLock { stored } }
    }
}
