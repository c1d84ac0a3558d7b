import Forgetting
import Foundation
import Glibc
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Planning
import RunFixtures
import Training
import Testing

/// `lethe serve` as a real process on loopback (an ephemeral port), on a small real run:
/// 600 BBC headlines, real MiniLM, 2 shards × 2 slices × 2 sequences, 1 epoch, rank 4.
@Suite(.serialized) struct ServeTests {
    static let root = LetheProcess.root

    /// The suite's scratch directory, one per test process.
    static var scratchDirectory: URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("lethe-serve-\(getpid())")
    }

    /// The run, built once for the suite: plan and train through the CLI.
    static let run: Result<URL, Error> = Result {
        let scratch = scratchDirectory
        try? FileManager.default.removeItem(at: scratch)   // left by an earlier process of this pid
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        // The suite's tests share the run, so it is removed when the test process exits.
        atexit { try? FileManager.default.removeItem(at: ServeTests.scratchDirectory) }
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 120, to: data) { "g-\($0 % 50)" }
        let run = scratch.appendingPathComponent("run")
        try LetheProcess.succeed(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "2",
                                  "--seed", "3", "--run", run.path])
        try LetheProcess.succeed(["train", "--run", run.path, "--epochs", "1", "--layers-per-block", "1", "--rank", "4",
                                  "--threads", "1", "--seed", "5",
                                  "--model", root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path])
        return run
    }

    /// A copy of the suite's run, so each test starts from the trained state.
    static func freshRun() throws -> URL {
        let original = try run.get()
        let copy = original.deletingLastPathComponent().appendingPathComponent("run-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: original, to: copy)
        // The trained run names its base model relative to itself; keep it resolvable.
        return copy
    }

    /// The value of the Prometheus sample `name` (with its labels) in `metrics`, or nil.
    static func metric(_ name: String, in metrics: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    /// A deletion request committed to the run's ledger as another process's forget commits it
    /// before publishing, with no publish after it.
    static func acceptWithoutPublishing(run: URL, requestID: String, id: String) throws -> LedgerEntry {
        let ledger = try Ledger.open(at: run.appendingPathComponent("ledger.sqlite"))
        defer { try? ledger.close() }
        return try ledger.append(LedgerDraft(
            kind: .request, timestampMilliseconds: 1_700_000_000_000,
            payload: RequestRecord(requestID: requestID, id: id, group: nil, timestamp: nil, examples: []).json,
            keys: [.requestID(requestID), .exampleID(id)]))
    }

    static let texts = ["Shares rise as profits beat forecasts", "Striker scores twice in cup final",
                        "New phone chip doubles battery life", "Minister resigns after vote"]

    @Test func endpointsAnswerAsDocumentedAndInferenceEqualsPredict() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        #expect(try await server.get("/v2/health/live").status == 200)
        let ready = try await server.get("/v2/health/ready")
        #expect(ready.status == 200 && ready.json["ready"] as? Bool == true)
        let metadata = try await server.get("/v2/models/lethe")
        let parameters = try #require(metadata.json["parameters"] as? [String: Any])
        let labels = try #require(parameters["labels"] as? [String])
        #expect(labels.count == 5 && parameters["shards"] as? Int == 2)

        let answer = try await server.infer(Self.texts)
        #expect(answer.status == 200)
        let outputs = try #require(answer.json["outputs"] as? [[String: Any]])
        let predicted = try #require(outputs.first { $0["name"] as? String == "label" }?["data"] as? [String])
        let probabilities = try #require(outputs.first { $0["name"] as? String == "probabilities" }?["data"] as? [Double])
        #expect(predicted.count == Self.texts.count && probabilities.count == Self.texts.count * labels.count)
        let generation = try #require(answer.json["generation"] as? [String: Any])
        #expect(answer.headers["Lethe-Generation"] == "\(generation["sequence"] as? Int ?? -1)")

        // Bit for bit what `lethe predict` answers for the same texts (float32 values).
        let lines = try LetheProcess.succeed(["predict", "--run", run.path, "--json"] + Self.texts.flatMap { ["--text", $0] })
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == Self.texts.count)
        for (row, line) in lines.enumerated() {
            #expect(line["label"] as? String == predicted[row])
            let expected = try #require(line["probabilities"] as? [String: Double])
            for (k, label) in labels.enumerated() {
                #expect(Float(probabilities[row * labels.count + k]) == Float(expected[label] ?? -1), "\(row) \(label)")
            }
        }

        // Both answer through the ensemble pass that runs the layers below the lowest adapter once
        // for all shards: it keeps every bit of the mean of each shard's own pass, on 1 and 2 threads.
        let layout = RunLayout(directory: run)
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        let ensemble = try RunEnsemble(layout: layout, composition: ServedComposition.load(from: layout.servedURL),
                                       labels: try Plan.load(from: Plan.url(inRun: run)).labels,
                                       encoder: try settings.loadBaseEncoder(run: run, precision: nil))
        let separate = ensemble.separateShardLogits(Self.texts)
        let mean = RunEnsemble.meanLogits(separate, textCount: Self.texts.count, classCount: labels.count)
        for threads in [1, 2] {
            #expect(try ensemble.shardLogits(Self.texts, threads: threads) == separate, "\(threads) thread(s)")
            #expect(try ensemble.ensembleLogits(Self.texts, threads: threads) == mean, "\(threads) thread(s)")
        }

        let metrics = try await server.get("/metrics")
        #expect(metrics.status == 200 && metrics.text.contains("lethe_requests_total{endpoint=\"infer\",status=\"200\"}")
                && metrics.text.contains("lethe_batch_size")
                && metrics.text.contains("lethe_pass_duration_seconds_count 1"))
        let status = try await server.get("/v1/status")
        let serverState = try #require(status.json["server"] as? [String: Any])
        #expect(status.json["shards"] as? Int == 2 && serverState["ready"] as? Bool == true)
        // The precision the answers are computed in (the run's own here, as no --precision was given).
        #expect(serverState["precision"] as? String == "fp32", "\(serverState)")
        let someID = try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first!
        let audit = try await server.get("/v1/audit?id=\(someID.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
        #expect(audit.status == 200 && audit.json["id"] as? String == someID && audit.json["served_now"] as? Bool == true)
        #expect(try await server.get("/v1/audit?id=no-such-id").status == 404)
        let page = try await server.get("/?id=\(someID.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
        #expect(page.status == 200 && page.text.contains("<table id=\"shards\">") && page.text.contains("id=\"audit\""))
        #expect(server.stop() == 0, "SIGTERM drains and exits 0")
    }

    @Test func badBodiesAre4xxAndApplyNothing() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        let cases: [(String, String, Int)] = [
            ("/v2/models/lethe/infer", "{not json", 400), ("/v2/models/lethe/infer", "", 400),
            ("/v2/models/lethe/infer", "[1, 2]", 400), ("/v2/models/lethe/infer", #"{"inputs": 3}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "datatype": "BYTES", "data": [1]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "datatype": "FP32", "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [2], "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "data": []}]}"#, 400),
            // KServe v2 tensors name their shape and datatype, and one input is "text".
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "datatype": "BYTES", "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [1], "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": "banana", "datatype": "BYTES", "data": ["a", "b", "c"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [1.5], "datatype": "BYTES", "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [9999999999999999999], "datatype": "BYTES", "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [-1], "datatype": "BYTES", "data": ["a"]}]}"#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}, {"name": "text", "shape": [1], "datatype": "BYTES", "data": [2]}]}"#, 400),
            ("/v1/forget", #"{"ids": 5}"#, 400), ("/v1/forget", #"{"ids": [""]}"#, 400), ("/v1/forget", "{}", 400),
            ("/v1/forget", #"{"ids": ["a"], "colour": 1}"#, 400), ("/v1/forget", "\u{1}\u{2}", 400),
            // Valid JSON that is no object is named as such; so is an output this model lacks.
            ("/v2/models/lethe/infer", "null", 400), ("/v1/forget", #""x""#, 400),
            ("/v2/models/lethe/infer", #"{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "outputs": [{"name": "logits"}]}"#, 400),
        ]
        for (path, body, expected) in cases {
            let answer = try await server.post(path, body: Data(body.utf8))
            #expect(answer.status == expected, "\(path) \(body): \(answer.status) \(answer.text)")
            #expect(answer.json["error"] is String, "\(path) \(body): \(answer.text)")
            if ["null", #""x""#].contains(body) {
                #expect(answer.text.contains("must be a JSON object"), "\(body): \(answer.text)")
            }
            if body.contains("logits") { #expect(answer.text.contains("unknown output \\\"logits\\\""), "\(answer.text)") }
        }
        // A request over --max-texts is 413, named; /v1/forget over 10,000 requests too.
        let many = (0..<1025).map { "text \($0)" }
        let tooMany = try await server.infer(many)
        #expect(tooMany.status == 413 && tooMany.text.contains("--max-texts"), "\(tooMany.text)")
        let ids = try JSONSerialization.data(withJSONObject: ["ids": (0..<10_001).map { "id-\($0)" }])
        let tooManyIDs = try await server.post("/v1/forget", body: ids)
        #expect(tooManyIDs.status == 413 && tooManyIDs.text.contains("lethe forget --log"), "\(tooManyIDs.text)")
        let metadata = try await server.get("/v2")
        #expect(metadata.status == 200 && metadata.json["name"] as? String == "lethe")
        #expect(try await server.get("/v2/models/lethe/ready").status == 200)
        let ndjson = try await server.post("/v1/forget", body: Data("{\"id\": 3}\n".utf8), contentType: "application/x-ndjson")
        #expect(ndjson.status == 400)
        let huge = try await server.post("/v2/models/lethe/infer", body: Data(repeating: 0x61, count: 10 << 20))
        #expect(huge.status == 413)
        #expect(try await server.get("/v1/nothing").status == 404)
        // Nothing was applied: no tombstone, and the server still answers from the first generation.
        let status = try await server.get("/v1/status")
        #expect(status.json["tombstones"] as? Int == 0)
        #expect(try await server.infer(["still here"]).status == 200)
    }

    /// 16 clients infer while 200 deletions arrive through the API and 50 through the CLI: no 5xx, each
    /// client's generations never go back, and no request started after a deletion was
    /// acknowledged (API) or accepted and published (CLI) is answered by a composition older
    /// than that deletion. SIGTERM at the end loses no acknowledged deletion.
    @Test func deletionsDuringInferenceAreReadYourDeletions() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        // Only slice 0 of each shard: the sequence starting with slice 1 keeps serving its prefix.
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let candidates = (0..<2).flatMap { Array(plan.members(shard: $0, slice: 0)) }
        let apiIDs = Array(candidates.prefix(200)), cliIDs = Array(candidates.dropFirst(200).prefix(50))
        #expect(apiIDs.count == 200 && cliIDs.count == 50)
        let log = EventLog()
        let clock = ContinuousClock()
        let started = clock.now
        let stop = EventLog.Flag()

        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<16 {
                group.addTask {
                    var last = -1
                    while !stop.isSet {
                        let begin = clock.now - started
                        let answer = try await server.infer([Self.texts[client % Self.texts.count]])
                        let generation = Int(answer.headers["Lethe-Generation"] ?? "") ?? -1
                        log.infer(status: answer.status, begin: begin, generation: generation)
                        #expect(answer.status < 500, "client \(client): \(answer.status) \(answer.text)")
                        #expect(generation >= last, "client \(client): generation \(last) → \(generation)")
                        last = max(last, generation)
                    }
                }
            }
            group.addTask {
                for id in apiIDs {
                    let answer = try await server.post("/v1/forget", body: try JSONSerialization.data(withJSONObject: ["ids": [id]]))
                    #expect(answer.status == 200, "\(answer.text)")
                    let requests = try #require(answer.json["requests"] as? [[String: Any]])
                    let sequence = requests.compactMap { $0["ledger_sequence"] as? Int }.max() ?? Int.max
                    log.acknowledged(at: clock.now - started, sequence: sequence)
                }
            }
            group.addTask {
                for id in cliIDs {
                    let output = try LetheProcess.succeed(["forget", "--run", run.path, "--id", id, "--json"])
                    let receipt = try #require(output.split(separator: "\n").last.flatMap {
                        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
                    let requests = try #require(receipt["requests"] as? [[String: Any]])
                    let sequence = requests.compactMap { $0["ledger_sequence"] as? Int }.max() ?? Int.max
                    log.acknowledged(at: clock.now - started, sequence: sequence)
                }
            }
            // Stop the clients once both deletion streams are done.
            try await group.next()
            try await group.next()
            stop.set()
            try await group.waitForAll()
        }
        let (infers, acknowledgements) = log.snapshot()
        let generations = Set(infers.map(\.generation))
        print("serve concurrency: \(infers.count) inferences, \(acknowledgements.count) deletions acknowledged, "
              + "\(generations.count) generations answered")
        #expect(infers.count > 20 && acknowledgements.count == apiIDs.count + cliIDs.count)
        #expect(generations.count > 3, "the clients saw the compositions change")
        #expect(infers.allSatisfy { $0.status == 200 })
        var violations = 0
        for ack in acknowledgements {
            violations += infers.filter { $0.begin > ack.at && $0.generation < ack.sequence }.count
        }
        #expect(violations == 0, "requests started after an acknowledged deletion answered by an older composition")
        #expect(server.stop() == 0)
        let status = try JSONSerialization.jsonObject(with: Data(try LetheProcess.succeed(["status", "--run", run.path, "--json"])
            .split(separator: "\n").last.map { Data($0.utf8) } ?? Data())) as? [String: Any]
        #expect(status?["tombstones"] as? Int == apiIDs.count + cliIDs.count)
        try LetheProcess.succeed(["verify", "--run", run.path])
    }
}

/// What the concurrency test saw, in order of time since its start.
final class EventLog: @unchecked Sendable {
    struct Infer { let status: Int; let begin: Duration; let generation: Int }
    struct Ack { let at: Duration; let sequence: Int }
    private let lock = NSLock()
    private var infers: [Infer] = []
    private var acks: [Ack] = []

    func infer(status: Int, begin: Duration, generation: Int) {
        lock.withLock { infers.append(Infer(status: status, begin: begin, generation: generation)) }
    }
    func acknowledged(at: Duration, sequence: Int) { lock.withLock { acks.append(Ack(at: at, sequence: sequence)) } }
    func snapshot() -> ([Infer], [Ack]) { lock.withLock { (infers, acks) } }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }
}

/// The server exited or printed something else before saying where it listens.
struct NotListening: Error { let firstLine: String }

/// `lethe serve` on an ephemeral loopback port, with a minimal HTTP client.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    private let lock = NSLock()
    private var exitStatus: Int32?

    struct Answer {
        let status: Int
        let headers: [String: String]
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    init(run: URL, arguments: [String] = []) throws {
        process.executableURL = try LetheProcess.binary()
        process.arguments = ["serve", "--run", run.path, "--port", "0", "--threads", "1", "--poll-ms", "10"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        let handle = output.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let object = (try? JSONSerialization.jsonObject(with: line.prefix { $0 != UInt8(ascii: "\n") })) as? [String: Any]
        guard let port = object?["port"] as? Int, port > 0 else {
            process.terminate()
            throw NotListening(firstLine: String(decoding: line, as: UTF8.self))
        }
        self.port = port
    }

    /// SIGTERM, then the exit status (once; later calls return it again).
    @discardableResult
    func stop() -> Int32 {
        lock.withLock {
            if let exitStatus { return exitStatus }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            exitStatus = process.terminationStatus
            return process.terminationStatus
        }
    }

    func get(_ path: String) async throws -> Answer { try await send("GET", path, body: nil) }

    func post(_ path: String, body: Data, contentType: String = "application/json") async throws -> Answer {
        try await send("POST", path, body: body, contentType: contentType)
    }

    func infer(_ texts: [String]) async throws -> Answer {
        let body: [String: Any] = ["inputs": [["name": "text", "shape": [texts.count], "datatype": "BYTES", "data": texts]]]
        return try await post("/v2/models/lethe/infer", body: try JSONSerialization.data(withJSONObject: body))
    }

    /// Sends `request` as raw bytes on a new connection and reads until the server closes it
    /// or `seconds` pass: the bytes received and whether the server closed the connection.
    func raw(_ request: String, readingAtMost seconds: Double) throws -> (text: String, closed: Bool) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(socket) }
        var address = ServeTests.loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let bytes = Array(request.utf8)
        guard Glibc.send(socket, bytes, bytes.count, 0) == bytes.count else { throw POSIXError(.EIO) }
        var received = [UInt8]()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = recv(socket, &chunk, chunk.count, 0)
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += chunk.prefix(count)
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    func send(_ method: String, _ path: String, body: Data?, contentType: String = "application/json") async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 60
        if body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        return try await withCheckedThrowingContinuation { continuation in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error { continuation.resume(throwing: error); return }
                guard let http = response as? HTTPURLResponse else {
                    continuation.resume(throwing: URLError(.badServerResponse)); return
                }
                var headers: [String: String] = [:]
                for (key, value) in http.allHeaderFields {
                    if let key = key as? String, let value = value as? String { headers[key] = value }
                }
                continuation.resume(returning: Answer(status: http.statusCode, headers: headers, body: data ?? Data()))
            }.resume()
        }
    }
}

extension ServeTests {
    /// A published composition that cannot be loaded is refused. While the old snapshot holds
    /// every accepted deletion it keeps answering (not ready, status says why); once a deletion
    /// it lacks is accepted, inference is 503 — never stale — until a good composition loads.
    @Test func aCompositionThatCannotLoadIsRefusedAndNeverAnswersStale() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        let layoutServed = run.appendingPathComponent("served.json")
        let served = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: layoutServed)) as? [String: Any])
        let shards = try #require(served["shards"] as? [[String: Any]])
        let shard1 = try #require(shards.first { $0["shard"] as? Int == 1 })
        let key = try #require((shard1["stage_keys"] as? [String])?.first)
        let stage = run.appendingPathComponent("stages/shard-1/stage-1-\(key).h5")
        let original = try Data(contentsOf: stage)
        var damaged = original
        damaged[damaged.count / 2] ^= 1
        try damaged.write(to: stage)

        // The same composition published again (a new file): its load fails on the damaged stage,
        // but the snapshot holds every accepted deletion (none), so it keeps answering.
        let copy = run.appendingPathComponent("served.json.copy")
        try FileManager.default.copyItem(at: layoutServed, to: copy)
        _ = rename(copy.path, layoutServed.path)
        try await Self.waitUntil { try await server.get("/v2/health/ready").status == 503 }
        #expect(try await server.infer(["Shares rise"]).status == 200)
        let status = try await server.get("/v1/status")
        let reason = (status.json["server"] as? [String: Any])?["reason"] as? String ?? ""
        #expect(reason.contains("refused") && reason.contains("stage-1-\(key)"), "\(reason)")

        // A deletion the snapshot lacks is accepted and published by the CLI: inference is refused.
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let id = try #require(plan.members(shard: 0, slice: 0).first)
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", id])
        let refused = try await server.infer(["Shares rise"])
        #expect(refused.status == 503 && (refused.json["error"] as? String ?? "").contains("refused"), "\(refused.text)")
        // The model's metadata does not describe the stale snapshot either.
        #expect(try await server.get("/v2/models/lethe").status == 503)

        // The stage restored: the composition loads on the next retry and answers with the deletion.
        try original.write(to: stage)
        try await Self.waitUntil { try await server.infer(["Shares rise"]).status == 200 }
        let answer = try await server.infer(["Shares rise"])
        #expect(Int(answer.headers["Lethe-Generation"] ?? "") ?? 0 >= 1)
        #expect(try await server.get("/v2/health/ready").status == 200)
        #expect(server.stop() == 0)
    }

    /// A deletion request another process appends to the ledger (here another connection, with
    /// no publish after it) turns an idle server's readiness false: the watcher sees the ledger's
    /// write in the run directory and asks the ledger.
    @Test func anAcceptedDeletionTurnsAnIdleServerNotReady() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        #expect(try await server.get("/v2/health/ready").status == 200)
        let entry = try Self.acceptWithoutPublishing(run: run, requestID: "watch-1", id: "g-1")
        try await Self.waitUntil { try await server.get("/v2/health/ready").status == 503 }
        let ready = try await server.get("/v2/health/ready")
        let reason = ready.json["reason"] as? String ?? ""
        #expect(reason.contains("#\(entry.sequenceNumber) is accepted but not yet in"), "\(reason)")
        // No composition answers once a newer deletion is accepted: a batch waits for its
        // publish, and with none coming (the forget was interrupted) is refused, and so is
        // inference until the deletion is published.
        let refused = try await server.infer(["Shares rise"])
        #expect(refused.status == 503 && refused.text.contains("lethe forget --resume"), "\(refused.text)")
        let status = try await server.get("/v1/status")
        #expect((status.json["server"] as? [String: Any])?["refuses_inference"] as? Bool == true, "\(status.text)")
        // Nobody resumes the forget: the server completes it (after 5 s) and answers again, from
        // a generation that holds the deletion, and the ledger has the forget's receipt.
        try await Self.waitUntil { try await server.infer(["Shares rise"]).status == 200 }
        let answered = try await server.infer(["Shares rise"])
        #expect(Int(answered.headers["Lethe-Generation"] ?? "") ?? 0 >= Int(entry.sequenceNumber))
        let ledger = try Ledger.open(at: run.appendingPathComponent("ledger.sqlite"))
        #expect(try ledger.lastSequenceNumber(ofKind: .receipt) ?? 0 > entry.sequenceNumber)
        try ledger.close()
        #expect(server.stop() == 0)
    }

    /// 127.0.0.1 at `port` (0: the kernel picks a free one when bound).
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// A port another socket holds is named with what to do (exit 1), and an address that is
    /// not one is a usage error before anything loads.
    @Test func aBusyPortAndABadHostAreNamed() throws {
        let run = try Self.freshRun()
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(holder, pointer, length) == 0 && listen(holder, 1) == 0 && getsockname(holder, pointer, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let busy = try LetheProcess.run(["serve", "--run", run.path, "--port", "\(port)", "--threads", "1"])
        #expect(busy.status == 1 && busy.output.contains("--port \(port): 127.0.0.1:\(port) is in use"), "\(busy.output)")
        let host = try LetheProcess.run(["serve", "--run", run.path, "--host", "999.1.1.1"])
        #expect(host.status == 64 && host.output.contains("--host \"999.1.1.1\": not an address"), "\(host.output)")
        // An address no interface of this machine has (TEST-NET-1), and a file given as the run.
        let foreign = try LetheProcess.run(["serve", "--run", run.path, "--host", "192.0.2.1", "--port", "0"])
        #expect(foreign.status == 1 && foreign.output.contains("--host 192.0.2.1: no network interface"), "\(foreign.output)")
        let file = try LetheProcess.run(["serve", "--run", run.appendingPathComponent("plan.h5").path])
        #expect(file.status == 64 && file.output.contains("is a file, not a run directory"), "\(file.output)")
    }

    /// An unknown path is 404 and a known path asked with the wrong method 405 naming the
    /// method it answers, each with a JSON error.
    @Test func unknownPathsAndWrongMethodsGetJSONErrors() async throws {
        let server = try ServerProcess(run: try Self.freshRun())
        defer { server.stop() }
        let missing = try await server.get("/v2/models/other")
        #expect(missing.status == 404 && (missing.json["error"] as? String ?? "").contains("/v2/models/other"), "\(missing.text)")
        let wrong = try await server.get("/v2/models/lethe/infer")
        #expect(wrong.status == 405 && wrong.headers.first { $0.key.lowercased() == "allow" }?.value == "POST", "\(wrong)")
        #expect((wrong.json["error"] as? String ?? "").contains("POST"))
        let delete = try await server.send("DELETE", "/v1/status", body: nil)
        #expect(delete.status == 405 && delete.headers.first { $0.key.lowercased() == "allow" }?.value == "GET, HEAD")
        #expect(try await server.get("/v1/status").status == 200)
        // A path with a version segment is matched as its route is: the wrong method is 405.
        #expect(try await server.get("/v2/models/lethe/versions/0/infer").status == 405)
        #expect(try await server.get("/v2/models/lethe/versions/0/other").status == 404)
    }

    /// `Expect: 100-continue` gets 100 Continue at once for a body the server accepts, and the
    /// request's own 413 (no 100) for one larger than it accepts.
    @Test func expectContinueIsAnswered() async throws {
        let server = try ServerProcess(run: try Self.freshRun())
        defer { server.stop() }
        let head = "POST /v2/models/lethe/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + "Expect: 100-continue\r\n"
        let accepted = try server.raw(head + "Content-Length: 2000000\r\n\r\n", readingAtMost: 1)
        #expect(accepted.text == "HTTP/1.1 100 Continue\r\n\r\n", "\(accepted.text)")
        let refused = try server.raw(head + "Content-Length: 9000000\r\n\r\n", readingAtMost: 1)
        #expect(refused.text.hasPrefix("HTTP/1.1 413") && !refused.text.contains("100 Continue"), "\(refused.text)")
        // A path the server does not answer, or a method the path refuses: no go-ahead for the body.
        for line in ["POST /v2/models/other/infer HTTP/1.1", "PUT /v2/models/lethe/infer HTTP/1.1"] {
            let other = try server.raw(line + "\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n",
                                       readingAtMost: 1)
            #expect(!other.text.contains("100 Continue"), "\(line): \(other.text)")
        }
        // The version served now gets the go-ahead; one it does not serve (replaced, or unknown) does not.
        let current = try #require(Int((try await server.get("/v2/models/lethe").json["versions"] as? [String])?.first ?? ""))
        for (version, continues) in [(current, true), (current + 1, false), (current - 1, false)] where version >= 0 {
            let pinned = try server.raw("POST /v2/models/lethe/versions/\(version)/infer HTTP/1.1\r\nHost: x\r\n"
                                        + "Expect: 100-continue\r\nContent-Length: 20\r\n\r\n", readingAtMost: 1)
            #expect(pinned.text.contains("100 Continue") == continues, "version \(version): \(pinned.text)")
        }
    }

    /// HEAD is answered for every GET path: the GET's status and length, no body.
    @Test func headIsAnsweredLikeGetWithoutABody() async throws {
        let server = try ServerProcess(run: try Self.freshRun())
        defer { server.stop() }
        for path in ["/v2/health/live", "/v2/models/lethe", "/metrics", "/"] {
            let head = try server.raw("HEAD \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", readingAtMost: 10)
            #expect(head.closed && head.text.hasPrefix("HTTP/1.1 200"), "\(path): \(head.text)")
            #expect(head.text.hasSuffix("\r\n\r\n"), "\(path) sent a body: \(head.text)")
        }
        let refused = try server.raw("HEAD /v2/models/lethe/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                     readingAtMost: 10)
        #expect(refused.text.hasPrefix("HTTP/1.1 405"), "\(refused.text)")
    }

    /// A model version is the generation that serves it. The current one answers under
    /// /versions/{v}; once a deletion replaces it, it is gone (410), never served again, and the
    /// new one answers; a version not yet published or not a number is 404.
    @Test func onlyTheCurrentModelVersionIsServed() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        func inferBody(_ text: String) throws -> Data {
            try JSONSerialization.data(withJSONObject: ["inputs": [["name": "text", "shape": [1], "datatype": "BYTES",
                                                                     "data": [text]]]])
        }
        let metadata = try await server.get("/v2/models/lethe")
        let first = try #require((metadata.json["versions"] as? [String])?.first.flatMap { Int($0) })
        #expect(try await server.get("/v2/models/lethe/versions/\(first)").text == metadata.text)
        #expect(try await server.get("/v2/models/lethe/versions/\(first)/ready").status == 200)
        let pinned = try await server.post("/v2/models/lethe/versions/\(first)/infer", body: try inferBody("Shares rise"))
        #expect(pinned.status == 200 && pinned.json["model_version"] as? String == "\(first)", "\(pinned.text)")

        let plan = try Plan.load(from: Plan.url(inRun: run))
        let forgotten = try #require(plan.members(shard: 0, slice: 0).first)
        let forget = try await server.post("/v1/forget", body: try JSONSerialization.data(withJSONObject: ["ids": [forgotten]]))
        #expect(forget.status == 200, "\(forget.text)")
        let current = try #require(((try await server.get("/v2/models/lethe")).json["versions"] as? [String])?.first.flatMap { Int($0) })
        #expect(current > first)
        let gone = try await server.post("/v2/models/lethe/versions/\(first)/infer", body: try inferBody("Shares rise"))
        #expect(gone.status == 410 && (gone.json["error"] as? String ?? "").contains("replaced by version \(current)"),
                "\(gone.text)")
        #expect(try await server.get("/v2/models/lethe/versions/\(first)").status == 410)
        #expect(try await server.get("/v2/models/lethe/versions/\(first)/ready").status == 410)
        let now = try await server.post("/v2/models/lethe/versions/\(current)/infer", body: try inferBody("Shares rise"))
        #expect(now.status == 200 && now.json["model_version"] as? String == "\(current)", "\(now.text)")
        for unknown in ["\(current + 1)", "abc", "-1", "0\(current)", "+\(current)"] {
            let answer = try await server.post("/v2/models/lethe/versions/\(unknown)/infer", body: try inferBody("x"))
            #expect(answer.status == 404 && (answer.json["error"] as? String ?? "").contains("serves only version \(current)"),
                    "\(unknown): \(answer.text)")
        }
    }

    /// A training that publishes another shard's model replaces the version too: a request pinned
    /// to the version served before gets 410, never an answer from a different set of models.
    @Test func aTrainingPublishReplacesThePinnedVersion() async throws {
        let run = try Self.freshRun()
        // The run as it was after its first shard's publish: shard 0 served, at ledger entry 1.
        let layout = RunLayout(directory: run)
        let ledger = try Ledger.open(at: layout.ledgerURL)
        let entries = try ledger.entries()
        try ledger.close()
        #expect(entries.map(\.kind) == [.publish, .publish], "lethe train recorded each shard's publish")
        let trained = try ServedComposition.load(from: layout.servedURL)
        try ServedComposition(strategy: trained.strategy, shards: [try #require(trained.entry(shard: 0))],
                              ledgerHead: LedgerAnchor(sequenceNumber: 1, hash: entries[0].hash)).save(to: layout)
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        let body = try JSONSerialization.data(withJSONObject: ["inputs": [["name": "text", "shape": [1], "datatype": "BYTES",
                                                                           "data": ["Shares rise"]]]])
        let pinned = try await server.post("/v2/models/lethe/versions/1/infer", body: body)
        #expect(pinned.status == 200 && pinned.json["model_version"] as? String == "1", "\(pinned.text)")

        // `lethe train` finds every stage trained and publishes shard 1 again: entry 3, version 3.
        _ = try LetheProcess.succeed(["train", "--run", run.path])
        var versions: [String] = []
        for _ in 0..<100 {
            versions = (try await server.get("/v2/models/lethe")).json["versions"] as? [String] ?? []
            if versions == ["3"] { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(versions == ["3"])
        let gone = try await server.post("/v2/models/lethe/versions/1/infer", body: body)
        #expect(gone.status == 410 && (gone.json["error"] as? String ?? "").contains("replaced by version 3"), "\(gone.text)")
        let now = try await server.post("/v2/models/lethe/versions/3/infer", body: body)
        #expect(now.status == 200 && now.json["model_version"] as? String == "3", "\(now.text)")
        let shards = (try await server.get("/v2/models/lethe")).json["parameters"] as? [String: Any]
        #expect(shards?["live_shards"] as? [Int] == [0, 1])
    }

    /// An HTTP/1.0 request without keep-alive has its connection closed after the answer (the
    /// client reads to the end of the stream); with keep-alive the connection stays and the
    /// answer says so.
    @Test func http10ConnectionsCloseAfterTheAnswerUnlessKeptAlive() async throws {
        let server = try ServerProcess(run: try Self.freshRun())
        defer { server.stop() }
        let plain = try server.raw("GET /v2/health/live HTTP/1.0\r\n\r\n", readingAtMost: 10)
        #expect(plain.closed)
        #expect(plain.text.hasPrefix("HTTP/1.1 200"))
        #expect(plain.text.lowercased().contains("connection: close"))
        #expect(plain.text.hasSuffix("{\"live\":true}"))
        let kept = try server.raw("GET /v2/health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", readingAtMost: 1)
        #expect(!kept.closed)
        #expect(kept.text.lowercased().contains("connection: keep-alive"))
        #expect(kept.text.hasSuffix("{\"live\":true}"))
        let closing = try server.raw("GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                     readingAtMost: 10)
        #expect(closing.closed)
        #expect(closing.text.lowercased().contains("connection: close"))
        // HTTP/1.1 requires Host (RFC 9112): without it, 400 with a JSON error.
        let hostless = try server.raw("GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n", readingAtMost: 10)
        #expect(hostless.text.hasPrefix("HTTP/1.1 400") && hostless.text.contains("Host header"), "\(hostless.text)")
        // The server's own marker of a missing Host, sent by a client with a Host, changes nothing.
        let marked = try server.raw("GET /v2/health/live HTTP/1.1\r\nHost: x\r\nLethe-Missing-Host: 1\r\n"
                                    + "Connection: close\r\n\r\n", readingAtMost: 10)
        #expect(marked.text.hasPrefix("HTTP/1.1 200"), "\(marked.text)")
        // An audit names one id: a second ?id= is refused, not dropped.
        let twice = try await server.get("/v1/audit?id=a&id=b")
        #expect(twice.status == 400 && twice.text.contains("?id= is given 2 times"), "\(twice.text)")
        // A CONNECT gets a 400 (NIO writes any answer to it without a body) and the connection closes.
        let connect = try server.raw("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", readingAtMost: 10)
        #expect(connect.closed && connect.text.hasPrefix("HTTP/1.1 400"), "\(connect.text)")
        // Requests NIO cannot parse get a 400 with a JSON body too, and the connection closes.
        for malformed in ["GET /v2/health/live HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
                          "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
                          "NOT HTTP AT ALL\r\n\r\n"] {
            let answer = try server.raw(malformed, readingAtMost: 10)
            #expect(answer.closed && answer.text.hasPrefix("HTTP/1.1 400")
                    && answer.text.lowercased().contains("content-type: application/json")
                    && answer.text.contains(#"{"error":""#), "\(answer.text)")
            let body = try #require(answer.text.range(of: "\r\n\r\n").map { answer.text[$0.upperBound...] })
            let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            #expect((json?["error"] as? String)?.hasPrefix("malformed HTTP request") == true, "\(body)")
            #expect(answer.text.lowercased().contains("cache-control: no-store"), "\(answer.text)")
        }
        // A bad request pipelined after a good one is refused after the good one's answer, which
        // is not cut off.
        let pipelined = try server.raw("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n", readingAtMost: 10)
        let first = pipelined.text.range(of: "HTTP/1.1 200"), second = pipelined.text.range(of: "HTTP/1.1 400")
        #expect(pipelined.closed && first != nil && second != nil && first!.lowerBound < second!.lowerBound
                && pipelined.text.contains("{\"live\":true}"), "\(pipelined.text)")
    }

    /// A request of more texts than --max-batch runs as several passes of at most that many,
    /// with a small request's pass between them, and answers what the same texts get alone (to
    /// the last bits, which padding moves).
    @Test func aLargeRequestIsSplitIntoPassesOfMaxBatch() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run, arguments: ["--max-batch", "4", "--max-wait-ms", "0"])
        defer { server.stop() }
        let texts = (0..<5).flatMap { round in Self.texts.map { "\($0) (\(round))" } }   // 20 texts
        async let large = server.infer(texts)
        async let small = server.infer([Self.texts[0]])
        let (big, one) = try await (large, small)
        #expect(big.status == 200 && one.status == 200, "\(big.text) \(one.text)")
        func probabilities(_ answer: ServerProcess.Answer) throws -> [Double] {
            let outputs = try #require(answer.json["outputs"] as? [[String: Any]])
            return try #require(outputs.first { $0["name"] as? String == "probabilities" }?["data"] as? [Double])
        }
        let split = try probabilities(big)
        var alone: [Double] = []
        for text in texts { alone += try probabilities(try await server.infer([text])) }
        // Padding to a batch's longest text moves the last bits of attention's sums, no more.
        #expect(split.count == alone.count && zip(split, alone).allSatisfy { abs($0 - $1) < 1e-5 })
        let metrics = try await server.get("/metrics").text
        let value = { Self.metric($0, in: metrics) }
        // Every pass held at most 4 texts; 20 + 1 + 20 texts in all, the large request in 5 passes.
        #expect(value("lethe_batch_size_bucket{le=\"4.0\"}") == value("lethe_batch_size_count"), "\(metrics)")
        #expect(value("lethe_batch_size_sum") == Double(2 * texts.count + 1))
        #expect(value("lethe_batch_size_count") == Double(5 + 1 + texts.count))
        #expect(server.stop() == 0)
    }

    /// A request spanning many passes is answered while deletions keep arriving from another
    /// process. Deletions that change no served model (unknown ids) cost it nothing: exactly its
    /// texts are computed. Deletions that do (a slice of each shard, then a whole shard) restart
    /// it at most twice before the rest runs whole holding the run lock; no answer is older than
    /// a deletion accepted before it arrived.
    @Test func aLargeRequestIsAnsweredWhileDeletionsKeepArriving() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run, arguments: ["--max-batch", "4", "--max-wait-ms", "0"])
        defer { server.stop() }
        let texts = (0..<150).flatMap { round in Self.texts.map { "\($0) [\(round)]" } }   // 600 texts, 150 passes
        let plan = try Plan.load(from: Plan.url(inRun: run))
        func example(shard: Int, slice: Int) -> String {
            plan.undeletedExampleIDs.first { plan.location(of: $0) == SliceLocation(shard: shard, slice: slice) }!
        }
        let real = [example(shard: 0, slice: 1), example(shard: 1, slice: 1), example(shard: 0, slice: 0)]
        for (round, ids) in [(0, (0..<6).map { "nobody-\($0)" }), (1, real)] {
            let before = Self.metric("lethe_batch_size_sum", in: try await server.get("/metrics").text) ?? 0
            // (sequence number, when its forget returned) of every deletion.
            let accepted = Mutex<[(Int64, ContinuousClock.Instant)]>([])
            let forgets = Thread {
                Thread.sleep(forTimeInterval: 0.05)
                for id in ids {
                    guard let (status, output) = try? LetheProcess.run(["forget", "--run", run.path, "--id", id, "--json"]),
                          status == 0 || status == 5,
                          let line = output.split(separator: "\n").first(where: { $0.hasPrefix("{") }),
                          let receipt = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                          let sequence = receipt["ledger_sequence"] as? Int else { continue }
                    accepted.withLock { $0.append((Int64(sequence), .now)) }
                }
            }
            forgets.start()
            let answer = try await server.infer(texts)
            let arrived = ContinuousClock.now
            while forgets.isExecuting || !forgets.isFinished { try await Task.sleep(for: .milliseconds(20)) }
            #expect(answer.status == 200, "\(answer.text)")
            let generation = Int64(answer.headers["Lethe-Generation"] ?? answer.headers["lethe-generation"] ?? "") ?? -1
            let acceptedBefore = accepted.withLock { $0.filter { $0.1 < arrived }.map(\.0).max() } ?? 0
            #expect(generation >= acceptedBefore, "answered from generation \(generation) after #\(acceptedBefore) was accepted")
            #expect(accepted.withLock { $0.count } == ids.count)
            let computed = (Self.metric("lethe_batch_size_sum", in: try await server.get("/metrics").text) ?? 0) - before
            if round == 0 {
                #expect(computed == Double(texts.count), "unknown ids restarted the request: \(computed) texts computed")
            } else {
                #expect(computed <= Double(3 * texts.count), "\(computed) texts computed")
            }
        }
        #expect(server.stop() == 0)
    }

    /// When deletions kill every shard, the server keeps answering what it can: the forget that
    /// killed the last one gets its receipt, inference and readiness answer 503 saying to
    /// retrain, status and audit answer; a server started on such a run does the same.
    @Test func aRunWhoseEveryShardIsDeadIsStillServed() async throws {
        let run = try Self.freshRun()
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let killers = (0..<2).flatMap { shard in (0..<2).map { slice in
            plan.undeletedExampleIDs.first { plan.location(of: $0) == SliceLocation(shard: shard, slice: slice) }!
        } }
        try LetheProcess.succeed(["forget", "--run", run.path] + killers.dropLast().flatMap { ["--id", $0] })
        var server = try ServerProcess(run: run)
        defer { server.stop() }
        #expect(try await server.infer(["Shares rise"]).status == 200)
        let body = try JSONSerialization.data(withJSONObject: ["ids": [killers.last!]])
        let forget = try await server.post("/v1/forget", body: body)
        #expect(forget.status == 200 && forget.text.contains("\"dead_shards\":[0,1]"), "\(forget.text)")
        for restarted in [false, true] {
            if restarted {
                #expect(server.stop() == 0)
                server = try ServerProcess(run: run)
            }
            let infer = try await server.infer(["Shares rise"])
            #expect(infer.status == 503 && infer.text.contains("every shard") && infer.text.contains("lethe retrain"),
                    "\(infer.text)")
            let ready = try await server.get("/v2/health/ready")
            #expect(ready.status == 503 && ready.text.contains("every shard"), "\(ready.text)")
            #expect(try await server.get("/v1/status").status == 200)
            let audit = try await server.get("/v1/audit?id=\(killers[0].addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
            #expect(audit.status == 200, "\(audit.text)")
        }
        #expect(server.stop() == 0)
    }

    /// An answer whose pass ended before a deletion was accepted, but which is still on its way
    /// out (held here 1.2 s between its admission and its write, well inside the 2 s a drain
    /// allows an answer that writes nothing), is written before
    /// `/v1/forget` acknowledges that deletion: no answer from a model that saw the example
    /// follows the acknowledgment.
    @Test func anAnswerInFlightIsWrittenBeforeTheDeletionIsAcknowledged() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run, arguments: ["--test-answer-delay-ms", "1200"])
        defer { server.stop() }
        // An example of slice 0: every sequence that starts with it serves it.
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let id = try #require(plan.members(shard: 0, slice: 0).first)
        #expect(try await server.infer(["warm up"]).status == 200)
        let clock = ContinuousClock(), start = clock.now
        async let inference = { () async throws -> (ServerProcess.Answer, Duration) in
            let answer = try await server.infer(["Shares rise as profits beat forecasts"])
            return (answer, clock.now - start)
        }()
        try await Task.sleep(for: .milliseconds(600))   // the pass is done; the answer waits to be written
        let forget = try await server.post("/v1/forget", body: try JSONSerialization.data(withJSONObject: ["ids": [id]]))
        let acknowledged = clock.now - start
        let (answer, answered) = try await inference
        #expect(forget.status == 200, "\(forget.text)")
        let sequence = try #require((forget.json["requests"] as? [[String: Any]])?.compactMap { $0["ledger_sequence"] as? Int }.max())
        let generation = try #require(Int(answer.headers["Lethe-Generation"] ?? ""))
        #expect(answer.status == 200 && generation < sequence, "the answer came from the composition before the deletion")
        #expect(acknowledged >= .milliseconds(1100), "acknowledged at \(acknowledged), before the answer was written")
        #expect(answered <= acknowledged + .milliseconds(250), "answer at \(answered), acknowledgment at \(acknowledged)")
        // A request after the acknowledgment is answered without the example.
        let after = try await server.infer(["Shares rise as profits beat forecasts"])
        #expect(Int(after.headers["Lethe-Generation"] ?? "") ?? -1 >= sequence)
        #expect(server.stop() == 0)
    }

    /// A /v1/forget that records its request and then cannot publish (the run directory made
    /// immutable) answers that the deletion was accepted at its ledger entry, not a bare error;
    /// once the directory is writable again the server completes it by itself.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/chattr"),
                   "chattr +i needs root"))
    func aForgetAcceptedButNotPublishedSaysItWasAccepted() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer {
            _ = try? LetheProcess.runTool("/usr/bin/chattr", ["-i", run.path])
            server.stop()
        }
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let members = Array(plan.members(shard: 0, slice: 0))
        let id = try #require(members.first), earlier = try #require(members.dropFirst().first)
        // A first deletion makes the ledger (an immutable directory could not take a new file).
        #expect(try await server.post("/v1/forget", body: try JSONSerialization.data(withJSONObject: ["ids": [earlier]])).status == 200)
        try await Task.sleep(for: .milliseconds(100))
        let immutable = try LetheProcess.runTool("/usr/bin/chattr", ["+i", run.path])
        try #require(immutable.status == 0, "chattr +i \(run.path): \(immutable.output)")
        let failed = try await server.post("/v1/forget", body: try JSONSerialization.data(withJSONObject: ["ids": [id]]))
        try LetheProcess.runTool("/usr/bin/chattr", ["-i", run.path])
        #expect(failed.status == 500 && failed.json["accepted"] as? Bool == true, "\(failed.text)")
        let sequence = try #require(failed.json["ledger_sequence"] as? Int)
        #expect((failed.json["error"] as? String)?.contains("accepted (the last at ledger #\(sequence)) and are not lost") == true)
        // Completed by the server itself within seconds: the next answer comes without the example.
        let answer = try await server.infer(["Shares rise"])
        #expect(answer.status == 200 || answer.status == 503, "\(answer.text)")
        var generation = Int(answer.headers["Lethe-Generation"] ?? "") ?? -1
        for _ in 0..<40 where generation < sequence {
            try await Task.sleep(for: .milliseconds(250))
            generation = Int(try await server.infer(["Shares rise"]).headers["Lethe-Generation"] ?? "") ?? -1
        }
        #expect(generation >= sequence, "never answered from a composition with the accepted deletion")
        #expect(try Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
        #expect(server.stop() == 0)
    }

    /// A batch that forms between another process's acceptance of a deletion and its publish
    /// waits for the publish and answers from the new composition.
    @Test func aBatchAfterAnAcceptedDeletionWaitsForItsPublish() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        #expect(try await server.infer(["Shares rise"]).status == 200)
        // Accepted (committed to the ledger) here; published by `forget --resume` 0.4 s later.
        let entry = try Self.acceptWithoutPublishing(run: run, requestID: "wait-1", id: "g-2")
        let publisher = Thread {
            Thread.sleep(forTimeInterval: 0.4)
            _ = try? LetheProcess.succeed(["forget", "--run", run.path, "--resume"])
        }
        publisher.start()
        let clock = ContinuousClock(), start = clock.now
        let answer = try await server.infer(["Shares rise"])
        let waited = clock.now - start
        #expect(answer.status == 200, "\(answer.text)")
        #expect(Int(answer.headers["Lethe-Generation"] ?? "") ?? 0 >= Int(entry.sequenceNumber), "\(answer.headers)")
        #expect(waited >= .milliseconds(300), "answered after \(waited), before the publish")
        #expect(server.stop() == 0)
    }

    /// A forming batch waits for as many texts as the previous batch answered (none were queued
    /// here), never longer than --max-wait-ms: one client sending one text at a time is answered
    /// without waiting, and a text after a batch of four waits the full cap for three more that
    /// never come.
    @Test func aBatchWaitsForTheClientsThePreviousPassAnsweredAtMostMaxWait() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run, arguments: ["--max-wait-ms", "1000"])
        defer { server.stop() }
        func waits() async throws -> (count: Double, seconds: Double) {
            let text = try await server.get("/metrics").text
            let value = { Self.metric($0, in: text) }
            return (value("lethe_batch_wait_seconds_count") ?? -1, value("lethe_batch_wait_seconds_sum") ?? -1)
        }
        for text in Self.texts.prefix(3) { #expect(try await server.infer([text]).status == 200) }
        let lone = try await waits()
        #expect(lone.count == 3 && lone.seconds >= 0 && lone.seconds < 0.5, "\(lone)")
        #expect(try await server.infer(Self.texts).status == 200)
        #expect(try await server.infer(["Shares rise"]).status == 200)
        let capped = try await waits()
        #expect(capped.count == 5 && capped.seconds - lone.seconds >= 0.99 && capped.seconds - lone.seconds < 1.8,
                "\(capped)")
        #expect(try await server.infer(["Shares fall"]).status == 200)
        let after = try await waits()
        #expect(after.count == 6 && after.seconds - capped.seconds < 0.5, "\(after)")
    }

    /// Polls `condition` every 20 ms for up to 10 s.
    static func waitUntil(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("condition not met within 10 s")
    }
}

extension ServeTests {
    /// The auditor page as a real browser renders it (Debian's Chromium, headless, installed by
    /// `make setup`): served shards, generation, dead shards, δ, ledger entries and the audit
    /// of an id asked through the page's form.
    @Test func theAuditorPageRendersInAHeadlessBrowser() async throws {
        let chromium = try #require(["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .first(where: FileManager.default.isExecutableFile), "Chromium is missing: run `make setup`")
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let forgotten = try #require(plan.members(shard: 0, slice: 0).first)
        let answer = try await server.post("/v1/forget", body: try JSONSerialization.data(withJSONObject: ["ids": [forgotten]]))
        #expect(answer.status == 200)
        let query = forgotten.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--user-data-dir=\(profile.path)", "--dump-dom", "http://127.0.0.1:\(server.port)/?id=\(query)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let dom = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        // The generation after two training publishes (one per shard) and the deletion's request.
        #expect(answer.headers["Lethe-Generation"] == "3", "\(answer.headers)")
        #expect(dom.contains("<table id=\"shards\">") && dom.contains("id=\"generation\">3<"), "\(dom.prefix(2000))")
        #expect(dom.components(separatedBy: "<tr").count - 1 >= 1 + 2 + 1 + 2, "shard rows and ledger rows")
        #expect(dom.contains("id=\"delta\"") && dom.contains("<table id=\"ledger\">") && dom.contains(">request<"))
        let audit = try #require(dom.range(of: "<pre id=\"audit\">").map { String(dom[$0.upperBound...].prefix(3000)) })
        #expect(audit.contains(forgotten) && audit.lowercased().contains("deleted") || audit.contains("tombstone"), "\(audit)")
        // Nothing the server answers may be cached, and the page may run no script.
        for path in ["/", "/v1/status", "/v1/audit?id=\(query)", "/v2/health/ready"] {
            let headers = Dictionary(try await server.get(path).headers.map { ($0.key.lowercased(), $0.value) }) { $1 }
            #expect(headers["cache-control"] == "no-store" && headers["x-content-type-options"] == "nosniff", "\(path): \(headers)")
        }
        let page = Dictionary(try await server.get("/").headers.map { ($0.key.lowercased(), $0.value) }) { $1 }
        #expect(page["content-security-policy"]?.hasPrefix("default-src 'none'") == true, "\(page)")
    }
}

extension ServeTests {
    /// SIGTERM while deletions stream in: the server drains and exits 0, and every deletion it
    /// acknowledged is in the run (tombstoned, not served).
    @Test func sigtermDuringForgetsLosesNoAcknowledgedDeletion() async throws {
        let run = try Self.freshRun()
        let server = try ServerProcess(run: run)
        defer { server.stop() }
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let ids = Array(plan.members(shard: 1, slice: 0).prefix(40))
        let acknowledged = EventLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (worker, part) in [Array(ids.prefix(20)), Array(ids.suffix(20))].enumerated() {
                group.addTask {
                    for id in part {
                        guard let answer = try? await server.post("/v1/forget", body: try JSONSerialization.data(
                            withJSONObject: ["ids": [id], "request_id": "sigterm-\(worker)-\(id)"])) else { return }
                        if answer.status == 200 { acknowledged.acknowledged(at: .zero, sequence: ids.firstIndex(of: id)!) }
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(300))
                #expect(server.stop() == 0, "SIGTERM drains and exits 0")
            }
            try await group.waitForAll()
        }
        let done = acknowledged.snapshot().1.map { ids[$0.sequence] }
        #expect(!done.isEmpty, "some deletions were acknowledged before SIGTERM")
        let tombstones = Set(try Plan.load(from: Plan.url(inRun: run)).tombstones)
        #expect(done.allSatisfy(tombstones.contains), "every acknowledged deletion is in the plan's tombstones")
        for id in done.prefix(5) {
            let audit = try LetheProcess.run(["audit", "--run", run.path, "--id", id])
            #expect(audit.status == 0, "\(id) is not served: \(audit.output)")
        }
    }
}

extension ServeTests {
    /// A client that hangs up while its request waits in the queue costs no more passes: the
    /// worker drops its texts before the next pass (`lethe_abandoned_texts_total`), and the server
    /// goes on answering others.
    @Test func aDisconnectedClientsQueuedTextsAreDropped() async throws {
        let server = try ServerProcess(run: try Self.freshRun(), arguments: ["--max-batch", "1", "--max-wait-ms", "0"])
        defer { server.stop() }
        let texts = (0..<1000).map { "\(Self.texts[$0 % Self.texts.count]) (\($0))" }
        let body = String(decoding: try JSONSerialization.data(withJSONObject: [
            "inputs": [["name": "text", "shape": [texts.count], "datatype": "BYTES", "data": texts]]]), as: UTF8.self)
        // Sent whole, then the connection is closed after 0.3 s, long before 1,000 passes end.
        let request = "POST /v2/models/lethe/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        let hungUp = try server.raw(request, readingAtMost: 0.3)
        #expect(!hungUp.closed && hungUp.text.isEmpty, "no answer yet: \(hungUp.text)")
        // The passes stop: the batch count settles, far below one pass per text.
        var passes = -1.0, metrics = ""
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(300))
            metrics = try await server.get("/metrics").text
            let now = Self.metric("lethe_batch_size_count", in: metrics) ?? 0
            if now == passes { break }
            passes = now
        }
        let dropped = Self.metric("lethe_abandoned_texts_total", in: metrics) ?? 0
        #expect(passes > 0 && passes < 500, "\(passes) passes for a request whose client left: \(metrics)")
        #expect(dropped > 0 && passes + dropped == Double(texts.count), "\(passes) passes, \(dropped) dropped")
        #expect(Self.metric("lethe_requests_total{endpoint=\"infer\",status=\"499\"}", in: metrics) == 1, "\(metrics)")
        // Others are still answered.
        let answer = try await server.infer([Self.texts[0]])
        #expect(answer.status == 200, "\(answer.text)")
        #expect(server.stop() == 0)
    }
}
