import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TallyCore
@testable import TallyIngest

/// Durable acks, response order behind pending answers, query decoding and graceful shutdown:
/// the parts of the one ingest path that the router used to answer.
extension HTTPIngestHandlerTests {
    /// An ingest request behind a forwarded one is answered here, but only after the router
    /// answered the one ahead of it (responses keep request order).
    @Test func requestsBehindAForwardedOneWaitForItsResponse() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: "GET /stats?site_id=s HTTP/1.1\r\nHost: x\r\n\r\n" + post("/event", Self.event)))
        // Answering the POST now would overtake the GET's response.
        #expect(try written(channel).isEmpty)
        #expect(try forwardedTargets(channel) == ["/stats?site_id=s"])
        #expect(sink.depth == 1)
        try routerAnswers(channel)
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 200 OK"))
        #expect(out.components(separatedBy: "HTTP/1.1 202 Accepted").count == 2)
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event)))
        #expect(try written(channel).hasPrefix("HTTP/1.1 202 Accepted"))
        #expect(try forwardedTargets(channel).isEmpty)
        _ = try channel.finish()
    }

    @Test func durableAcksAreAnsweredOnceDurable() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)))
        #expect(try forwardedTargets(channel).isEmpty)
        #expect(try written(channel).isEmpty)
        #expect(sink.depth == 1)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 202 Accepted"))
        #expect(out.hasSuffix(#"{"message":"Event accepted for processing","accepted":1,"ack":"durable"}"#))
        _ = try channel.finish()
    }

    /// Whatever comes behind a pending durable ack waits for it: a queued ingest request and a
    /// routed one, whose response Hummingbird writes early and the handler holds.
    @Test func responsesBehindAPendingDurableAckKeepTheirOrder() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: post("/events?ack=durable", "[\(Self.event),\(Self.event)]")
            + post("/event", Self.event) + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(try forwardedTargets(channel) == ["/health"])
        try routerAnswers(channel, body: "ok")
        #expect(try written(channel).isEmpty)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        let out = try written(channel)
        let statuses = out.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["202", "202", "200"])
        #expect(out.contains(#""accepted":2,"ack":"durable""#))
        #expect(out.hasSuffix("\r\n\r\nok"))
        _ = try channel.finish()
    }

    /// Hummingbird answers a request the decoder could not parse without having been passed it:
    /// that answer waits for the pending ones ahead of it, then leaves.
    @Test func writesForNoSlotLeaveAfterThePendingAnswers() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)))
        try routerAnswers(channel, status: .badRequest)
        #expect(try written(channel).isEmpty)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        let statuses = try written(channel).components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["202", "400"])
        _ = try channel.finish()
    }

    @Test func durableAcksTimeOutOrAreRefusedWhenTheSpoolCannotWrite() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink, durableTimeout: .milliseconds(100))
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(101))
        var out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 503 Service Unavailable"))
        #expect(out.contains("Spool not confirmed durable in time, retry later"))
        // A late confirmation changes nothing.
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        #expect(try written(channel).isEmpty)
        sink.state.withLockedValue { $0.durable = false }
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)))
        out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 503 Service Unavailable"))
        #expect(out.contains("Spool not writable"))
        #expect(sink.depth == 1)
        _ = try channel.finish()
    }

    /// Percent-encoded query values are decoded by Hummingbird's URI parser on the same path as
    /// plain ones; near-miss paths and other methods go to the router.
    @Test func queriesAreDecodedAndOnlyExactIngestRoutesAreAnswered() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=%71ueued&x=1", Self.event) + post("/event?ack=bogus", Self.event)
            + post("/event/", Self.event) + "GET /event HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(try forwardedTargets(channel) == ["/event/", "/event"])
        let out = try written(channel)
        let statuses = out.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["202", "400"])
        #expect(out.contains(#"ack must be \"queued\" or \"durable\""#))
        #expect(sink.depth == 1)
        _ = try? channel.finish()
    }

    /// A graceful shutdown in the middle of a request: the request is still read and answered,
    /// the answer says the connection closes, and the connection closes after it.
    @Test func aRequestUnderWayWhenShutdownBeginsIsFinished() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        let events = UserEvents()
        try channel.pipeline.syncOperations.addHandler(events)
        let head = "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: \(Self.event.utf8.count)\r\n\r\n"
        try channel.writeInbound(ByteBuffer(string: head + Self.event.prefix(10)))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(events.quiesced == 0)
        #expect(channel.isActive)
        try channel.writeInbound(ByteBuffer(string: String(Self.event.dropFirst(10))))
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 202 Accepted"))
        #expect(out.contains("Connection: close\r\n"))
        #expect(sink.depth == 1)
        #expect(!channel.isActive)
    }

    /// An idle connection passes the shutdown on at once; Hummingbird's close then lingers at
    /// most ``HTTPIngestHandler/lingerTimeout`` for the peer to close first.
    @Test func anIdleConnectionPassesShutdownOn() throws {
        let channel = try makeChannel(FakeSink(capacity: 10))
        let events = UserEvents()
        try channel.pipeline.syncOperations.addHandler(events)
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event)))
        _ = try written(channel)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(events.quiesced == 1)
        channel.close(promise: nil)
        channel.embeddedEventLoop.advanceTime(by: HTTPIngestHandler.lingerTimeout + .milliseconds(1))
        #expect(!channel.isActive)
    }
}

/// Closes, shutdowns and floods while answers are still pending (found in review).
extension HTTPIngestHandlerTests {
    /// Hummingbird closes after a `Connection: close` request it answered; an answer still
    /// pending ahead of it (a durable ack) must leave first, then the connection closes.
    @Test func aCloseWaitsForTheAnswersStillPending() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)
            + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        try routerAnswers(channel, body: "ok")
        channel.pipeline.close(mode: .all, promise: nil)
        #expect(channel.isActive)
        #expect(try written(channel).isEmpty)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        let statuses = try written(channel).components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["202", "200"])
        #expect(!channel.isActive)
    }

    /// Once a shutdown began, requests whose head was read are finished, and a new one is not
    /// started (nothing enqueued, no answer); the last answer closes the connection.
    @Test func noRequestStartsAfterTheShutdownBegan() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        try channel.writeInbound(ByteBuffer(string: post("/event?ack=durable", Self.event)))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try channel.writeInbound(ByteBuffer(string: post("/event", Self.event)))
        #expect(sink.depth == 1)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        let out = try written(channel)
        #expect(out.components(separatedBy: "HTTP/1.1 ").count == 2)
        #expect(out.hasPrefix("HTTP/1.1 202") && out.contains("Connection: close\r\n"))
        #expect(!channel.isActive)
    }

    /// A client pipelining behind answers that are not ready: past a bound, reads pause.
    @Test func readsPauseWhileTooManyAnswersAreOutstanding() throws {
        let sink = FakeSink(capacity: 1000)
        let channel = try makeChannel(sink)
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads, position: .first)
        let many = String(repeating: post("/event?ack=durable", Self.event), count: HTTPIngestHandler.maxOutstanding)
        try channel.writeInbound(ByteBuffer(string: many))
        channel.read()
        #expect(reads.count == 0)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        #expect(reads.count == 1)
        _ = try channel.finish()
    }

    /// More of one site's events than the queue can ever hold: 413, not an endless 503.
    @Test func aBatchLargerThanTheQueueIsRefusedForGood() throws {
        let channel = try makeChannel(FakeSink(capacity: 2))
        try channel.writeInbound(ByteBuffer(string: post("/events", "[\(Self.event),\(Self.event),\(Self.event)]")))
        let out = try written(channel)
        #expect(out.hasPrefix("HTTP/1.1 413"))
        #expect(out.contains("must fit a queue shard"))
        _ = try channel.finish()
    }
}
