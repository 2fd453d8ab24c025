import Foundation
import NIOCore
import NIOPosix
import Testing
import TallyClient

/// Graceful shutdown (SIGTERM) against a real server over real sockets: a request already
/// under way is finished and stored, and no response is ever cut off.
@Suite(.serialized) struct ShutdownTests {
    @Test func aRequestWhoseHeadArrivedIsStillAnsweredAndStored() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let body = eventJSON(site: "shutdown", path: "/late")
        let head = "POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
        let raw = try await RawHTTP.connect(s.endpoints.httpPort)
        let answer = try await raw.executeThenClose { inbound, outbound in
            var inbound = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: head + body.prefix(10)))
            try await Task.sleep(for: .milliseconds(200))
            let stopping = Task { try await s.stop() }
            // The server is shutting down while the body is still on its way: once it no
            // longer takes connections (a sleep alone was too short on a loaded machine).
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            while true {
                try #require(clock.now < deadline, "the server still took connections 30 s after SIGTERM")
                guard let probe = try? await RawHTTP.connect(s.endpoints.httpPort) else { break }
                try? await probe.channel.close()
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(!stopping.isCancelled)
            try await outbound.write(ByteBuffer(string: String(body.dropFirst(10))))
            let text = try await RawHTTP.readToEnd(&inbound)
            try await stopping.value
            return text
        }
        let r = RawHTTP.responses(answer)
        #expect(r.count == 1)
        #expect(r.first?.head.hasPrefix("HTTP/1.1 202 Accepted") == true)
        #expect(r.first?.head.contains("Connection: close") == true)

        // Stored: a fresh server on the same data reads it back.
        let again = try await TestServer.start(dataDirectory: s.dataDirectory)
        let c = try await again.http()
        let stats = try json(try await c.get("/stats?site_id=shutdown").body)
        #expect(stats["total_views"] as? Int == 1)
        await c.close()
        try await again.stop()
    }

    /// Pipelined ingest and routed requests in flight when the shutdown begins: whatever is
    /// answered is answered whole, the connection ends after a whole response, and every 202
    /// is in the store afterwards.
    @Test func noResponseIsCutOffAndEveryAcceptedEventIsStored() async throws {
        for round in 0..<3 {
            let s = try await TestServer.start()
            defer { s.removeData() }
            let site = "pipelined-\(round)"
            func post(_ target: String) -> String {
                let body = eventJSON(site: site, path: "/p")
                return "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            let requests = (0..<20).map { i in
                switch i % 5 {
                case 1: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                case 3: post("/event?ack=durable")
                default: post("/event")
                }
            }.joined()
            let raw = try await RawHTTP.connect(s.endpoints.httpPort)
            let answer = try await raw.executeThenClose { inbound, outbound in
                // One request answered first: the connection is accepted and in use. (A
                // connection still in the listener's backlog when it closes is reset by the
                // kernel, unanswered; its sender retries.)
                var inbound = inbound.makeAsyncIterator()
                try await outbound.write(ByteBuffer(string: "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
                var first = ByteBuffer()
                while !String(buffer: first).contains("}"), var chunk = try await inbound.next() { first.writeBuffer(&chunk) }
                try await outbound.write(ByteBuffer(string: requests))
                if round > 0 { try await Task.sleep(for: .milliseconds(round == 1 ? 1 : 20)) }
                let stopping = Task { try await s.stop() }
                let text = try await RawHTTP.readToEnd(&inbound)
                try await stopping.value
                return text
            }
            let r = RawHTTP.responses(answer)
            let accepted = r.filter { $0.head.hasPrefix("HTTP/1.1 202") }.count
            #expect(r.allSatisfy { $0.head.hasPrefix("HTTP/1.1 202") || $0.head.hasPrefix("HTTP/1.1 200") }, "\(r.map(\.head))")
            #expect(r.filter { $0.head.hasPrefix("HTTP/1.1 200") }.allSatisfy { $0.body.contains("tally_events_accepted_total") })

            let again = try await TestServer.start(dataDirectory: s.dataDirectory)
            let c = try await again.http()
            let stats = try json(try await c.get("/stats?site_id=\(site)").body)
            #expect(stats["total_views"] as? Int ?? 0 == accepted, "round \(round): \(r.count) responses")
            await c.close()
            try await again.stop()
        }
    }
}
