import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
import TallyCore
@testable import TallyWire

/// The TCP framing decoder under NIO's own decoder checks (every split of the input, leftover
/// bytes, reentrancy) and on a channel: what it passes on and what it refuses.
@Suite struct WireFrameDecoderTests {
    static func frame(_ seq: UInt64, _ n: Int, ack: Bool = false) -> EventsFrame {
        var events: [WireEvent] = []
        for i in 0..<n {
            let type = i % 2 == 0 ? "page_view" : "click"
            let user: String? = i % 3 == 0 ? nil : "u\(i)"
            let ts: Int64? = i % 4 == 0 ? nil : Int64(i)
            events.append(WireEvent(eventType: type, path: "/p/\(i)", userID: user, timestamp: ts))
        }
        return EventsFrame(sequence: seq, ackRequested: ack, siteID: "site-\(seq)", events: events)
    }

    static func bytes(_ frames: [EventsFrame]) -> ByteBuffer {
        bytes(frames.map(SenderFrame.events))
    }

    static func bytes(_ frames: [SenderFrame]) -> ByteBuffer {
        var b = ByteBuffer()
        for f in frames {
            switch f {
            case .events(let e): FrameEncoder.writeEvents(e, into: &b)
            case .auth(let key): FrameEncoder.writeAuth(key: key, into: &b)
            }
        }
        return b
    }

    @Test func passesNIOsDecoderVerifier() throws {
        let one: [SenderFrame] = [.events(Self.frame(1, 3))]
        let three: [SenderFrame] = [.auth(key: "tally_w_x"), .events(Self.frame(2, 1, ack: true)), .events(Self.frame(3, 40)),
                                    .auth(key: ""), .events(Self.frame(4, 2))]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(Self.bytes(one), one), (Self.bytes(three), three)],
            decoderFactory: { WireFrameDecoder() })
    }

    @Test func framesSplitAcrossReadsArriveWhole() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        let frames = [Self.frame(1, 5), Self.frame(2, 7)]
        var all = Self.bytes(frames)
        while all.readableBytes > 0 {
            try channel.writeInbound(all.readSlice(length: min(3, all.readableBytes))!)
        }
        #expect(try channel.readInbound(as: SenderFrame.self) == .events(frames[0]))
        #expect(try channel.readInbound(as: SenderFrame.self) == .events(frames[1]))
        #expect(try channel.readInbound(as: SenderFrame.self) == nil)
        #expect(try channel.finish().isClean)
    }

    /// A whole frame still buffered when the connection closes is delivered; a partial one is not.
    @Test func wholeFramesBeforeTheCloseAreDelivered() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        var b = Self.bytes([Self.frame(1, 2)])
        var partial = Self.bytes([Self.frame(2, 2)])
        b.writeBuffer(&partial)
        b.moveWriterIndex(to: b.writerIndex - 3)
        try channel.writeInbound(b)
        #expect(try channel.readInbound(as: SenderFrame.self) == .events(Self.frame(1, 2)))
        _ = try? channel.finish()
        #expect(try channel.readInbound(as: SenderFrame.self) == nil)
    }

    @Test func refusesServerFramesAndBadBytes() throws {
        let serverFrames: [Frame] = [.ack(sequence: 1), .error(code: .truncated, message: ""), .authOK(siteID: "a", keyID: "k1")]
        let inputs = serverFrames.map { f in var b = ByteBuffer(); FrameEncoder.write(f, into: &b); return b } + [ByteBuffer(bytes: [0x00, 0x01])]
        for input in inputs {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
            #expect(throws: FrameRejection.self) { try channel.writeInbound(input) }
            _ = try? channel.finish()
        }
    }
}
