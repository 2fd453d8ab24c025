import Metrics
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TallyCore
import TallyEnrich
@testable import TallyIngest

/// The handler on its own, in the pipeline Hummingbird builds (NIO's server pipeline, whose
/// request decoder tells the response encoder each request's method), fed raw bytes, with a
/// fake sink: what it answers itself, what it passes on, and in which order.
@Suite struct HTTPIngestHandlerTests {
    static let event = #"{"site_id":"s","event_type":"page_view","path":"/a"}"#

    /// NIO's server pipeline with the ``ReadGuard`` in front and the ingest handler behind the
    /// decoder, as ``IngestHTTP1Channel`` builds it.
    func makeChannel(_ sink: FakeSink, durableTimeout: Duration = .seconds(10),
                     budget: BufferBudget = BufferBudget(limit: 64 << 20, factory: NOOPMetricsHandler.instance),
                     timeouts: ReadTimeouts = ReadTimeouts(start: .seconds(10), body: .seconds(30), idle: .seconds(120)),
                     enricher: Enricher = Enricher()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let ops = channel.pipeline.syncOperations
        try ops.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        let ingest = IngestContext(sink: sink, metrics: IngestMetrics(factory: NOOPMetricsHandler.instance),
                                   durableTimeout: durableTimeout, serverName: "t", budget: budget, timeouts: timeouts,
                                   enricher: enricher)
        let decoder = try ops.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try ops.addHandler(HTTPIngestHandler(context: ingest), position: .after(decoder))
        try ops.addHandler(ReadGuard(budget: budget, timeouts: timeouts, startPhase: .header), position: .first)
        // Active, as an accepted connection is, so closing it is observable.
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        #expect(channel.isActive)
        return channel
    }

    /// Writes a response as the router would, from the pipeline's tail. The writes are not
    /// awaited: the handler may hold them until the responses ahead of them have left.
    func routerAnswers(_ channel: EmbeddedChannel, status: HTTPResponseStatus = .ok, body: String = "") throws {
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: ["content-length": String(body.utf8.count)])
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if !body.isEmpty { channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
    }

    func chunked(_ target: String, _ body: String) -> String {
        "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n"
    }

    func post(_ target: String, _ body: String, extra: String = "") -> String {
        "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
    }

    /// Everything written towards the socket so far.
    func written(_ channel: EmbeddedChannel) throws -> String {
        var out = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        return out
    }

    /// The request heads passed on towards Hummingbird so far.
    func forwardedTargets(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let h) = part { out.append(h.uri) }
        }
        return out
    }

    @Test func answersASingleEventWithOnePreEncodedResponse() throws {
        let queue = FakeSink(capacity: 10)
        let channel = try makeChannel(queue)
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event) + post("/event?ack=queued", Self.event)))
        let out = try written(channel)
        let one = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 71\r\nDate: "
        #expect(out.components(separatedBy: one).count == 3)
        #expect(out.contains("\r\nServer: t\r\n\r\n{\"message\":\"Event accepted for processing\",\"accepted\":1,\"ack\":\"queued\"}"))
        #expect(!out.contains("Connection: close"))
        #expect(try forwardedTargets(channel).isEmpty)
        #expect(queue.depth == 2)
        _ = try channel.finish()
    }

    @Test func refusalsNameTheProblemAndKeepTheConnection() throws {
        let queue = FakeSink(capacity: 1, maxBatch: 100)
        let channel = try makeChannel(queue)
        let big = "[" + Array(repeating: Self.event, count: 2).joined(separator: ",") + "]"
        try channel.writeInbound(ByteBuffer(string: post("/event", #"{"site_id":""}"#)
            // Chunked, so its length is known only once read: a 413 that keeps the connection.
            + chunked("/event", String(repeating: " ", count: HTTPIngest.maxEventBody + 1))
            + post("/events", big)  // two events, capacity one: the queue refuses
            + post("/event", Self.event)))
        let out = try written(channel)
        let statuses = out.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["400", "413", "503", "202"])
        #expect(out.contains("site_id must be a non-empty string"))
        #expect(out.contains("Retry-After: 1\r\n"))
        #expect(queue.depth == 1)
        _ = try channel.finish()
    }

    /// The response encoder frames each response by its request's method (no body for HEAD):
    /// answering a request here must keep that bookkeeping in step for the router's answers.
    @Test func routerResponsesAfterDirectOnesKeepTheirFraming() throws {
        let channel = try makeChannel(FakeSink(capacity: 10))
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event)))
        #expect(try written(channel).hasPrefix("HTTP/1.1 202 Accepted"))
        try channel.writeInbound(ByteBuffer(string: "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"))
        try routerAnswers(channel, body: "")
        try channel.writeInbound(ByteBuffer(string: "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
        try routerAnswers(channel, body: "hello")
        #expect(try forwardedTargets(channel) == ["/health", "/health"])
        #expect(try written(channel).hasSuffix("\r\n\r\nhello"))
        _ = try channel.finish()
    }

    /// After a request that closes the connection, requests behind it are not processed (the
    /// decoder refuses them), whichever path answered it.
    @Test func nothingIsProcessedAfterAClosingRequest() throws {
        for first in ["GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                      post("/event", Self.event, extra: "Connection: close\r\n")] {
            let queue = FakeSink(capacity: 10)
            let channel = try makeChannel(queue)
            #expect(throws: (any Error).self) { try channel.writeInbound(ByteBuffer(string: first + post("/event", Self.event))) }
            if first.hasPrefix("GET") {
                #expect(try forwardedTargets(channel) == ["/health"])
                #expect(queue.depth == 0)
            } else {
                #expect(try written(channel).components(separatedBy: "HTTP/1.1 202").count == 2)
                #expect(queue.depth == 1)
            }
            _ = try? channel.finish()
        }
    }

    /// A client that sends requests without reading the answers: once the socket cannot take
    /// more, the handler stops asking for input until it can.
    @Test func readsPauseWhileTheSocketIsFull() throws {
        let channel = try makeChannel(FakeSink(capacity: 10))
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads, position: .first)
        channel.read()
        #expect(reads.count == 1)
        channel.isWritable = false
        channel.read()
        #expect(reads.count == 1)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(reads.count == 2)
        _ = try channel.finish()
    }

    /// HTTP/1.0 keep-alive is confirmed; HTTP/1.0 never gets a 100 (it has no 1xx).
    @Test func http10KeepAliveIsConfirmed() throws {
        let channel = try makeChannel(FakeSink(capacity: 10))
        try channel.writeInbound(ByteBuffer(string: "POST /event HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
            + "Content-Length: \(Self.event.utf8.count)\r\n\r\n" + Self.event))
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 202 Accepted"))
        #expect(out.contains("Connection: keep-alive\r\n"))
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func expectContinueAndConnectionClose() throws {
        let channel = try makeChannel(FakeSink(capacity: 10))
        let head = "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: \(Self.event.utf8.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        try channel.writeInbound(ByteBuffer(string: head))
        #expect(try written(channel) == "HTTP/1.1 100 Continue\r\n\r\n")
        try channel.writeInbound(ByteBuffer(string: Self.event))
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 202 Accepted") && out.contains("Connection: close\r\n\r\n"))
        #expect(!channel.isActive)
    }
}

/// Counts the shutdown events that get past the ingest handler.
final class UserEvents: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    var quiesced = 0

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { quiesced += 1 }
    }
}

/// Counts the reads that reach the socket end of the pipeline.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}
