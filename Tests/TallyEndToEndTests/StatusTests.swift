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

    /// Strict JSON over a real socket: every malformed body is a 400 naming the byte offset;
    /// a batch is refused at event 10,001; valid JSON with unusual spelling is accepted.
    @Test func strictJSON() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        let cases: [(String, String, String)] = [
            ("/event", #"{"site_id":"s","event_type":"page_view",}"#, "byte 40: expected a string key"),
            ("/event", #"{"site_id":"s","site_id":"t","event_type":"page_view"}"#, #"byte 15: duplicate key "site_id""#),
            ("/event", #"{"site_id":"s","event_type":"page_view","x":"\ud800"}"#, #"byte 45: lone surrogate \uD800"#),
            ("/events", #"[{"site_id":"s","event_type":"page_view"},]"#, "byte 42: expected a JSON value"),
            ("/events", #"{"site_id":"s","event_type":"page_view"}"# + "\n" + #"{"site_id":"s","#, "line 2, byte 56: expected a string key"),
        ]
        for (path, body, detail) in cases {
            let r = try await c.post(path, body)
            #expect(r.status == 400, "\(body)")
            #expect(try json(r.body)["error"] as? String == "Malformed JSON")
            #expect(try json(r.body)["details"] as? [String] == [detail], "\(r.body)")
        }
        // Invalid UTF-8 in an unknown field's value.
        var bytes = ByteBuffer(string: #"{"site_id":"s","event_type":"page_view","x":""#)
        bytes.writeBytes([0xC0, 0xAF])
        bytes.writeString(#""}"#)
        let bad = try await c.request(.POST, "/event", body: bytes)
        #expect(bad.status == 400 && bad.body.contains("invalid UTF-8"), "\(bad.body)")

        let tooMany = "[" + Array(repeating: #"{"site_id":"s","event_type":"page_view"}"#, count: 10_001).joined(separator: ",") + "]"
        let r = try await c.post("/events", tooMany)
        #expect(r.status == 413)
        #expect(try json(r.body)["details"] as? [String] == ["at most 10000 events per request"])

        let unusual = #"{"site\u005fid":"strict","event_type":"page_view","path":"/caf\u00e9","extra":[1,{"a":null}]}"#
        #expect(try await c.post("/event", unusual).status == 202)
        _ = try await s.waitForStats(c, "site_id=strict") { ($0["top_paths"] as? [[String: Any]])?.first?["path"] as? String == "/café" }
        await c.close()
        try await s.stop()
    }

    /// A head that never finishes is answered 408 after `--header-timeout` and the connection
    /// closes; a body that never finishes likewise after `--body-timeout`.
    @Test func slowHeadsAndBodiesTimeOut() async throws {
        let s = try await TestServer.start {
            $0.headerTimeout = .seconds(1)
            $0.bodyTimeout = .seconds(1)
        }
        defer { s.removeData() }
        for (partial, detail) in [("POST /event HTTP/1.1\r\nHost: x\r\n", "the request head did not arrive within 1 s"),
                                  ("POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{", "the request body did not arrive within 1 s")] {
            let raw = try await RawHTTP.connect(s.endpoints.httpPort)
            let started = ContinuousClock.now
            let text = try await raw.executeThenClose { inbound, outbound in
                var inbound = inbound.makeAsyncIterator()
                try await outbound.write(ByteBuffer(string: partial))
                return try await RawHTTP.readToEnd(&inbound)
            }
            let r = RawHTTP.responses(text)
            #expect(r.count == 1 && r[0].head.hasPrefix("HTTP/1.1 408"), "\(text)")
            #expect(try errorBody(r[0])["details"] as? [String] == [detail])
            #expect(ContinuousClock.now - started < .seconds(4))
        }
        let metrics = try await s.http()
        let m = try await metrics.get("/metrics").body
        #expect(m.contains(#"tally_read_timeouts_total{listener="http",phase="header"} 1"#), "\(m)")
        #expect(m.contains(#"tally_read_timeouts_total{listener="http",phase="body"} 1"#))
        await metrics.close()
        try await s.stop()
    }
}
