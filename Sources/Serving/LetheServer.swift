import Audit
import CommandSupport
import Forgetting
import Foundation
import HTTPTypes
import Kernels
import Hummingbird
import NIOCore
import Logging
import Models
import Planning
import ServiceLifecycle
import Store
import Training

/// `lethe serve`: the run's served ensemble over HTTP, with deletions applied while it answers.
///
/// Endpoints: the Open Inference Protocol v2 subset (`/v2/health/live`, `/v2/health/ready`,
/// `/v2/models/lethe`, `/v2/models/lethe/infer`), `/v1/forget`, `/v1/audit`, `/v1/status`,
/// `/metrics` (Prometheus) and `/` (the auditor page). Every inference answer names the
/// generation (ledger head) of the composition that produced it, in the body and in the
/// `Lethe-Generation` header.
public final class LetheServer: Sendable {
    public struct Configuration: Sendable {
        public var run: URL
        public var host: String
        public var port: Int
        public var threads: Int
        public var maxBatch: Int
        /// Most texts in one inference request (a larger one is answered 413): it bounds the
        /// work one request holds the server to, and a pass that holds the run lock.
        public var maxTexts: Int
        public var maxWait: TimeInterval
        /// Largest request body accepted; a larger one is answered 413.
        public var maxBodyBytes: Int
        /// How often served.json and the ledger are checked for outside changes.
        public var pollInterval: Duration
        /// The frozen products' arithmetic; the run's own when nil.
        public var precision: Precision?
        /// A pause between admitting an inference answer and writing it (nil: none). Tests use it
        /// to hold an answer in the window a deletion could otherwise overtake it in.
        public var answerDelay: Duration?

        public init(run: URL, host: String = "127.0.0.1", port: Int = 8080, threads: Int = 2, maxBatch: Int = 64,
                    maxTexts: Int = 1024, maxWait: TimeInterval = 0.002, maxBodyBytes: Int = 8 << 20, pollInterval: Duration = .milliseconds(5),
                    precision: Precision? = nil) {
            self.precision = precision
            self.run = run; self.host = host; self.port = port; self.threads = threads; self.maxBatch = maxBatch
            self.maxTexts = maxTexts; self.maxWait = maxWait; self.maxBodyBytes = maxBodyBytes; self.pollInterval = pollInterval
        }
    }

    static let generationHeader = HTTPField.Name("Lethe-Generation")!
    /// Most deletion requests in one /v1/forget call (each is a ledger entry for good).
    static let maxForgetRequests = 10_000
    /// How long /v1/forget waits for the run lock before answering 503 (nothing recorded).
    static let forgetLockWait: TimeInterval = 10
    static let modelName = "lethe"

    let configuration: Configuration
    let layout: RunLayout
    let plan: Plan
    /// The precision the server answers in (`--precision`, or the run's own), in /v1/status.
    let precision: Precision
    let store: SnapshotStore
    let batcher: InferenceBatcher
    /// Orders answers before this server's own deletions' acknowledgments.
    let answers = AnswerGate()
    let metrics: ServerMetrics
    let logger: Logger
    let groups: GroupIndex

    /// Loads the plan, the base encoder and the served composition (recovering the run first);
    /// refuses a run that serves nothing, as `lethe predict` does. A run whose every shard is
    /// dead is served: inference answers 503 until a retrain, the rest answers.
    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        layout = RunLayout(directory: configuration.run)
        plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        let encoder = try settings.loadBaseEncoder(run: layout.directory, precision: configuration.precision)
        precision = encoder.precision
        metrics = ServerMetrics()
        store = SnapshotStore(loader: SnapshotLoader(layout: layout, labels: plan.labels, encoder: encoder), metrics: metrics)
        groups = GroupIndex(plan: plan, run: layout.directory)
        let first = try store.loader.load(number: 1)
        store.install(first)
        if first.composition.liveShards.isEmpty {
            let reason = RunStateError.everyShardDead(run: layout.directory.path).description
            logger.warning("\(reason) Until then inference answers 503; status, audit and forget answer.")
        }
        batcher = InferenceBatcher(store: store, maxBatch: configuration.maxBatch, maxWait: configuration.maxWait,
                                   threads: configuration.threads, metrics: metrics)
    }

    static let idleTimeout = TimeAmount.seconds(15)
    /// A request must arrive whole within this long of its first line.
    static let receiveDeadline = TimeAmount.seconds(60)

    /// Serves until SIGTERM or SIGINT, then drains the requests in flight and returns.
    /// `onListening` receives the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        // HEAD is answered for every GET path: the GET's status and headers, without the body.
        let router = Router(context: ServingRequestContext.self, options: .autoGenerateHeadEndpoints)
        addRoutes(to: router)
        // A connection that sends nothing for this long is closed, a request half sent included:
        // a stalled client neither holds a connection forever nor keeps SIGTERM from finishing.
        let app = Application(
            router: router,
            server: LetheHTTP1Channel.builder(idleTimeout: Self.idleTimeout, receiveDeadline: Self.receiveDeadline,
                                              bodyBudget: max(256 << 20, 2 * configuration.maxBodyBytes),
                                              maxBodyBytes: configuration.maxBodyBytes,
                                              servedVersion: { [store] in store.current?.generation.sequenceNumber }),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "lethe"),
            services: [CompositionWatcher(store: store, layout: layout, interval: configuration.pollInterval,
                                          logger: logger)],
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch let error as IOError where error.errnoCode == EADDRNOTAVAIL {
            batcher.stop()
            throw ListenError(description: "--host \(configuration.host): no network interface of this machine has that "
                              + "address; give one it has (127.0.0.1, 0.0.0.0 for all, ::1)")
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES {
            batcher.stop()
            let address = "\(configuration.host):\(configuration.port)"
            throw ListenError(description: error.errnoCode == EADDRINUSE
                ? "--port \(configuration.port): \(address) is in use (another server?); choose another --port, or "
                    + "--port 0 for any free port"
                : "--port \(configuration.port): listening on \(address) is not permitted (ports below 1024 need "
                    + "privileges); choose a port from 1024 up, or --port 0")
        }
        batcher.stop()
    }

    /// The server could not listen where it was asked to.
    public struct ListenError: Error, CustomStringConvertible { public let description: String }

    // MARK: - Routes

    /// Every path the server answers and its method.
    static let routes: [String: HTTPRequest.Method] = [
        "/v2": .get, "/v2/health/live": .get, "/v2/health/ready": .get, "/v2/models/lethe": .get,
        "/v2/models/lethe/ready": .get, "/v2/models/lethe/infer": .post,
        "/v1/forget": .post, "/v1/audit": .get, "/v1/status": .get, "/metrics": .get, "/": .get,
        "/v2/models/lethe/versions/{version}": .get, "/v2/models/lethe/versions/{version}/ready": .get,
        "/v2/models/lethe/versions/{version}/infer": .post]

    /// The method `path` is answered with, matching `{…}` segments of the route table to any one
    /// segment; nil for a path the server does not answer.
    static func method(answering path: String) -> HTTPRequest.Method? {
        if let method = routes[path] { return method }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return routes.first { route, _ in
            let pattern = route.split(separator: "/", omittingEmptySubsequences: false)
            return pattern.count == segments.count && zip(pattern, segments).allSatisfy { p, s in
                p == s || (p.hasPrefix("{") && p.hasSuffix("}") && !s.isEmpty)
            }
        }?.value
    }

    func addRoutes(to router: Router<ServingRequestContext>) {
        router.add(middleware: FreshAnswers())
        router.add(middleware: UnknownRouteAnswer())
        router.get("/v2/health/live") { _, _ in await self.measured("live") { JSONResponse.object(["live": true]) } }
        // The server's readiness is its one model's (Open Inference Protocol v2 asks both).
        for path in ["/v2/health/ready", "/v2/models/lethe/ready"] {
            router.get(RouterPath(path)) { _, _ in await self.measured("ready") { self.readiness() } }
        }
        router.get("/v2") { _, _ in
            await self.measured("server_metadata") {
                JSONResponse.object(["name": "lethe", "version": letheVersion, "extensions": [String]()])
            }
        }
        router.get("/v2/models/lethe") { _, _ in await self.measured("metadata") { try self.metadata() } }
        router.post("/v2/models/lethe/infer") { request, context in
            await self.measured("infer") { try await self.infer(request, context: context) }
        }
        // A model's version is the generation that serves it. Only the current one is served:
        // an older generation may hold models that saw examples deleted since.
        router.get("/v2/models/lethe/versions/{version}") { _, context in
            await self.measured("metadata") {
                _ = try self.servedVersion(context.parameters.get("version"))
                return try self.metadata()
            }
        }
        router.get("/v2/models/lethe/versions/{version}/ready") { _, context in
            await self.measured("ready") {
                _ = try self.servedVersion(context.parameters.get("version"))
                return self.readiness()
            }
        }
        router.post("/v2/models/lethe/versions/{version}/infer") { request, context in
            await self.measured("infer") {
                let version = try self.servedVersion(context.parameters.get("version"))
                return try await self.infer(request, context: context, version: version)
            }
        }
        router.post("/v1/forget") { request, context in
            await self.measured("forget") { try await self.forget(request, context: context) }
        }
        router.get("/v1/audit") { request, _ in
            await self.measured("audit") { try await self.audit(request) }
        }
        router.get("/v1/status") { _, _ in await self.measured("status") { try await self.status() } }
        router.get("/metrics") { _, _ in
            await self.measured("metrics") {
                JSONResponse.text(self.metrics.text(), contentType: "text/plain; version=0.0.4")
            }
        }
        router.get("/") { request, _ in await self.measured("page") { try await self.page(request) } }
    }

    /// Runs a handler, turning every thrown error into a JSON error answer and recording the
    /// request's latency and status.
    func measured(_ endpoint: String, _ body: () async throws -> Response) async -> Response {
        let start = ContinuousClock.now
        let response: Response
        do { response = try await body() } catch { response = Self.errorResponse(error) }
        metrics.request(endpoint: endpoint, status: Int(response.status.code),
                        seconds: (ContinuousClock.now - start).seconds)
        return response
    }

    /// Every answer describes the run as it is now (what is served, what is forgotten): no cache
    /// may keep it (`Cache-Control: no-store`), and no browser may read it as another type than
    /// it says (`X-Content-Type-Options: nosniff`).
    struct FreshAnswers: RouterMiddleware {
        func handle(_ request: Request, context: ServingRequestContext,
                    next: (Request, ServingRequestContext) async throws -> Response) async throws -> Response {
            var response = try await next(request, context)
            response.headers[.cacheControl] = "no-store"
            response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
            return response
        }
    }

    /// An unknown path is 404 and a known one asked with another method 405 (with `Allow`),
    /// both with a JSON error body like every other refusal.
    struct UnknownRouteAnswer: RouterMiddleware {
        func handle(_ request: Request, context: ServingRequestContext,
                    next: (Request, ServingRequestContext) async throws -> Response) async throws -> Response {
            if request.headers[HTTPField.Name(RequestReceiveLimits.missingHostMarker)!] != nil {
                return JSONResponse.error("an HTTP/1.1 request must carry a Host header", status: .badRequest)
            }
            do {
                return try await next(request, context)
            } catch let error as HTTPError where error.status == .notFound {
                let path = request.uri.path
                guard let method = LetheServer.method(answering: path) else {
                    let known = LetheServer.routes.keys.sorted().joined(separator: ", ")
                    return JSONResponse.error("no such path: \(path) (the server answers \(known))", status: .notFound)
                }
                // Every GET path also answers HEAD.
                let allowed = method == .get ? "GET, HEAD" : method.rawValue
                var response = JSONResponse.error("\(path) answers \(allowed) only", status: .methodNotAllowed)
                response.headers[.allow] = allowed
                return response
            }
        }
    }

    static func errorResponse(_ error: Error) -> Response {
        switch error {
        case let unfinished as AcceptedButUnfinished:
            return JSONResponse.object(["error": unfinished.description, "accepted": true,
                                        "ledger_sequence": unfinished.ledgerSequence], status: .internalServerError)
        case let bad as BadRequest: return JSONResponse.error(bad.message, status: bad.status)
        case let refusal as Refusal: return JSONResponse.error(refusal.description, status: .serviceUnavailable)
        case let forgetting as ForgettingError:
            // What the request asks cannot be done on this run (409), or the request is wrong (400);
            // a damaged run stays a server error.
            switch forgetting {
            case .fullRunCannotForget: return JSONResponse.error(forgetting.description, status: .conflict)
            case .runBusy: return JSONResponse.error(forgetting.description, status: .serviceUnavailable)
            case .invalidRequest, .malformedRequest: return JSONResponse.error(forgetting.description, status: .badRequest)
            default: return JSONResponse.error(forgetting.description, status: .internalServerError)
            }
        case let audit as AuditError:
            if case .unavailable = audit { return JSONResponse.error(audit.description, status: .internalServerError) }
            return JSONResponse.error(audit.description, status: .notFound)
        case is CancellationError:
            // The client hung up before its texts ran (never sent; the metrics count it as 499,
            // "client closed request", as nginx logs it).
            return JSONResponse.error("the client disconnected before the answer", status: .init(code: 499))
        default:
            return JSONResponse.error("\(error)", status: .internalServerError)
        }
    }

    // MARK: - Inference

    func readiness() -> Response {
        let state = store.readiness
        var body: [String: Any] = ["ready": state.ready]
        if let reason = state.reason { body["reason"] = reason }
        return JSONResponse.object(body, status: state.ready ? .ok : .serviceUnavailable)
    }

    /// The generation a `/versions/{version}` path names, if it is the one served: an earlier one
    /// was replaced (410), any other is unknown (404).
    func servedVersion(_ text: String?) throws -> Int64 {
        let current = store.current?.generation.sequenceNumber
        let served = current.map { "this server serves only version \($0), the current generation" }
            ?? "no composition is loaded"
        // Only the canonical spelling names a version ("7", not "07" or "+7"): one resource, one path.
        guard let text, let version = Int64(text), version >= 0, String(version) == text else {
            throw BadRequest("no such model version: \(text ?? "") (versions are generation numbers; \(served))",
                             status: .notFound)
        }
        guard let current, version == current else {
            if let current, version < current {
                throw BadRequest(Self.replacedVersion(version, current: current), status: .gone)
            }
            throw BadRequest("no such model version: \(version) (\(served))", status: .notFound)
        }
        return version
    }

    static func replacedVersion(_ version: Int64, current: Int64) -> String {
        "version \(version) was replaced by version \(current) (a deletion, a retrain or a training published "
            + "other models); "
            + "it is no longer served: send to /v2/models/lethe/infer for the current version"
    }

    func metadata() throws -> Response {
        // When inference is refused the loaded snapshot is not the model: describing its shards
        // would contradict the page and /v1/status, which show what is published.
        let state = store.readiness
        guard let snapshot = store.current, !state.refusesInference else {
            throw Refusal.unavailable(state.reason ?? "no composition loaded")
        }
        let composition = snapshot.composition
        return JSONResponse.object([
            "name": Self.modelName, "versions": ["\(snapshot.generation.sequenceNumber)"], "platform": "lethe",
            "inputs": [["name": "text", "datatype": "BYTES", "shape": [-1]]],
            "outputs": [["name": "label", "datatype": "BYTES", "shape": [-1]],
                        ["name": "probabilities", "datatype": "FP32", "shape": [-1, snapshot.labels.count]]],
            "parameters": [
                "labels": snapshot.labels, "shards": plan.shardCount,
                "live_shards": composition.liveShards.map(\.shard),
                "dead_shards": composition.shards.filter(\.isDead).map(\.shard),
                "generation": snapshot.generationJSON,
            ] as [String: Any],
        ], headers: Self.generationHeaders(snapshot))
    }

    /// Answers an inference request; with `version`, only from that generation (410 if a publish
    /// replaced it before the answer).
    func infer(_ request: Request, context: ServingRequestContext, version: Int64? = nil) async throws -> Response {
        let body = try await Self.collect(request, limit: configuration.maxBodyBytes)
        let parsed = try InferRequest.parse(body)
        guard parsed.texts.count <= configuration.maxTexts else {
            throw BadRequest("the request holds \(parsed.texts.count) texts; this server answers at most "
                             + "\(configuration.maxTexts) per request (--max-texts): split it", status: .contentTooLarge)
        }
        let (answer, ticket) = try await admittedAnswer(parsed.texts, context: context)
        let snapshot = answer.snapshot
        if let version, snapshot.generation.sequenceNumber != version {
            throw BadRequest(Self.replacedVersion(version, current: snapshot.generation.sequenceNumber), status: .gone)
        }
        let k = snapshot.labels.count
        var labels: [String] = []
        var probabilities: [Double] = []
        for row in answer.logits {
            guard row.count == k else { throw Refusal.unavailable(RunStateError.everyShardDead(run: layout.directory.path).description) }
            labels.append(snapshot.labels[ClassificationMetrics.argmax(row)])
            probabilities += ClassificationMetrics.softmax(row).map(Double.init)
        }
        let answerBody = InferAnswer(
            modelName: Self.modelName, modelVersion: "\(snapshot.generation.sequenceNumber)", id: parsed.id,
            generation: .init(sequence: snapshot.generation.sequenceNumber, hash: snapshot.generation.hash,
                              snapshot: snapshot.number),
            outputs: [.init(name: "label", datatype: "BYTES", shape: [labels.count], data: .strings(labels)),
                      .init(name: "probabilities", datatype: "FP32", shape: [labels.count, k],
                            data: .numbers(probabilities))])
        return Self.answer(try JSONResponse.encodedBytes(answerBody), headers: Self.generationHeaders(snapshot),
                           releasing: ticket, writtenTo: context.channel, after: configuration.answerDelay)
    }

    /// The request's answer, admitted by the answer gate: computed again when a deletion this
    /// server (or another process) accepted after the pass supersedes it, relabelled without a
    /// pass when that deletion changed no served model.
    func admittedAnswer(_ texts: [String], context: ServingRequestContext) async throws
        -> (InferenceBatcher.Answer, AnswerGate.Ticket) {
        var answer = try await batcher.infer(texts, isConnected: context.isConnected)
        let store = self.store
        for _ in 0..<5 {
            let snapshot = answer.snapshot
            if let ticket = answers.admit(generation: snapshot.generation.sequenceNumber, channel: context.channel,
                                          isSuperseded: { store.isSuperseded(snapshot) }) {
                return (answer, ticket)
            }
            let next = try await Blocking.run { try store.fresh() }
            answer = next.servesTheSameModels(as: snapshot)
                ? InferenceBatcher.Answer(logits: answer.logits, snapshot: next)
                : try await batcher.infer(texts, isConnected: context.isConnected)
        }
        throw Refusal.unavailable("deletions kept arriving faster than this request could be answered; try again")
    }

    /// An answer whose body is written in pieces of `chunkBytes`, each waited for until it is in
    /// the kernel's socket buffer (`FlushBarrier`): the ticket records that progress (a client
    /// that reads, however large its answer, is never taken for one that stopped reading) and is
    /// released once the last byte is in.
    static func answer(_ bytes: [UInt8], headers: HTTPFields, releasing ticket: AnswerGate.Ticket,
                       writtenTo channel: any Channel, after delay: Duration?) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        let body = ResponseBody(contentLength: bytes.count) { writer in
            if let delay { try await Task.sleep(for: delay) }
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunkBytes)
                try await writer.write(ByteBuffer(bytes: bytes[offset..<end]))
                try await FlushBarrier.written(on: channel)
                ticket.progressed()
                offset = end
            }
            try await writer.finish(nil)
            ticket.release()
        }
        return Response(status: .ok, headers: fields, body: body)
    }

    /// The piece of an answer's body written and waited for at a time.
    static let chunkBytes = 64 << 10

    static func generationHeaders(_ snapshot: ServedSnapshot) -> HTTPFields {
        var headers = HTTPFields()
        headers[generationHeader] = "\(snapshot.generation.sequenceNumber)"
        return headers
    }

    static func collect(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw BadRequest("the body is \(length) bytes; this server accepts at most \(limit)", status: .contentTooLarge)
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw BadRequest("the body is larger than \(limit) bytes, the most this server accepts", status: .contentTooLarge)
        } catch {
            // The client's bytes could not be read as an HTTP body (a malformed chunk, say).
            throw BadRequest("the request body could not be read: \(error)")
        }
    }

    // MARK: - Forgetting

    func forget(_ request: Request, context: ServingRequestContext) async throws -> Response {
        let body = try await Self.collect(request, limit: configuration.maxBodyBytes)
        let contentType = request.headers[.contentType] ?? ""
        let requests = try ForgetBody.parse(body, ndjson: contentType.lowercased().hasPrefix("application/x-ndjson"))
        guard requests.count <= Self.maxForgetRequests else {
            throw BadRequest("the body holds \(requests.count) requests; this server takes at most "
                             + "\(Self.maxForgetRequests) per call: split it, or give the log to `lethe forget --log`",
                             status: .contentTooLarge)
        }
        let needsGroups = requests.contains { if case .group = $0.target { return true } else { return false } }
        let store = self.store, layout = self.layout, groups = self.groups, metrics = self.metrics, batcher = self.batcher
        let work = { @Sendable () throws -> (ForgetReceipt, ServedSnapshot?) in
            let resolver = needsGroups ? try groups.resolver() : nil
            var acceptedAt: Int64?
            let (receipt, snapshot): (ForgetReceipt, ServedSnapshot?)
            do {
                (receipt, snapshot) = try store.publishing {
                    try Forgetter(run: layout.directory).forget(requests, groups: resolver,
                                                                 nowMilliseconds: RunAccess.nowMilliseconds(),
                                                                 lockWait: Self.forgetLockWait,
                                                                 accepted: { acceptedAt = $0.sequenceNumber })
                }
            } catch ForgettingError.runBusy(let run, let seconds) where batcher.textsOfPassHoldingRunLock > 0 {
                throw Refusal.unavailable("\(run): this server holds the run lock itself, for a pass that deletions "
                    + "interrupted twice (so that further deletions cannot interrupt it again); nothing was recorded in "
                    + "\(Int(seconds)) s of waiting: send the request again once that pass is done (smaller inference "
                    + "requests, --max-texts, keep such passes short)")
            } catch {
                // Once recorded, the requests are carried out even though this call failed: the
                // answer says so, so a client does not take the deletion for refused.
                guard let acceptedAt else { throw error }
                throw AcceptedButUnfinished(count: requests.count, ledgerSequence: acceptedAt, reason: "\(error)")
            }
            metrics.forgot(requests: requests.count)
            return (receipt, snapshot)
        }
        // Whatever the outcome once the deletions are recorded, answers from older generations
        // already on their way out are written (or cut) before this call answers.
        let (receipt, snapshot): (ForgetReceipt, ServedSnapshot?)
        do { (receipt, snapshot) = try await Blocking.run(work) } catch let unfinished as AcceptedButUnfinished {
            await answers.drain(below: unfinished.ledgerSequence)
            throw unfinished
        }
        let accepted = receipt.requests.map(\.ledgerSequence).max() ?? 0
        guard let snapshot, snapshot.generation.sequenceNumber >= accepted else {
            // Durable and published, but the server could not load what was published: it
            // refuses to answer from the old composition (readiness says why).
            await answers.drain(below: accepted)
            throw Refusal.unavailable("the deletion is recorded and published, but this server could not load the new "
                                      + "composition: \(store.readiness.reason ?? "unknown")")
        }
        // Answers from the models these deletions replaced, admitted before they were committed,
        // are written before the acknowledgment.
        let closed = await answers.drain(below: snapshot.generation.sequenceNumber)
        if closed > 0 {
            logger.warning("closed connections whose answers from replaced models were not read",
                           metadata: ["connections": "\(closed)"])
        }
        logger.info("forget accepted", metadata: ["requests": "\(requests.count)",
                                                  "generation": "\(snapshot.generation.sequenceNumber)"])
        return JSONResponse.raw(Array(try receipt.json().utf8), headers: Self.generationHeaders(snapshot))
    }

    // MARK: - Audit and status

    func audit(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        // One value per key: a second ?id= would otherwise be dropped without a word.
        for key in ["id", "group"] where query.getAll(key).count > 1 {
            throw BadRequest("?\(key)= is given \(query.getAll(key).count) times; audit one at a time")
        }
        let id = query["id"].map(String.init), group = query["group"].map(String.init)
        guard (id == nil) != (group == nil), !(id ?? group ?? "").isEmpty else {
            throw BadRequest("give exactly one of ?id=… or ?group=…")
        }
        let run = layout.directory, groups = self.groups
        let data = try await Blocking.run { () throws -> Data in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            if let id { return try encoder.encode(try ExampleAudit.audit(run: run, id: id)) }
            let ids = try groups.members(of: group!)
            if ids.isEmpty {
                throw AuditError.unknownGroup(group: group!, requests: try ExampleAudit.requests(matching: .group(group!),
                                                                                                 run: run))
            }
            return try encoder.encode(try ids.map { try ExampleAudit.audit(run: run, id: $0) })
        }
        return JSONResponse.raw(Array(data))
    }

    func status() async throws -> Response {
        let layout = self.layout
        let report = try await Blocking.run { try RunStatusReport.load(layout: layout, runName: layout.directory.path) }
        guard var object = try JSONSerialization.jsonObject(with: try report.json()) as? [String: Any] else {
            throw Refusal.unavailable("the status report is not a JSON object")
        }
        object["server"] = serverState()
        return JSONResponse.object(object)
    }

    /// The server's own state: readiness and why, the served generation, swaps.
    func serverState() -> [String: Any] {
        let state = store.readiness
        var server: [String: Any] = ["ready": state.ready, "refuses_inference": state.refusesInference,
                                     "threads": configuration.threads, "max_batch": configuration.maxBatch,
                                     "precision": precision.rawValue]
        if let reason = state.reason { server["reason"] = reason }
        if let snapshot = store.current {
            server["generation"] = snapshot.generationJSON
            server["live_shards"] = snapshot.composition.liveShards.map(\.shard)
            server["load_seconds"] = snapshot.loadSeconds
        }
        return server
    }
}

/// A request the client must fix: 4xx with a message.
struct BadRequest: Error {
    let message: String
    let status: HTTPResponse.Status
    init(_ message: String, status: HTTPResponse.Status = .badRequest) { self.message = message; self.status = status }
}

/// A /v1/forget whose requests were recorded in the ledger (accepted: durable, and binding on
/// every later command) before carrying them out failed.
struct AcceptedButUnfinished: Error, CustomStringConvertible {
    let count: Int
    let ledgerSequence: Int64
    let reason: String
    var description: String {
        "\(reason)\nThe \(count) request(s) were accepted (the last at ledger #\(ledgerSequence)) and are not lost: no answer comes "
            + "from a model that saw them (inference is refused until they are published), and this server carries them "
            + "out within seconds once the cause is fixed (`lethe forget --resume` does it now)."
    }
}

/// Runs blocking work (model passes, file reads, the run lock) off Swift's cooperative threads.
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}

/// Group → example ids, from the dataset the plan was made from (read once, on first use, and
/// refused if its bytes differ from the planned file's).
final class GroupIndex: @unchecked Sendable {
    private let plan: Plan
    private let run: URL
    private let lock = NSLock()
    private var members: [String: [String]]?

    init(plan: Plan, run: URL) { self.plan = plan; self.run = run }

    func members(of group: String) throws -> [String] { try index()[group] ?? [] }

    func resolver() throws -> Forgetter.GroupResolver {
        let index = try index()
        return { index[$0] ?? [] }
    }

    private func index() throws -> [String: [String]] {
        try lock.withLock {
            if let members { return members }
            let url = plan.datasetURL(run: run)
            let path = url.path
            // The run's file, not the client's request: a missing or damaged dataset is 503.
            let dataset: Dataset
            do { dataset = try Dataset.read(from: url, source: path) } catch {
                throw Refusal.unavailable("groups cannot be resolved: \(error)")
            }
            guard dataset.sha256 == plan.datasetSHA256 else {
                throw Refusal.unavailable("\(path) is not the dataset this run was planned from; groups cannot be resolved")
            }
            var index: [String: [String]] = [:]
            for example in dataset.examples {
                if let group = example.group { index[group, default: []].append(example.id) }
            }
            members = index
            return index
        }
    }
}

