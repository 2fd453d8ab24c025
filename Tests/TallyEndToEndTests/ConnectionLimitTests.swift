import Foundation
import NIOCore
import Synchronization
import Testing

/// `--max-connections`: past it a listener stops accepting; the connections wait and are
/// served as soon as one closes. Nothing crashes and nothing accepted is lost.
@Suite(.serialized) struct ConnectionLimitTests {
    @Test func theHTTPListenerServesAtMostTheLimitAndTheRestWhenOneCloses() async throws {
        let s = try await TestServer.start { $0.maxConnections = 2 }
        defer { s.removeData() }
        let port = s.endpoints.httpPort
        let request = "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: \(eventJSON(site: "limit").utf8.count)\r\n\r\n" + eventJSON(site: "limit")
        let first = try await RawHTTP.connect(port)
        let second = try await RawHTTP.connect(port)
        let third = try await RawHTTP.connect(port)
        // The third connection is in the kernel's backlog, not accepted: its request waits.
        let answered = Mutex(false)
        let waiting = Task {
            try await third.executeThenClose { inbound, outbound in
                var inbound = inbound.makeAsyncIterator()
                try await outbound.write(ByteBuffer(string: request))
                var got = ByteBuffer()
                while !String(buffer: got).contains("}"), var chunk = try await inbound.next() { got.writeBuffer(&chunk) }
                answered.withLock { $0 = true }
                return String(buffer: got)
            }
        }
        /// Sends the request on an open connection and reads its answer, leaving it open.
        func exchange(_ inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
                      _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> String {
            try await outbound.write(ByteBuffer(string: request))
            var got = ByteBuffer()
            while !String(buffer: got).contains("}"), var chunk = try await inbound.next() { got.writeBuffer(&chunk) }
            return String(buffer: got)
        }
        try await first.executeThenClose { in1, out1 in
            var in1 = in1.makeAsyncIterator()
            #expect(try await exchange(&in1, out1).hasPrefix("HTTP/1.1 202"))
            try await second.executeThenClose { in2, out2 in
                var in2 = in2.makeAsyncIterator()
                #expect(try await exchange(&in2, out2).hasPrefix("HTTP/1.1 202"))
                // Both open connections served; the third still waits.
                try await Task.sleep(for: .milliseconds(300))
                #expect(!answered.withLock { $0 })
            }
        }
        let late = try await waiting.value
        #expect(late.hasPrefix("HTTP/1.1 202"))
        let c = try await s.http()
        _ = try await s.waitForStats(c, "site_id=limit") { $0["total_views"] as? Int == 3 }
        let metrics = try await c.get("/metrics").body
        #expect(metrics.contains(#"tally_open_connections{listener="http"}"#))
        await c.close()
        try await s.stop()
    }
}
