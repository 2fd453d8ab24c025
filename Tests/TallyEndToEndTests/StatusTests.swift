import Foundation
import NIOCore
import Testing

/// Statuses a hostile or sloppy client gets from a real server, each with a JSON body naming
/// the problem, and what the connection does afterwards.
@Suite(.serialized) struct StatusTests {
    func errorBody(_ r: (head: String, body: String)) throws -> [String: Any] {
        #expect(r.head.lowercased().contains("content-type: application/json"), "\(r.head)")
        return try json(r.body)
    }

    @Test func oversizedHeadsAndTargets() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let port = s.endpoints.httpPort
        let bigHeader = "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n"
        var r = try await RawHTTP.exchange(port, bigHeader)
        #expect(r.first?.head.hasPrefix("HTTP/1.1 431") == true, "\(r.map(\.head))")
        #expect(try errorBody(r[0])["error"] as? String == "Request header fields too large")

        // Past the decoder's own bound on a head: refused by it, with the same answer.
        r = try await RawHTTP.exchange(port, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 300_000))\r\n\r\n")
        #expect(r.first?.head.hasPrefix("HTTP/1.1 431") == true, "\(r.map(\.head))")

        let bigTarget = "GET /stats?site_id=\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n"
        r = try await RawHTTP.exchange(port, bigTarget)
        #expect(r.first?.head.hasPrefix("HTTP/1.1 414") == true, "\(r.map(\.head))")
        #expect(try errorBody(r[0])["error"] as? String == "Request target too long")

        r = try await RawHTTP.exchange(port, "NOT HTTP AT ALL\r\n\r\n")
        #expect(r.first?.head.hasPrefix("HTTP/1.1 400") == true, "\(r.map(\.head))")
        #expect(try errorBody(r[0])["error"] as? String == "Malformed HTTP request")
        try await s.stop()
    }

    /// An over-limit Content-Length is refused before any of the body is sent, and a client
    /// that sends its whole body before reading (Python's urllib, many SDKs) still gets the 413.
    @Test func tooLargeIsAnsweredAtOnceAndStillDelivered() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let raw = try await RawHTTP.connect(s.endpoints.httpPort)
        let early = try await raw.executeThenClose { inbound, outbound in
            var inbound = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n"))
            return try await RawHTTP.readToEnd(&inbound)
        }
        var r = RawHTTP.responses(early)
        #expect(r.count == 1 && r[0].head.hasPrefix("HTTP/1.1 413"), "\(r.map(\.head))")
        #expect(try errorBody(r[0])["details"] as? [String] == ["body exceeds 65536 bytes"])

        let body = String(repeating: "x", count: 300_000)
        r = try await RawHTTP.exchange(s.endpoints.httpPort, "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
        #expect(r.count == 1 && r[0].head.hasPrefix("HTTP/1.1 413"), "\(r.map(\.head))")
        #expect(r.first?.head.contains("Connection: close") == true)
        try await s.stop()
    }

    @Test func nearMissPathsHeadAndBadQueries() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        let event = eventJSON(site: "status")
        for path in ["/event/", "//event", "/Event", "/events/"] {
            let r = try await c.post(path, event)
            #expect(r.status == 404, "\(path)")
            #expect(try json(r.body)["error"] as? String == "Not Found", "\(path)")
        }
        var r = try await c.request(.HEAD, "/health")
        #expect(r.status == 200)
        #expect(r.body.isEmpty)
        #expect(Int(r.header("content-length") ?? "") ?? 0 > 0)
        r = try await c.request(.HEAD, "/stats?site_id=status")
        #expect(r.status == 200 && r.body.isEmpty)

        r = try await c.get("/stats?site_id=%zz")
        #expect(r.status == 400)
        #expect((try json(r.body)["error"] as? String)?.contains("site_id") == true, "\(r.body)")
        r = try await c.post("/event?ack=%zz", event)
        #expect(r.status == 400)
        #expect(try json(r.body)["details"] as? [String] == ["ack has a % that is not followed by two hexadecimal digits"])
        await c.close()
        try await s.stop()
    }
}
