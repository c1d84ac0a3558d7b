import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Hummingbird's HTTP/1 channel with one correction: an HTTP/1.0 request that does not ask for
/// keep-alive gets its connection closed after the answer, as HTTP/1.0 expects.
///
/// Hummingbird converts requests to swift-http-types, which carry no protocol version, and then
/// keeps a connection open unless the request says `Connection: close`. An HTTP/1.0 client
/// that reads to end of stream (the default for HTTP/1.0) would wait for the idle timeout. A
/// handler between NIO's request decoder and Hummingbird's conversion, where the version is
/// still known, adds the `Connection: close` that HTTP/1.0 implies.
struct LetheHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value

    let inner: HTTP1Channel
    let receiveDeadline: TimeAmount
    let bodyBudget: Int
    let maxBodyBytes: Int
    let servedVersion: @Sendable () -> Int64?

    var responder: HTTPChannelHandler.Responder { inner.responder }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let malformed = MalformedRequestAnswer()
            try operations.addHandler(malformed, position: .after(decoder))
            let http10 = HTTP10ClosesByDefault()
            try operations.addHandler(http10, position: .after(malformed))
            let expect = ContinueWhenExpected(maxBodyBytes: maxBodyBytes, servedVersion: servedVersion)
            try operations.addHandler(expect, position: .after(http10))
            try operations.addHandler(RequestReceiveLimits(deadline: receiveDeadline, budget: bodyBudget),
                                      position: .after(expect))
            try operations.addHandler(FlushBarrier(), position: .first)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }

    static func builder(idleTimeout: TimeAmount, receiveDeadline: TimeAmount, bodyBudget: Int,
                        maxBodyBytes: Int, servedVersion: @escaping @Sendable () -> Int64?) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            LetheHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)),
                              receiveDeadline: receiveDeadline, bodyBudget: bodyBudget, maxBodyBytes: maxBodyBytes,
                              servedVersion: servedVersion)
        }
    }
}

/// Requests the server answers with a 400 and a JSON body before they reach Hummingbird, closing
/// the connection after it: one NIO cannot parse (a header line without a colon, a
/// Content-Length that is no number, bytes that are not HTTP), where NIO's own handler answers
/// with an empty body; and a CONNECT (the server is no proxy). NIO writes every answer to a
/// CONNECT without a body or length (a 2xx would open a tunnel), so that 400 has none, and the
/// close ends it; Hummingbird's 404 kept the connection open, leaving the client waiting. A bad
/// request that follows others on the connection (pipelined) is answered after their answers,
/// which are never cut off: a forget that ran is always acknowledged.
final class MalformedRequestAnswer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests received whole, and answers ended. Answers come in request order, so once as
    /// many answers have ended as requests were whole, every whole request is answered (a
    /// request cut short by the bad bytes never will be: it is not waited for).
    private var wholeRequests = 0, answersEnded = 0
    /// The refusal waiting for those answers, once a bad request has arrived.
    private var refusal: String?
    /// True once the refusal is written: what else arrives is dropped until the close.
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard refusal == nil, !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let head) where head.method == .CONNECT:
            refuse(context, "CONNECT is not answered: this server is no proxy")
            return
        case .end: wholeRequests += 1
        default: break
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, refusal == nil, !refused else {
            context.fireErrorCaught(error)
            return
        }
        refuse(context, "malformed HTTP request (\(parserError)): send a request line, then one 'Name: value' line "
               + "per header")
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        answersEnded += 1
        context.write(data, promise: promise)
        if answersEnded >= wholeRequests, let refusal, !refused { writeRefusal(context, refusal) }
    }

    /// Answers 400 {"error": reason} once every earlier whole request is answered, then closes.
    private func refuse(_ context: ChannelHandlerContext, _ reason: String) {
        refusal = reason
        if answersEnded >= wholeRequests { writeRefusal(context, reason) }
    }

    private func writeRefusal(_ context: ChannelHandlerContext, _ reason: String) {
        refused = true
        let encoded = try? JSONSerialization.data(withJSONObject: ["error": reason], options: [.withoutEscapingSlashes])
        let message = encoded.map { String(decoding: $0, as: UTF8.self) } ?? #"{"error":"bad request"}"#
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(message.utf8.count))
        headers.add(name: "connection", value: "close")
        headers.add(name: "server", value: "lethe")
        // What every answer of the server carries (`LetheServer.FreshAnswers`).
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "x-content-type-options", value: "nosniff")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))),
                      promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: message)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// HTTP/1.0's connection rules, which the conversion to swift-http-types drops: a request
/// without `Connection: keep-alive` is marked `Connection: close`, so the connection closes after
/// its answer. Every answer then states what happens to the connection when it differs from
/// HTTP/1.1's default: `Connection: close` when it closes, `Connection: keep-alive` to an
/// HTTP/1.0 client that asked for it (it would otherwise expect the server to close).
final class HTTP10ClosesByDefault: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// For each request whose answer has not started, in order: the `Connection` value its
    /// answer carries, if any.
    private var pending: [String?] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let http10 = head.version == .http1_0
        pending.append(!head.isKeepAlive ? "close" : http10 ? "keep-alive" : nil)
        if http10, !head.isKeepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.fireChannelRead(wrapInboundOut(.head(head)))
        } else {
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // An informational answer (100 Continue) precedes the request's answer: it is not it.
        guard case .head(var head) = unwrapOutboundIn(data), head.status.code >= 200, !pending.isEmpty,
              let connection = pending.removeFirst() else {
            context.write(data, promise: promise)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: connection)
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}

/// `Expect: 100-continue` (curl sends it before a body of 1 MB or more, then waits up to a
/// second for the go-ahead): the server answers 100 Continue at once for a request it would read
/// the body of; otherwise (a declared body larger than it accepts, an unknown path, a method the
/// path does not answer) the request's own answer (413, 404, 405) comes first and the client does
/// not send the body. Hummingbird's conversion to swift-http-types does not answer it.
final class ContinueWhenExpected: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let maxBodyBytes: Int
    /// The model version (generation) served now, nil before a composition is loaded.
    private let servedVersion: @Sendable () -> Int64?

    init(maxBodyBytes: Int, servedVersion: @escaping @Sendable () -> Int64?) {
        self.maxBodyBytes = maxBodyBytes; self.servedVersion = servedVersion
    }

    /// Whether `path` pins a model version (`/v2/models/lethe/versions/V/…`) other than the one
    /// served: its answer will be 410 or 404, so no body is asked for.
    func pinsAnotherVersion(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 6, parts[1] == "v2", parts[2] == "models", parts[4] == "versions" else { return false }
        return Int64(parts[5]).map { String($0) != parts[5] || $0 != servedVersion() } ?? true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Only for a body the server would read: not for a path it does not answer or a method the
        // path refuses (their 404 or 405 comes first), a version no longer served (410), nor for
        // an empty or oversized body.
        if case .head(let head) = unwrapInboundIn(data), head.version.major == 1, head.version.minor >= 1,
           head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }),
           case let path = String(head.uri.prefix { $0 != "?" }),
           LetheServer.method(answering: path)?.rawValue == head.method.rawValue, !pinsAnotherVersion(path),
           head.headers["content-length"].first.flatMap({ Int($0) }).map({ $0 > 0 && $0 <= maxBodyBytes }) ?? true {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                                  promise: nil)
        }
        context.fireChannelRead(data)
    }
}

/// Limits on receiving requests. The idle timeout restarts with every byte, so a request must
/// also arrive whole within `deadline` of its head: a body trickled a byte at a time does not
/// hold a connection for ever. And the bodies still arriving on all connections together may
/// hold at most `budget` bytes: sixty clients each sending all but the last byte of a maximal
/// body would otherwise hold half a gigabyte. A connection past either limit is closed. An
/// HTTP/1.1 request without `Host` (which RFC 9112 requires) is marked for a 400.
final class RequestReceiveLimits: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    /// Body bytes received on every connection for requests not yet complete.
    static let inFlight = Atomic<Int>(0)
    /// The header `RequestReceiveLimits` adds to an HTTP/1.1 request that has no `Host`.
    static let missingHostMarker = "lethe-missing-host"

    private let deadline: TimeAmount
    private let budget: Int
    /// Body bytes of this connection's request in progress, counted in `inFlight`.
    private var held = 0
    private var timer: Scheduled<Void>?

    init(deadline: TimeAmount, budget: Int) { self.deadline = deadline; self.budget = budget }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            timer?.cancel()
            let channel = context.channel
            timer = context.eventLoop.scheduleTask(in: deadline) { channel.close(promise: nil) }
            // The marker is this handler's alone: one a client sent is dropped.
            head.headers.remove(name: Self.missingHostMarker)
            if head.version.major == 1, head.version.minor >= 1, !head.headers.contains(name: "host") {
                head.headers.add(name: Self.missingHostMarker, value: "1")
            }
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        case .body(let buffer):
            held += buffer.readableBytes
            if Self.inFlight.add(buffer.readableBytes, ordering: .relaxed).newValue > budget {
                release()
                context.close(promise: nil)
                return
            }
        case .end:
            timer?.cancel()
            timer = nil
            release()
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        release()
        context.fireChannelInactive()
    }

    private func release() {
        guard held > 0 else { return }
        Self.inFlight.subtract(held, ordering: .relaxed)
        held = 0
    }
}

/// The first handler of a connection's pipeline, next to the socket: an empty write from here
/// is queued behind every byte written before it, and NIO completes write promises in order,
/// so its promise says that everything before it has been handed to the kernel (not just to
/// NIO's buffers, which hold what a slow reader has not yet taken).
final class FlushBarrier: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Returns once every byte written on `channel` so far is in the kernel's socket buffer;
    /// throws when the connection closed first.
    static func written(on channel: any Channel) async throws {
        try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            guard let barrier = try? channel.pipeline.syncOperations.handler(type: FlushBarrier.self),
                  let context = barrier.context else {
                return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            let promise = channel.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
            return promise.futureResult
        }.get()
    }
}

