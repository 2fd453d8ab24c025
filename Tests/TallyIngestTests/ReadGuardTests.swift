import Metrics
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TallyCore
import TallyWire
@testable import TallyIngest

/// The read budget and timeouts on the HTTP pipeline (and the wire one), in virtual time.
@Suite struct ReadGuardTests {
    let http = HTTPIngestHandlerTests()
    static let timeouts = ReadTimeouts(start: .seconds(10), body: .seconds(30), idle: .seconds(120))

    func budget(_ limit: Int = 64 << 20) -> BufferBudget { BufferBudget(limit: limit, factory: NOOPMetricsHandler.instance) }

    @Test func aHeadNotFinishedInTimeIsAnswered408AndClosed() throws {
        let channel = try http.makeChannel(FakeSink(capacity: 10), timeouts: Self.timeouts)
        try channel.writeInbound(ByteBuffer(string: "POST /event HTTP/1.1\r\nHost: x\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(try http.written(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        let out = try http.written(channel)
        #expect(out.hasPrefix("HTTP/1.1 408 Request Timeout"))
        #expect(out.contains(#""error":"Request timeout","details":["the request head did not arrive within 10 s"]"#))
        channel.embeddedEventLoop.advanceTime(by: ReadGuard.grace)
        #expect(!channel.isActive)
    }

    @Test func aBodyNotFinishedInTimeIsAnswered408() throws {
        let b = budget()
        let channel = try http.makeChannel(FakeSink(capacity: 10), budget: b, timeouts: Self.timeouts)
        try channel.writeInbound(ByteBuffer(string: "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{"))
        // Bytes trickling in do not extend the body's time.
        for _ in 0..<29 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            try channel.writeInbound(ByteBuffer(string: " "))
        }
        #expect(try http.written(channel).isEmpty)
        #expect(b.inUse > 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try http.written(channel).contains("the request body did not arrive within 30 s"))
        channel.embeddedEventLoop.advanceTime(by: ReadGuard.grace)
        #expect(!channel.isActive)
        #expect(b.inUse == 0)
    }

    @Test func progressKeepsAConnectionOpenAndIdlenessClosesIt() throws {
        let b = budget()
        let sink = FakeSink(capacity: 100)
        let channel = try http.makeChannel(sink, budget: b, timeouts: Self.timeouts)
        // A request every 9 s for three minutes: past every timeout in total, never in one part.
        for _ in 0..<20 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(9))
            try channel.writeInbound(ByteBuffer(string: http.post("/event", HTTPIngestHandlerTests.event)))
            #expect(b.inUse == 0)
        }
        #expect(sink.depth == 20)
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(119))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(try http.written(channel).components(separatedBy: "HTTP/1.1 202").count == 21)
    }

    @Test func aReadPastTheBudgetIsAnswered503AndReleased() throws {
        let b = budget(4096)
        let sink = FakeSink(capacity: 100)
        let other = try http.makeChannel(sink, budget: b, timeouts: Self.timeouts)
        let channel = try http.makeChannel(sink, budget: b, timeouts: Self.timeouts)
        // One connection holds 3000 bytes of an unfinished body; the next one cannot add 2000.
        try other.writeInbound(ByteBuffer(string: "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 3500\r\n\r\n"
            + String(repeating: " ", count: 2900)))
        #expect(b.inUse > 2900)
        try channel.writeInbound(ByteBuffer(string: "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"))
        try channel.writeInbound(ByteBuffer(string: String(repeating: " ", count: 2000)))
        let out = try http.written(channel)
        #expect(out.hasPrefix("HTTP/1.1 503 Service Unavailable"))
        #expect(out.contains("Server busy, retry later"))
        channel.embeddedEventLoop.advanceTime(by: ReadGuard.grace)
        #expect(!channel.isActive)
        // The first connection finishes its request; everything it held is released.
        try other.writeInbound(ByteBuffer(string: "[" + HTTPIngestHandlerTests.event + "]" + String(repeating: " ", count: 3500 - 2900 - 2
            - HTTPIngestHandlerTests.event.utf8.count)))
        let answer = try http.written(other)
        #expect(answer.hasPrefix("HTTP/1.1 202"), "\(answer)")
        #expect(b.inUse == 0)
    }

    func wireChannel(_ b: BufferBudget) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            ReadGuard(budget: b, timeouts: Self.timeouts, startPhase: .frame),
            ByteToMessageHandler(WireFrameDecoder()),
            WireTCPHandler(sink: FakeSink(capacity: 100), metrics: IngestMetrics(factory: NOOPMetricsHandler.instance)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func frame(_ n: Int) -> ByteBuffer {
        var b = ByteBuffer()
        FrameEncoder.writeEvents(EventsFrame(siteID: "s", events: (0..<n).map { _ in WireEvent(eventType: "page_view", path: "/page") }), into: &b)
        return b
    }

    func errorCode(_ channel: EmbeddedChannel) throws -> WireError? {
        guard var out = try channel.readOutbound(as: ByteBuffer.self),
              case .frame(.error(let code, _)) = try FrameDecoder.decode(&out) else { return nil }
        return code
    }

    @Test func aWireFrameNotFinishedInTimeGetsAnErrorFrame() throws {
        let b = budget()
        let channel = try wireChannel(b)
        var whole = frame(100)
        let part = whole.readSlice(length: whole.readableBytes / 2)!
        try channel.writeInbound(frame(3))
        try channel.writeInbound(part)
        #expect(b.inUse == part.readableBytes)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(try errorCode(channel) == .truncated)
        channel.embeddedEventLoop.advanceTime(by: ReadGuard.grace)
        #expect(!channel.isActive)
        #expect(b.inUse == 0)
    }

    @Test func wireFramesPastTheBudgetAreRefused() throws {
        let b = budget(1000)
        let channel = try wireChannel(b)
        var whole = frame(200)
        #expect(whole.readableBytes > 1100)
        try channel.writeInbound(whole.readSlice(length: 900)!)
        try channel.writeInbound(whole.readSlice(length: 200)!)
        #expect(try errorCode(channel) == .overloaded)
        // Closed once the ERROR frame is out; nothing stays charged.
        #expect(!channel.isActive)
        #expect(b.inUse == 0)
    }
}
