import Foundation
import NIOCore
import Testing
import TallyCore
@testable import TallyWire

@Suite struct CodecTests {
    let frame = EventsFrame(sequence: 7, ackRequested: true, siteID: "demo-site", events: [
        WireEvent(eventType: "page_view", path: "/home", userID: "user-001", timestamp: 1_763_121_600_000_000),
        WireEvent(eventType: "page_view", path: "/ü/产品", userID: nil, timestamp: nil),
        WireEvent(eventType: "click", path: nil, userID: "u", timestamp: 5),
    ])

    @Test func roundTrip() throws {
        var b = ByteBuffer()
        FrameEncoder.writeEvents(frame, into: &b)
        FrameEncoder.writeAck(99, into: &b)
        FrameEncoder.writeError(.invalidEvent, message: "nope", into: &b)
        #expect(try FrameDecoder.decode(&b) == .frame(.events(frame)))
        #expect(try FrameDecoder.decode(&b) == .frame(.ack(sequence: 99)))
        #expect(try FrameDecoder.decode(&b) == .frame(.error(code: .invalidEvent, message: "nope")))
        #expect(b.readableBytes == 0)
        #expect(try FrameDecoder.decode(&b) == .needMoreData)
    }

    @Test func repeatedTypeIsSentOnce() {
        var b = ByteBuffer()
        FrameEncoder.writeEvents(frame, into: &b)
        let text = String(decoding: b.readableBytesView, as: UTF8.self)
        #expect(text.components(separatedBy: "page_view").count == 2)
    }

    /// Every split point of a two-frame stream decodes to the same frames (TCP may cut anywhere).
    @Test func decodesAcrossEverySplit() throws {
        var whole = ByteBuffer()
        FrameEncoder.writeEvents(frame, into: &whole)
        FrameEncoder.writeAck(3, into: &whole)
        let bytes = Array(whole.readableBytesView)
        for cut in 0...bytes.count {
            var acc = ByteBuffer(bytes: bytes[0..<cut])
            var got: [Frame] = []
            func drain() throws {
                while case .frame(let f) = try FrameDecoder.decode(&acc) { got.append(f) }
            }
            try drain()
            acc.writeBytes(bytes[cut...])
            try drain()
            #expect(got == [.events(frame), .ack(sequence: 3)], "cut at \(cut)")
        }
    }

    @Test func oversizedLengthRejectedBeforeReadingPayload() {
        var b = ByteBuffer(bytes: [0x54, 0x59, 1, 1, 0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: FrameRejection.self) { try FrameDecoder.decode(&b) }
    }

    /// The spool writes events straight from ``Event``s: byte for byte what building wire
    /// events first and writing those gives, attribution and derived visits included.
    @Test func writingEventsDirectlyEqualsWritingTheirWireEvents() throws {
        let events = (0..<300).map { (i: Int) -> Event in
            let site = i < 150 ? "a" : "b"
            if i % 3 == 0 {
                return Event(siteID: site, eventType: i % 5 == 0 ? "click" : "page_view", path: "/p\(i)", timestamp: Int64(i))
            }
            let visit = Visit(visitor: UInt64(i), device: .mobile, browser: "Safari", os: "iOS", isBot: i % 11 == 0)
            return Event(siteID: site, eventType: "page_view", path: nil, userID: i % 2 == 0 ? "u" : nil, timestamp: Int64(i),
                         referrer: i % 4 == 0 ? "google.com" : nil, utmSource: i % 7 == 0 ? "news" : nil, visit: visit)
        }
        for maxEvents in [1, 7, 1024] {
            var direct = ByteBuffer(), viaFrames = ByteBuffer()
            FrameEncoder.writeFrames(for: events, maxEvents: maxEvents, into: &direct)
            for f in FrameEncoder.frames(for: events, maxEvents: maxEvents) { FrameEncoder.writeEvents(f, into: &viaFrames) }
            #expect(direct == viaFrames)
            var back: [Event] = []
            while direct.readableBytes > 0 {
                guard case .frame(.events(let f)) = try FrameDecoder.decode(&direct, trusted: true) else {
                    Issue.record("not an events frame")
                    return
                }
                back += f.resolved(receivedAt: -1)
            }
            #expect(back == events)
        }
    }

    /// Canonically equal site ids with different bytes are different sites: each keeps its
    /// own frame and its own bytes.
    @Test func canonicallyEqualSitesAreNotMerged() throws {
        let events = [Event(siteID: "caf\u{E9}", eventType: "t", timestamp: 1), Event(siteID: "cafe\u{301}", eventType: "t", timestamp: 2)]
        #expect(FrameEncoder.frames(for: events).map { Array($0.siteID.utf8) } == events.map { Array($0.siteID.utf8) })
        var b = ByteBuffer()
        FrameEncoder.writeFrames(for: events, into: &b)
        var sites: [[UInt8]] = []
        while b.readableBytes > 0 {
            guard case .frame(.events(let f)) = try FrameDecoder.decode(&b, trusted: true) else {
                Issue.record("not an events frame")
                return
            }
            sites.append(Array(f.siteID.utf8))
        }
        #expect(sites == events.map { Array($0.siteID.utf8) })
    }

    @Test func framesSplitEventsBySite() {
        let events = [Event(siteID: "a", eventType: "t", timestamp: 1), Event(siteID: "a", eventType: "t", timestamp: 2),
                      Event(siteID: "b", eventType: "t", timestamp: 3), Event(siteID: "a", eventType: "t", timestamp: 4)]
        let frames = FrameEncoder.frames(for: events, maxEvents: 1024)
        #expect(frames.map(\.siteID) == ["a", "b", "a"])
        #expect(frames.flatMap { $0.resolved(receivedAt: 0) } == events)
        #expect(FrameEncoder.frames(for: events, maxEvents: 1).count == 4)
    }
}

@Suite struct FrameSizeTests {
    /// Large events must be split so no frame exceeds the decoder's payload limit (the spool
    /// writes frames of up to a whole batch and must read them back).
    @Test func framesStayUnderMaxPayload() throws {
        let path = "/" + String(repeating: "p", count: 2000)
        let events = (0..<2000).map { i in
            Event(siteID: "s", eventType: "page_view", path: path, userID: String(repeating: "u", count: 200), timestamp: Int64(i))
        }
        let frames = FrameEncoder.frames(for: events, maxEvents: 65_535)
        #expect(frames.count > 1)
        var back: [Event] = []
        for f in frames {
            var b = ByteBuffer()
            FrameEncoder.writeEvents(f, into: &b)
            #expect(b.readableBytes - Wire.headerSize <= Wire.maxPayload)
            guard case .frame(.events(let d)) = try FrameDecoder.decode(&b) else {
                Issue.record("not an events frame")
                return
            }
            back += d.resolved(receivedAt: 0)
        }
        #expect(back == events)
    }

    @Test func canonicallyEqualTypesAreNotMerged() throws {
        let frame = EventsFrame(siteID: "s", events: [WireEvent(eventType: "caf\u{E9}"), WireEvent(eventType: "cafe\u{301}")])
        var b = ByteBuffer()
        FrameEncoder.writeEvents(frame, into: &b)
        guard case .frame(.events(let d)) = try FrameDecoder.decode(&b) else {
            Issue.record("not an events frame")
            return
        }
        #expect(Array(d.events[1].eventType.utf8) == Array("cafe\u{301}".utf8))
    }
}
