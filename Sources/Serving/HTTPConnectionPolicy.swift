import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

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

    var responder: HTTPChannelHandler.Responder { inner.responder }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try operations.addHandler(HTTP10ClosesByDefault(), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }

    static func builder(idleTimeout: TimeAmount) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            LetheHTTP1Channel(inner: HTTP1Channel(responder: responder,
                                                  configuration: .init(idleTimeout: idleTimeout)))
        }
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
        guard case .head(var head) = unwrapOutboundIn(data), !pending.isEmpty,
              let connection = pending.removeFirst() else {
            context.write(data, promise: promise)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: connection)
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}
