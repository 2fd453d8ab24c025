import Logging
import Metrics
import NIOCore
import NIOEmbedded
import Testing
import TallyCore
import TallySites
import TallyWire
@testable import TallyIngest

/// One wire TCP connection on an embedded channel, decoder and handler as the server installs
/// them, feeding a fake sink: ACK order, backpressure without polling, refusals, late frames.
@Suite struct WireTCPHandlerTests {
    func makeChannel(_ sink: FakeSink, sites: SiteRulesSource = SiteRulesSource()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(WireFrameDecoder()),
            WireTCPHandler(sink: sink, metrics: IngestMetrics(factory: NOOPMetricsHandler.instance), sites: sites))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func frame(_ seq: UInt64, events n: Int, ack: Bool = true) -> ByteBuffer {
        var b = ByteBuffer()
        FrameEncoder.writeEvents(EventsFrame(sequence: seq, ackRequested: ack, siteID: "s",
                                             events: (0..<n).map { WireEvent(eventType: "e\(seq)-\($0)") }), into: &b)
        return b
    }

    /// The frames the server sent back.
    func sent(_ channel: EmbeddedChannel) throws -> [Frame] {
        var all = ByteBuffer()
        while var b = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&b) }
        var frames: [Frame] = []
        while case .frame(let f) = try FrameDecoder.decode(&all) { frames.append(f) }
        return frames
    }

    @Test func acksFollowDurabilityInFrameOrder() throws {
        let sink = FakeSink(capacity: 100)
        let channel = try makeChannel(sink)
        try channel.writeInbound(frame(1, events: 2))
        try channel.writeInbound(frame(2, events: 1, ack: false))
        try channel.writeInbound(frame(3, events: 1))
        #expect(sink.depth == 4)
        #expect(try sent(channel).isEmpty)
        sink.completeDurability(true)
        channel.embeddedEventLoop.run()
        #expect(try sent(channel) == [.ack(sequence: 1), .ack(sequence: 3)])
        _ = try channel.finish()
    }

    /// AUTH is answered at once with the key's site and id; frames of a keyed site pass after
    /// it, in order, even when sent without waiting for the answer; an unknown key closes.
    @Test func authOpensTheKeysSiteForTheConnection() throws {
        let key = AccessKey.generate(.write, at: 1)
        let sites = SiteRulesSource(SiteRules([SiteRecord(id: "s", keys: [key.record], createdAt: 0, updatedAt: 0)]))
        let sink = FakeSink(capacity: 100)
        let channel = try makeChannel(sink, sites: sites)
        var b = ByteBuffer()
        FrameEncoder.writeAuth(key: key.key, into: &b)
        var events = frame(1, events: 2)
        b.writeBuffer(&events)
        try channel.writeInbound(b)
        #expect(sink.depth == 2)
        #expect(try sent(channel) == [.authOK(siteID: "s", keyID: key.record.id)])

        let other = try makeChannel(sink, sites: sites)
        try other.writeInbound(frame(2, events: 3))
        #expect(sink.depth == 2)
        guard case .error(.unauthorized, let message) = try sent(other).first else { return #expect(Bool(false)) }
        #expect(message.contains("AUTH frame"))

        let wrong = try makeChannel(sink, sites: sites)
        var auth = ByteBuffer()
        FrameEncoder.writeAuth(key: "tally_w_not-a-key", into: &auth)
        var more = frame(3, events: 1)
        auth.writeBuffer(&more)
        try wrong.writeInbound(auth)
        #expect(sink.depth == 2)
        let answers = try sent(wrong)
        #expect(answers.count == 1)
        guard case .error(.unauthorized, _) = answers.first else { return #expect(Bool(false)) }
        _ = try? channel.finish()
        _ = try? other.finish()
        _ = try? wrong.finish()
    }

    /// A full sink holds the frame and the reads; room freed by a flusher resumes both, with no
    /// timer involved (nothing runs until the sink signals).
    @Test func aFullSinkHoldsReadsUntilItSignalsRoom() throws {
        let sink = FakeSink(capacity: 3)
        let channel = try makeChannel(sink)
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads, position: .first)
        try channel.writeInbound(frame(1, events: 3))
        try channel.writeInbound(frame(2, events: 2))
        #expect(sink.depth == 3)
        channel.read()
        #expect(reads.count == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(sink.depth == 3)
        sink.take(3)
        channel.embeddedEventLoop.run()
        #expect(sink.events.map(\.eventType) == ["e2-0", "e2-1"])
        #expect(reads.count == 1)
        _ = try channel.finish()
    }

    @Test func aMalformedFrameIsAnsweredWithAnErrorAndTheConnectionCloses() throws {
        let sink = FakeSink(capacity: 10)
        let channel = try makeChannel(sink)
        var bad = ByteBuffer()
        FrameEncoder.writeAck(9, into: &bad)
        try channel.writeInbound(frame(1, events: 1, ack: false))
        _ = try? channel.writeInbound(bad)
        let frames = try sent(channel)
        guard case .error(let code, _) = frames.first else {
            Issue.record("no ERROR frame: \(frames)")
            return
        }
        #expect(code == .unknownFrameType)
        #expect(!channel.isActive)
        #expect(sink.depth == 1)
    }

    /// Frames still waiting for room when the sender closes are enqueued once room frees up.
    @Test func framesWaitingAtCloseAreStillEnqueued() throws {
        let sink = FakeSink(capacity: 3)
        let channel = try makeChannel(sink)
        try channel.writeInbound(frame(1, events: 3, ack: false))
        try channel.writeInbound(frame(2, events: 2, ack: false))
        _ = try channel.finish()
        #expect(sink.depth == 3)
        sink.take(3)
        #expect(sink.events.map(\.eventType) == ["e2-0", "e2-1"])
    }
}

extension WireTCPHandlerTests {
    /// A frame that can never fit the queue is refused with an ERROR frame instead of waiting
    /// forever; frames received before it are still enqueued.
    @Test func aFrameLargerThanTheQueueIsRefused() throws {
        let sink = FakeSink(capacity: 3)
        let channel = try makeChannel(sink)
        try channel.writeInbound(frame(1, events: 2, ack: false))
        try channel.writeInbound(frame(2, events: 4, ack: false))
        guard case .error(let code, _) = try sent(channel).first else {
            Issue.record("no ERROR frame")
            return
        }
        #expect(code == .frameTooLarge)
        #expect(!channel.isActive)
        #expect(sink.depth == 2)
    }
}
