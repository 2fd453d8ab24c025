import CSQLite
import Foundation
import NIOCore
import Testing
import TallyClient
import TallyCore
import TallyTestSupport
import TallyWire
import TallyEnrich

/// The browser edge through a real server: the script, CORS, and what is derived and stored
/// per event (referrer host, UTM, device/browser/OS, visitor id, bot flag) on every transport.
@Suite(.serialized) struct BrowserEdgeTests {
    static let iPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
    static let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    static let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

    /// Rows of `sql` on the server's SQLite file, each column as text (nil for NULL).
    static func rows(_ dir: String, _ sql: String) -> [[String?]] {
        var db: OpaquePointer?
        guard sqlite3_open_v2(dir + "/tally.sqlite", &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return [] }
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { return [["prepare failed: " + String(cString: sqlite3_errmsg(db))]] }
        defer { sqlite3_finalize(stmt) }
        var out: [[String?]] = []
        while sqlite3_step(stmt) == SQLITE_ROW {
            out.append((0..<sqlite3_column_count(stmt)).map { i in sqlite3_column_text(stmt, i).map { String(cString: $0) } })
        }
        return out
    }

    func event(_ site: String, _ path: String, extra: String = "") -> String {
        #"{"site_id":"\#(site)","event_type":"page_view","path":"\#(path)","timestamp":"2025-11-14T12:00:00Z"\#(extra)}"#
    }

    @Test func theScriptIsServedCompressedCachedAndRevalidated() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        let plain = try await c.get("/tally.js")
        #expect(plain.status == 200)
        #expect(plain.header("content-type") == "text/javascript; charset=utf-8")
        #expect(plain.header("cache-control") == "public, max-age=86400")
        #expect(plain.body.contains("sendBeacon") && plain.header("content-encoding") == nil)
        let etag = try #require(plain.header("etag"))
        let gz = try await c.request(.GET, "/tally.js", body: nil as String?, headers: [("Accept-Encoding", "br, gzip;q=0.9")])
        #expect(gz.header("content-encoding") == "gzip")
        #expect((Int(gz.header("content-length") ?? "") ?? 2000) <= 1024)
        #expect(gz.header("vary") == "Accept-Encoding")
        let again = try await c.request(.GET, "/tally.js", body: nil as String?, headers: [("If-None-Match", etag)])
        #expect(again.status == 304)
        let head = try await c.request(.HEAD, "/tally.js", body: nil as String?)
        #expect(head.status == 200 && head.body.isEmpty)
        await c.close()
        try await s.stop()
    }

    @Test func corsPreflightAndHeaders() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        for path in ["/event", "/events"] {
            let r = try await c.request(.OPTIONS, path, body: nil as String?, headers: [
                ("Origin", "https://shop.example"), ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type")])
            #expect(r.status == 204)
            #expect(r.header("access-control-allow-origin") == "*")
            #expect(r.header("access-control-allow-methods") == "POST, OPTIONS")
            #expect(r.header("access-control-allow-headers") == "Content-Type")
            #expect(r.header("access-control-max-age") == "86400")
            #expect(r.body.isEmpty)
        }
        let ok = try await c.request(.POST, "/event", body: event("cors", "/"), contentType: "text/plain;charset=UTF-8",
                                     headers: [("Origin", "https://shop.example")])
        #expect(ok.status == 202 && ok.header("access-control-allow-origin") == "*")
        let bad = try await c.request(.POST, "/event", body: "{", headers: [("Origin", "https://shop.example")])
        #expect(bad.status == 400 && bad.header("access-control-allow-origin") == "*")
        await c.close()
        try await s.stop()
    }

    @Test func whatIsDerivedIsStoredAndBotsCountNowhere() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        let attribution = #","referrer":"https://www.News.example/item?id=7","utm_source":"newsletter","utm_medium":"email","utm_campaign":"winter""#
        var r = try await c.request(.POST, "/event", body: event("edge", "/landing", extra: attribution),
                                    headers: [("User-Agent", Self.iPhone), ("Origin", "https://edge.example")])
        #expect(r.status == 202)
        // A same-site referrer is a direct visit; the same visitor on a second page.
        r = try await c.request(.POST, "/event", body: event("edge", "/next", extra: #","referrer":"https://edge.example/landing""#),
                                headers: [("User-Agent", Self.iPhone), ("Origin", "https://edge.example")])
        #expect(r.status == 202)
        r = try await c.request(.POST, "/event", body: event("edge", "/landing"), headers: [("User-Agent", Self.chrome)])
        #expect(r.status == 202)
        r = try await c.request(.POST, "/event", body: event("edge", "/landing"), headers: [("User-Agent", Self.googlebot)])
        #expect(r.status == 202)
        let stats = try await s.waitForStats(c, "site_id=edge") { $0["total_views"] as? Int == 3 }
        #expect((stats["top_paths"] as? [[String: Any]])?.first?["views"] as? Int == 2)
        let metrics = try await c.get("/metrics").body
        #expect(metrics.contains(#"tally_events_filtered_total{transport="http",reason="bot"} 1"#))
        await c.close()
        try await s.stop()

        let stored = Self.rows(s.dataDirectory, """
            SELECT path, referrer, utm_source, utm_medium, utm_campaign, device, browser, os, visitor IS NOT NULL, bot
            FROM events ORDER BY id
            """)
        #expect(stored == [
            ["/landing", "news.example", "newsletter", "email", "winter", "mobile", "Safari", "iOS", "1", "0"],
            ["/next", nil, nil, nil, nil, "mobile", "Safari", "iOS", "1", "0"],
            ["/landing", nil, nil, nil, nil, "desktop", "Chrome", "Windows", "1", "0"],
            ["/landing", nil, nil, nil, nil, nil, nil, nil, "1", "1"],
        ])
        // Two visitors (the iPhone's two events are one); the bot is none.
        #expect(Self.rows(s.dataDirectory, "SELECT count(*) FROM daily_visitors") == [["2"]])
        #expect(Self.rows(s.dataDirectory, "SELECT count(DISTINCT visitor) FROM events WHERE bot = 0") == [["2"]])
        // Neither address nor User-Agent is anywhere in the file.
        let file = try Data(contentsOf: URL(fileURLWithPath: s.dataDirectory + "/tally.sqlite"))
        #expect(file.range(of: Data("127.0.0.1".utf8)) == nil && file.range(of: Data("Mozilla".utf8)) == nil)
    }

    @Test func forwardedForCountsOnlyFromTrustedProxies() async throws {
        let s = try await TestServer.start { $0.trustedProxies = [AddressRangeParse("127.0.0.0/8")] }
        defer { s.removeData() }
        let c = try await s.http()
        for xff in ["198.51.100.1", "198.51.100.1", "198.51.100.2", "203.0.113.50, 198.51.100.2"] {
            #expect(try await c.request(.POST, "/event", body: event("xff", "/"), headers: [("User-Agent", Self.chrome), ("X-Forwarded-For", xff)]).status == 202)
        }
        _ = try await s.waitForStats(c, "site_id=xff") { $0["total_views"] as? Int == 4 }
        await c.close()
        try await s.stop()
        // 198.51.100.1 twice, 198.51.100.2 twice (the left-most claim of the last is ignored).
        #expect(Self.rows(s.dataDirectory, "SELECT count(*) FROM daily_visitors") == [["2"]])

        let untrusted = try await TestServer.start()
        defer { untrusted.removeData() }
        let u = try await untrusted.http()
        for xff in ["198.51.100.1", "198.51.100.2"] {
            #expect(try await u.request(.POST, "/event", body: event("xff", "/"), headers: [("User-Agent", Self.chrome), ("X-Forwarded-For", xff)]).status == 202)
        }
        _ = try await untrusted.waitForStats(u, "site_id=xff") { $0["total_views"] as? Int == 2 }
        await u.close()
        try await untrusted.stop()
        // Without trusted proxies both come from the socket peer: one visitor.
        #expect(Self.rows(untrusted.dataDirectory, "SELECT count(*) FROM daily_visitors") == [["1"]])
    }

    @Test func wireVersion2CarriesAttributionAndClientFacts() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let wire = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        try await wire.send(EventsFrame(sequence: 1, ackRequested: true, siteID: "edge-wire", events: [
            WireEvent(eventType: "page_view", path: "/w", timestamp: Timestamp.parse("2025-11-14T12:00:00Z")!,
                      referrer: "https://t.co/x", utmCampaign: "launch", clientAddress: "203.0.113.9", userAgent: Self.iPhone),
            WireEvent(eventType: "page_view", path: "/w", timestamp: Timestamp.parse("2025-11-14T12:00:01Z")!,
                      clientAddress: "203.0.113.9", userAgent: Self.iPhone),
            WireEvent(eventType: "page_view", path: "/w", timestamp: Timestamp.parse("2025-11-14T12:00:02Z")!,
                      clientAddress: "203.0.113.9", userAgent: Self.googlebot),
        ]))
        try await wire.waitForAck(1)
        await wire.close()
        let c = try await s.http()
        _ = try await s.waitForStats(c, "site_id=edge-wire") { $0["total_views"] as? Int == 2 }
        #expect(try await c.get("/metrics").body.contains(#"tally_events_filtered_total{transport="tcp",reason="bot"} 1"#))
        await c.close()
        try await s.stop()
        #expect(Self.rows(s.dataDirectory, "SELECT referrer, utm_campaign, device, browser, os, bot FROM events ORDER BY id") == [
            ["t.co", "launch", "mobile", "Safari", "iOS", "0"], [nil, nil, "mobile", "Safari", "iOS", "0"], [nil, nil, nil, nil, nil, "1"]])
        #expect(Self.rows(s.dataDirectory, "SELECT count(*) FROM daily_visitors") == [["1"]])
    }

    /// The salt outlives a restart (same day, same visitor), and collectors sharing a
    /// PostgreSQL store share it.
    @Test func saltsArePersistedAndShared() async throws {
        let dir = NSTemporaryDirectory() + "tally-salt-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for _ in 0..<2 {
            let s = try await TestServer.start(dataDirectory: dir)
            let c = try await s.http()
            #expect(try await c.request(.POST, "/event?ack=durable", body: event("salt", "/"), headers: [("User-Agent", Self.chrome)]).status == 202)
            await c.close()
            try await s.stop()
        }
        #expect(Self.rows(dir, "SELECT count(DISTINCT visitor) FROM events") == [["1"]])

        guard ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] != nil else { return }
        let url = try await PostgresTestDatabase.create(prefix: "salt")
        let a = try await TestServer.start { $0.storeURL = url }
        let b = try await TestServer.start { $0.storeURL = url }
        defer { a.removeData(); b.removeData() }
        for s in [a, b] {
            let c = try await s.http()
            #expect(try await c.request(.POST, "/event?ack=durable", body: event("salt-pg", "/"), headers: [("User-Agent", Self.chrome)]).status == 202)
            _ = try await s.waitForStats(c, "site_id=salt-pg") { ($0["total_views"] as? Int ?? 0) >= 1 }
            await c.close()
        }
        let c = try await a.http()
        _ = try await a.waitForStats(c, "site_id=salt-pg") { $0["total_views"] as? Int == 2 }
        await c.close()
        let visitors = try await PostgresTestDatabase.query(url, "SELECT count(DISTINCT visitor)::text FROM events WHERE site_id = 'salt-pg'")
        #expect(visitors == ["1"])
        try await a.stop()
        try await b.stop()
    }
}

func AddressRangeParse(_ s: String) -> AddressRange { AddressRange(s)! }
