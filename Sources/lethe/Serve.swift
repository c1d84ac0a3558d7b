import ArgumentParser
import CommandSupport
import Foundation
import Logging
import Serving

/// `lethe serve`: the run's served ensemble over HTTP, forgetting while it answers.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a run's ensemble over HTTP: predictions, deletions, audits and status, with hot swap.",
        discussion: """
            Endpoints (JSON; a bad request gets 4xx and {"error": …}; every GET path answers HEAD too):
              GET  /v2                                   server name and version
              GET  /v2/health/live, /v2/health/ready     ready: a composition is loaded, a shard is alive
                   (and /v2/models/lethe/ready)          and every accepted deletion is in it
              GET  /v2/models/lethe                      labels, shards, generation (503 while inference
                                                         is refused)
              POST /v2/models/lethe/infer                Open Inference Protocol v2: a BYTES input "text"
                                                         → outputs "label" (BYTES), "probabilities" (FP32 [n, classes])
              …/lethe/versions/V, …/versions/V/ready,    the same for version V, the generation: only the
              POST …/lethe/versions/V/infer              current one is served (410 once replaced)
              POST /v1/forget                            {"ids": […]} or {"groups": […]} (optional "request_id"),
                                                         or JSON Lines as `lethe forget --log` reads
                                                         (Content-Type: application/x-ndjson)
              GET  /v1/audit?id=… | ?group=…             what `lethe audit --json` says
              GET  /v1/status                            what `lethe status --json` says, plus "server"
              GET  /metrics                              Prometheus text format
              GET  /                                     the auditor page (served shards, ledger, audit form)

            Every inference answer carries the generation — the ledger head of the composition that \
            answered — in its body and in the Lethe-Generation header. /v1/forget answers 200 with the \
            receipt only once the deletion is durable in the ledger, the new composition is published \
            and this server answers from it (ids or groups the plan does not hold are recorded too and \
            listed in the receipt's unknown_ids or unknown_groups, still 200, where `lethe forget` exits \
            5). A composition \
            published by another process (`lethe \
            forget`, `retrain`, `train`) is picked up within --poll-ms (the check runs when inotify \
            reports a change in the run directory, and at least every 250 ms on filesystems that raise \
            no events), and a request that starts after the publish never gets the composition it \
            replaced. No answer comes from a composition older than a deletion accepted by another \
            process: a batch waits for that deletion's publish (at most 2 s, then 503), and a batch \
            whose pass saw a deletion accepted runs again on the new composition if that deletion \
            changed a served model. When deletions keep arriving faster than passes end, a pass's third \
            attempt holds the run lock shared, so a forget waits for that pass and every request is \
            answered; the rest of a large request restarted twice runs as one such pass, which a forget \
            waits for up to 10 s (then 503, naming this server as the holder; --max-texts bounds it). \
            /v1/forget acknowledges only after every answer from a model it replaced that was already \
            on its way out is in the kernel's socket buffer (a connection that takes none of it for 2 s \
            is closed instead; a large answer read slowly can delay the acknowledgment up to 60 s). \
            If a published \
            composition cannot be loaded, the old one keeps answering unless a deletion newer than it \
            was accepted; then inference answers 503 and /v1/status says why.

            Concurrent requests are batched, up to --max-batch texts per pass. Once a request is queued, \
            the server waits for the clients the previous pass answered to send again (as many texts \
            as that pass held, beyond those already queued), at most --max-wait-ms. The frozen layers \
            below the lowest adapter run once per batch for all shards. A request of more texts than \
            --max-batch spans several passes, with other requests' passes between them (all its \
            rows from the same models); if its client closes the connection (or half-closes it, as \
            nginx counts it) before it is done, the rest is dropped before its next pass (499 in \
            /metrics, and lethe_abandoned_texts_total). A request holds at most --max-texts texts \
            (413 beyond), and /v1/forget at most 10,000 requests (larger logs go to `lethe forget --log`).

            When listening, one JSON line goes to stdout: {"event": "listening", "host": …, "port": …}. \
            Logs go to stderr. SIGTERM or SIGINT stops accepting, finishes the requests in flight and \
            exits 0. A connection that sends nothing for 15 s is closed, a request half sent included, \
            and a request's headers must all arrive within 15 s; the whole request must arrive within \
            60 s of its first line, and the bodies still arriving on \
            all connections together may hold at most 256 MiB (or twice --max-body-mb): a connection \
            past either limit is closed.

            Examples:
              lethe serve --run Checkpoints/runs/demo --port 8080
              curl -s localhost:8080/v2/models/lethe/infer -d '{"inputs": [{"name": "text", "shape": [1], \
            "datatype": "BYTES", "data": ["Shares rise as profits beat forecasts"]}]}'
              curl -s localhost:8080/v1/forget -d '{"ids": ["business/001"]}'

            \(ExitStatus.help())
            """)

    @OptionGroup var runOptions: RunOptions
    @Option(help: "Address to listen on. /v1/forget has no authentication of its own: on an address others reach, put an authenticating proxy in front.") var host = "127.0.0.1"
    @Option(help: "Port, \(Self.portBounds.text) (0: any free port, printed when listening).") var port = 8080
    @Option(help: "Threads of each ensemble pass, \(CommonBounds.threads.text).")
    var threads = CommonBounds.defaultThreads
    @Option(help: "Most texts in one ensemble pass, \(Self.batchBounds.text).") var maxBatch = 64
    @Option(help: "Most texts in one inference request, \(Self.textsBounds.text); a request with more is answered 413.")
    var maxTexts = 1024
    @Option(help: "Longest wait for more requests once one is queued (it ends sooner once the clients the previous pass answered have sent again), in ms, \(Self.waitBounds.text).")
    var maxWaitMs = 2.0
    @Option(help: "Interval of the check for compositions published by other processes, in ms, \(Self.pollBounds.text).")
    var pollMs = 5
    @Option(help: "Largest request body in MiB, \(Self.bodyBounds.text); a larger one is answered 413.")
    var maxBodyMb = 8
    @OptionGroup var precisionOptions: InferencePrecisionOptions
    /// Holds each inference answer this long between its admission and its write (tests widen
    /// the window a deletion could otherwise overtake an answer in).
    @Option(help: .hidden) var testAnswerDelayMs: Int?

    static let portBounds = OptionBounds(0...65535)
    static let batchBounds = OptionBounds(1...4096)
    static let textsBounds = OptionBounds(1...65536)
    static let waitBounds = OptionBounds(0.0...1000.0)
    static let pollBounds = OptionBounds(1...1000)
    static let bodyBounds = OptionBounds(1...1024)

    func validate() throws {
        try Self.portBounds.check(port, option: "--port")
        try CommonBounds.threads.check(threads, option: "--threads")
        try Self.batchBounds.check(maxBatch, option: "--max-batch")
        try Self.textsBounds.check(maxTexts, option: "--max-texts")
        try Self.waitBounds.check(maxWaitMs, option: "--max-wait-ms")
        try Self.pollBounds.check(pollMs, option: "--poll-ms")
        try Self.bodyBounds.check(maxBodyMb, option: "--max-body-mb")
        // An address to listen on: a numeric IPv4 or IPv6 address, or a name this machine
        // resolves (localhost), refused before the run is loaded.
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard !host.isEmpty, getaddrinfo(host, nil, &hints, &found) == 0 else {
            throw ValidationError("--host \(host.debugDescription): not an address this machine can listen on; give an "
                                  + "IP address (127.0.0.1, 0.0.0.0, ::1) or a name it resolves.")
        }
        freeaddrinfo(found)
    }

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "lethe.serve")
        var configuration = LetheServer.Configuration(
            run: URL(fileURLWithPath: runOptions.runDirectory), host: host, port: port, threads: threads,
            maxBatch: maxBatch, maxTexts: maxTexts, maxWait: maxWaitMs / 1000, maxBodyBytes: maxBodyMb << 20,
            pollInterval: .milliseconds(pollMs), precision: precisionOptions.precision)
        configuration.answerDelay = testAnswerDelayMs.map { .milliseconds(max($0, 0)) }
        let server = try LetheServer(configuration: configuration, logger: logger)
        let host = self.host
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                try await server.run { port in
                    writeLine(#"{"event":"listening","host":"\#(host)","port":\#(port)}"#)
                }
            } catch {
                outcome.set(error)
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }
}

/// The server task's error, handed to the waiting main thread.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    func set(_ error: Error) { lock.withLock { stored = error } }
    var error: Error? { lock.withLock { stored } }
}
