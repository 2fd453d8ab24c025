import Metrics
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TallyPipeline
@testable import TallyIngest

/// The handler on its own, in the pipeline it is installed in (response encoder, request
/// decoder, handler), fed raw bytes: what it answers itself, what it passes on, and in which
/// order.
@Suite struct HTTPIngestHandlerTests {
    static let event = #"{"site_id":"s","event_type":"page_view","path":"/a"}"#

    func makeChannel(_ queue: ShardedQueue, encoder: Bool = true) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let ops = channel.pipeline.syncOperations
        if encoder { try ops.addHandler(HTTPResponseEncoder()) }
        try ops.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        let ingest = HTTPIngest(queue: queue, metrics: IngestMetrics(factory: NOOPMetricsHandler.instance))
        try ops.addHandler(HTTPIngestHandler(ingest: ingest, serverName: "t"))
        return channel
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
        let queue = ShardedQueue(shards: 1, capacity: 10)
        let channel = try makeChannel(queue)
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event) + post("/event?ack=queued", Self.event)))
        let out = try written(channel)
        let one = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 71\r\nDate: "
        #expect(out.components(separatedBy: one).count == 3)
        #expect(out.contains("\r\nServer: t\r\n\r\n{\"message\":\"Event accepted for processing\",\"accepted\":1,\"ack\":\"queued\"}"))
        #expect(!out.contains("Connection: close"))
        #expect(try forwardedTargets(channel).isEmpty)
        #expect(queue.depths == [2])
        _ = try channel.finish()
    }

    @Test func refusalsNameTheProblemAndKeepTheConnection() throws {
        let queue = ShardedQueue(shards: 1, capacity: 1)
        let channel = try makeChannel(queue)
        let big = "[" + Array(repeating: Self.event, count: 2).joined(separator: ",") + "]"
        try channel.writeInbound(ByteBuffer(string: post("/event", #"{"site_id":""}"#)
            + post("/event", String(repeating: " ", count: HTTPIngest.maxEventBody + 1))
            + post("/events", big)  // two events, capacity one: the queue refuses
            + post("/event", Self.event)))
        let out = try written(channel)
        let statuses = out.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["400", "413", "503", "202"])
        #expect(out.contains("site_id must be a non-empty string"))
        #expect(out.contains("Retry-After: 1\r\n"))
        #expect(queue.depths == [1])
        _ = try channel.finish()
    }

    @Test func requestsBehindAForwardedOneWaitForItsResponse() throws {
        let channel = try makeChannel(ShardedQueue(shards: 1, capacity: 10))
        try channel.writeInbound(ByteBuffer(string: "GET /stats?site_id=s HTTP/1.1\r\nHost: x\r\n\r\n" + post("/event", Self.event)))
        // Answering the POST now would overtake the GET's response.
        #expect(try written(channel).isEmpty)
        #expect(try forwardedTargets(channel) == ["/stats?site_id=s", "/event"])
        // The router answers both; after that the handler answers again.
        for _ in 0..<2 {
            try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "0"])))
            try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        }
        #expect(try written(channel).components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event)))
        #expect(try written(channel).hasPrefix("HTTP/1.1 202 Accepted"))
        #expect(try forwardedTargets(channel).isEmpty)
        _ = try channel.finish()
    }

    @Test func durableAcksAndOtherRoutesArePassedOn() throws {
        let channel = try makeChannel(ShardedQueue(shards: 1, capacity: 10))
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)))
        #expect(try forwardedTargets(channel) == ["/event?ack=durable"])
        #expect(try written(channel).isEmpty)
        _ = try channel.finish()
        // Without the encoder to write past, the handler answers nothing itself.
        let bare = try makeChannel(ShardedQueue(shards: 1, capacity: 10), encoder: false)
        try bare.writeInbound(ByteBuffer(string: post("/event", Self.event)))
        #expect(try forwardedTargets(bare) == ["/event"])
        _ = try bare.finish()
    }

    @Test func expectContinueAndConnectionClose() throws {
        let channel = try makeChannel(ShardedQueue(shards: 1, capacity: 10))
        let head = "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: \(Self.event.utf8.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        try channel.writeInbound(ByteBuffer(string: head))
        #expect(try written(channel) == "HTTP/1.1 100 Continue\r\n\r\n")
        try channel.writeInbound(ByteBuffer(string: Self.event))
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 202 Accepted") && out.contains("Connection: close\r\n\r\n"))
        #expect(!channel.isActive)
    }
}
