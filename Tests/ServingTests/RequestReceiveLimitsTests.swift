import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Serving

/// The receive limits on a connection, on NIO's embedded channel (its clock is advanced by hand).
@Suite(.serialized) struct RequestReceiveLimitsTests {
    static func channel(deadline: TimeAmount = .seconds(60), budget: Int = 1 << 20) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RequestReceiveLimits(deadline: deadline, budget: budget))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }

    static func head(_ version: HTTPVersion = .http1_1, host: Bool = true) -> HTTPServerRequestPart {
        var headers = HTTPHeaders()
        if host { headers.add(name: "host", value: "x") }
        return .head(HTTPRequestHead(version: version, method: .POST, uri: "/v1/forget", headers: headers))
    }

    @Test func aRequestTrickledPastTheDeadlineClosesItsConnection() throws {
        let channel = try Self.channel(deadline: .seconds(60))
        try channel.writeInbound(Self.head())
        for _ in 0..<29 {
            try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "x")))
            channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        }
        #expect(channel.isActive, "58 s in, the request may still arrive")
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(!channel.isActive, "61 s after its head the request is still not whole: closed")
    }

    @Test func aRequestThatArrivesWholeKeepsItsConnection() throws {
        let channel = try Self.channel(deadline: .seconds(60))
        try channel.writeInbound(Self.head())
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func bodiesInFlightOverTheBudgetAreClosedAndReleased() throws {
        let before = RequestReceiveLimits.inFlight.load(ordering: .relaxed)
        let first = try Self.channel(budget: before + 100), second = try Self.channel(budget: before + 100)
        try first.writeInbound(Self.head())
        try first.writeInbound(HTTPServerRequestPart.body(ByteBuffer(repeating: 0x61, count: 60)))
        try second.writeInbound(Self.head())
        #expect(RequestReceiveLimits.inFlight.load(ordering: .relaxed) == before + 60)
        try second.writeInbound(HTTPServerRequestPart.body(ByteBuffer(repeating: 0x61, count: 60)))
        #expect(first.isActive && !second.isActive, "the body that took the total past the budget is refused")
        #expect(RequestReceiveLimits.inFlight.load(ordering: .relaxed) == before + 60)
        try first.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(RequestReceiveLimits.inFlight.load(ordering: .relaxed) == before)
        _ = try first.finish()
    }

    @Test func anHTTP11RequestWithoutHostIsMarked() throws {
        for (version, host, marked) in [(HTTPVersion.http1_1, false, true), (.http1_1, true, false), (.http1_0, false, false)] {
            let channel = try Self.channel()
            try channel.writeInbound(Self.head(version, host: host))
            guard case .head(let head) = try #require(try channel.readInbound(as: HTTPServerRequestPart.self)) else {
                Issue.record("no head passed on"); continue
            }
            #expect(head.headers.contains(name: RequestReceiveLimits.missingHostMarker) == marked)
            _ = try channel.finish()
        }
    }
}
