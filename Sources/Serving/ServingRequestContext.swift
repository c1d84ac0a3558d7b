import Hummingbird
import NIOCore

/// The request context of `lethe serve`: Hummingbird's basic one plus the request's connection,
/// so that the work of a client that hung up can be dropped (`InferenceBatcher`).
struct ServingRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Whether the client may still read an answer: the connection is open and no FIN came from
    /// the client (TCP state ESTABLISHED). A client that half-closes after its request counts as
    /// gone, as nginx counts it (its 499). While a request is answered the connection is not read,
    /// so the end of the stream is seen only in the socket's state. Call from any thread but an
    /// event loop's: it waits for the connection's loop to read the state.
    var isConnected: @Sendable () -> Bool {
        let channel = channel
        return {
            guard channel.isActive else { return false }
            guard let provider = channel as? SocketOptionProvider, let info = try? provider.getTCPInfo().wait() else {
                return true
            }
            return info.tcpi_state == 1   // TCP_ESTABLISHED
        }
    }
}
