import Foundation
import NIOCore
import Testing
import TallyClient
import TallyCore
import TallyServer
import TallyWire

func frames(site: String, count: Int, pathMod: Int = 3, sequence: UInt64 = 0, ack: Bool = false) -> EventsFrame {
    EventsFrame(sequence: sequence, ackRequested: ack, siteID: site, events: (0..<count).map { i in
        WireEvent(eventType: "page_view", path: "/w\(i % pathMod)", userID: "u\(i % 4)",
                  timestamp: Timestamp.parse("2025-11-14T12:00:00Z")! + Int64(i))
    })
}

@Suite(.serialized) struct WireEndToEndTests {
    /// One shard holding 50 events, cut every 5 ms: any sender outruns it at once.
    static func tinyQueue(_ c: inout ServerConfiguration) {
        c.shards = 1
        c.queueCapacity = 50
        c.flushEvents = 50
        c.flushInterval = .milliseconds(5)
    }

    @Test func udpDatagramsWithSeveralFramesReachStats() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let udp = try await WireUDPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        for _ in 0..<10 {
            var b = ByteBuffer()
            FrameEncoder.writeEvents(frames(site: "udp-a", count: 6), into: &b)
            FrameEncoder.writeEvents(frames(site: "udp-b", count: 4), into: &b)
            try await udp.send(b)
        }
        // A datagram with a good frame, then a frame with a bad event, then another good frame:
        // only the bad frame is dropped.
        var mixed = ByteBuffer()
        FrameEncoder.writeEvents(frames(site: "udp-a", count: 1), into: &mixed)
        FrameEncoder.writeEvents(EventsFrame(siteID: "udp-a", events: [WireEvent(eventType: "")]), into: &mixed)
        FrameEncoder.writeEvents(frames(site: "udp-a", count: 1), into: &mixed)
        try await udp.send(mixed)
        // Garbage: counted and dropped whole.
        try await udp.send(ByteBuffer(bytes: [0xDE, 0xAD, 0xBE, 0xEF]))
        let c = try await s.http()
        let a = try await s.waitForStats(c, "site_id=udp-a&date=2025-11-14") { $0["total_views"] as? Int == 62 }
        #expect(a["unique_users"] as? Int == 4)
        _ = try await s.waitForStats(c, "site_id=udp-b") { $0["total_views"] as? Int == 40 }
        let metrics = try await c.get("/metrics").body
        #expect(metrics.contains(#"tally_events_accepted_total{transport="udp"} 102"#))
        #expect(metrics.contains(#"tally_events_rejected_total{transport="udp",reason="invalid_event"} 1"#))
        #expect(metrics.contains(#"tally_events_rejected_total{transport="udp",reason="bad_magic"} 1"#))
        #expect(metrics.contains("tally_udp_kernel_drops"))
        await udp.close()
        await c.close()
        try await s.stop()
    }

    @Test func tcpStreamCutIntoSingleBytesAcksAfterSpool() async throws {
        let s = try await TestServer.start { $0.flushInterval = .milliseconds(20) }
        defer { s.removeData() }
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        var stream = ByteBuffer()
        FrameEncoder.writeEvents(frames(site: "tcp-a", count: 5, sequence: 1, ack: true), into: &stream)
        FrameEncoder.writeEvents(frames(site: "tcp-b", count: 7, sequence: 2, ack: true), into: &stream)
        FrameEncoder.writeEvents(frames(site: "tcp-a", count: 3, sequence: 3, ack: false), into: &stream)
        FrameEncoder.writeEvents(frames(site: "tcp-a", count: 2, sequence: 4, ack: true), into: &stream)
        while stream.readableBytes > 0 {
            try await tcp.send(stream.readSlice(length: 1)!)
        }
        try await tcp.waitForAck(4)
        #expect(tcp.acked == 4)
        // An ACK means durable in the spool: the batch files were written and counted.
        let c = try await s.http()
        let m = try await c.get("/metrics").body
        #expect(m.contains(#"tally_events_accepted_total{transport="tcp"} 17"#))
        #expect(!m.contains("tally_spool_events_written_total 0"))
        _ = try await s.waitForStats(c, "site_id=tcp-a") { $0["total_views"] as? Int == 10 }
        _ = try await s.waitForStats(c, "site_id=tcp-b") { $0["total_views"] as? Int == 7 }
        await tcp.close()
        await c.close()
        try await s.stop()
    }

    @Test func tcpBadFrameGetsErrorFrameThenClose() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        var b = ByteBuffer()
        FrameEncoder.writeEvents(frames(site: "tcp-ok", count: 2, sequence: 1, ack: true), into: &b)
        b.writeBytes([0x54, 0x59, 0x01, 0x01, 0xFF, 0xFF, 0xFF, 0xFF])  // declares a 4 GiB payload
        try await tcp.send(b)
        await tcp.waitForClose()
        #expect(tcp.serverError?.code == .frameTooLarge)
        let c = try await s.http()
        // The good frame before the bad one was accepted.
        _ = try await s.waitForStats(c, "site_id=tcp-ok") { $0["total_views"] as? Int == 2 }
        #expect(try await c.get("/metrics").body.contains(#"tally_events_rejected_total{transport="tcp",reason="frame_too_large"} 1"#))
        // The server still serves new connections.
        let again = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        try await again.send(frames(site: "tcp-ok", count: 1, sequence: 9, ack: true))
        try await again.waitForAck(9)
        await again.close()
        await c.close()
        try await s.stop()
    }

    @Test func tcpBackpressureStopsReadingButLosesNothing() async throws {
        // A queue of 50 events and slow flushes: the sender must be slowed, not dropped.
        let s = try await TestServer.start(configure: Self.tinyQueue)
        defer { s.removeData() }
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        for seq in 1...200 {
            try await tcp.send(frames(site: "bp", count: 20, sequence: UInt64(seq), ack: true))
        }
        try await tcp.waitForAck(200, timeout: .seconds(60))
        let c = try await s.http()
        _ = try await s.waitForStats(c, "site_id=bp") { $0["total_views"] as? Int == 4000 }
        await tcp.close()
        await c.close()
        try await s.stop()
    }

    /// Plain TCP has no acks: bytes the server has read are its responsibility, even when the
    /// sender hangs up while they wait for queue space.
    @Test func tcpSenderClosingWhileStalledLosesNothing() async throws {
        let s = try await TestServer.start(configure: Self.tinyQueue)
        defer { s.removeData() }
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        var b = ByteBuffer()
        for seq in 1...300 { FrameEncoder.writeEvents(frames(site: "hangup", count: 20, sequence: UInt64(seq)), into: &b) }
        try await tcp.send(b)
        await tcp.close()
        let c = try await s.http()
        _ = try await s.waitForStats(c, "site_id=hangup", timeout: .seconds(60)) { $0["total_views"] as? Int == 6000 }
        await c.close()
        try await s.stop()
    }
}
