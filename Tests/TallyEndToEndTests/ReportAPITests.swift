import Foundation
import NIOHTTP1
import Testing
import TallyClient

/// The reporting API over a real socket: ranges in a zone whose clocks go back, breakdowns,
/// realtime, both export formats, read keys, and 400s that name every problem.
@Suite(.serialized) struct ReportAPITests {
    static let events = [
        // 2026-10-31 23:59:59 in New York (EDT), so not on 11-01 there, though it is in UTC.
        #"{"site_id":"shop","event_type":"page_view","path":"/a","user_id":"u1","timestamp":"2026-11-01T03:59:59Z"}"#,
        // 01:30 EDT, then 01:30 EST: the repeated hour.
        #"{"site_id":"shop","event_type":"page_view","path":"/a","user_id":"u2","timestamp":"2026-11-01T05:30:00Z","referrer":"https://news.example/x"}"#,
        #"{"site_id":"shop","event_type":"page_view","path":"/b, \"quoted\"","user_id":"u2","timestamp":"2026-11-01T06:30:00Z","utm_source":"mail"}"#,
        #"{"site_id":"shop","event_type":"signup","path":"/b","user_id":"","timestamp":"2026-11-01T15:00:00Z"}"#,
        #"{"site_id":"shop","event_type":"page_view","path":"/c","timestamp":"2026-11-02T04:59:59Z"}"#,
    ]

    static func get(_ c: HTTPClientConnection, _ path: String, key: String? = nil) async throws -> HTTPClientResponse {
        try await c.request(.GET, path, body: String?.none, headers: key.map { [("Authorization", "Bearer " + $0)] } ?? [])
    }

    @Test func reportsOverHTTP() async throws {
        let dir = NSTemporaryDirectory() + "tally-reports-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = "admin-token-0123456789"
        try token.write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let s = try await TestServer.start { $0.adminTokenFile = dir + "/token" }
        defer { s.removeData() }
        let c = try await s.http()
        let sent = try await c.post("/events?ack=durable", "[" + Self.events.joined(separator: ",") + "]")
        #expect(sent.status == 202)

        let range = "site_id=shop&from=2026-11-01&to=2026-11-01&tz=America/New_York"
        let aggregate = #"{"site_id":"shop","from":"2026-11-01","to":"2026-11-01","tz":"America/New_York","views":3,"visitors":2,"users":1,"events":4}"#
        var body = ""
        for _ in 0..<400 {
            body = try await Self.get(c, "/api/v1/stats/aggregate?" + range).body
            if body == aggregate { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        // /a and /b by u2, and the anonymous /c (its visitor id from this connection's address).
        #expect(body == aggregate)

        let hours = try json(try await Self.get(c, "/api/v1/stats/timeseries?\(range)&interval=hour").body)
        let results = try #require(hours["results"] as? [[String: Any]])
        #expect(results.count == 25)
        #expect(results.map { $0["time"] as? String }.prefix(3) == ["2026-11-01T00:00", "2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00"])
        #expect(results[1]["views"] as? Int == 1 && results[2]["views"] as? Int == 1 && results[11]["time"] as? String == "2026-11-01T10:00" && results[11]["views"] as? Int == 0)

        let days = try await Self.get(c, "/api/v1/stats/timeseries?site_id=shop&from=2026-10-31&to=2026-11-01&tz=America/New_York").body
        #expect(days == #"{"site_id":"shop","from":"2026-10-31","to":"2026-11-01","tz":"America/New_York","interval":"day","results":[{"time":"2026-10-31","views":1,"visitors":1,"users":1},{"time":"2026-11-01","views":3,"visitors":2,"users":1}]}"#)

        let byReferrer = try await Self.get(c, "/api/v1/stats/breakdown?\(range)&property=referrer").body
        #expect(byReferrer == #"{"site_id":"shop","from":"2026-11-01","to":"2026-11-01","tz":"America/New_York","property":"referrer","results":[{"value":null,"views":2,"visitors":2,"events":3},{"value":"news.example","views":1,"visitors":1,"events":1}]}"#)

        // Every problem at once.
        let bad = try await Self.get(c, "/api/v1/stats/breakdown?site_id=shop&from=2026-11-02&to=2026-11-01&tz=Mars/Base&property=color&limit=0&extra=1")
        #expect(bad.status == 400)
        let details = try #require(try json(bad.body)["details"] as? [String])
        #expect(details.count == 5 && details.contains { $0.hasPrefix("tz ") } && details.contains { $0 == "to must not be before from" } && details.contains { $0.hasPrefix("property ") }
                && details.contains { $0.hasPrefix("limit ") } && details.contains { $0.contains("\"extra\"") })
        #expect(try await Self.get(c, "/api/v1/stats/aggregate?site_id=shop&from=2026-11-02&to=2026-11-01").status == 400)
        #expect(try await Self.get(c, "/api/v1/stats/timeseries?site_id=shop&from=2026-01-01&to=2026-12-31&interval=hour").status == 400)

        // Export: every row of the range, bot rows too, in both formats.
        let csv = try await Self.get(c, "/api/v1/export?\(range)")
        #expect(csv.status == 200 && csv.header("content-type")?.hasPrefix("text/csv") == true)
        let lines = csv.body.components(separatedBy: "\r\n")
        #expect(lines.count == 6 && lines[5].isEmpty)
        #expect(lines[0] == "id,site_id,event_type,path,user_id,timestamp,ingested_at,referrer,utm_source,utm_medium,utm_campaign,device,browser,os,visitor,bot")
        #expect(lines[2].hasPrefix("3,shop,page_view,\"/b, \"\"quoted\"\"\",u2,2026-11-01T06:30:00.000000Z,"))
        // An empty user_id is no user id (ingest stores none), so the row has a visitor id.
        #expect(lines[3].hasPrefix("4,shop,signup,/b,,2026-11-01T15:00:00.000000Z,") && lines[3].hasSuffix(",false"))
        let nd = try await Self.get(c, "/api/v1/export?\(range)&format=ndjson")
        let rows = try nd.body.split(separator: "\n").map { try json(String($0)) }
        #expect(rows.count == 4 && rows[1]["path"] as? String == "/b, \"quoted\"" && rows[0]["referrer"] as? String == "news.example")
        #expect(rows[0]["bot"] as? Bool == false && rows[2]["user_id"] is NSNull && (rows[2]["visitor"] as? String)?.count == 16)

        // Realtime: an event sent now.
        #expect(try await c.post("/event?ack=durable", #"{"site_id":"shop","event_type":"page_view","path":"/now"}"#).status == 202)
        var now: [String: Any] = [:]
        for _ in 0..<400 {
            now = try json(try await Self.get(c, "/api/v1/stats/realtime?site_id=shop").body)
            if now["views"] as? Int == 1 { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(now["views"] as? Int == 1 && now["visitors"] as? Int == 1)

        // With a read key, every report needs it.
        let add = try await c.request(.POST, "/api/v1/sites", body: #"{"id":"shop"}"#, headers: [("Authorization", "Bearer " + token), ("Content-Type", "application/json")])
        #expect(add.status == 201)
        let made = try await c.request(.POST, "/api/v1/sites/shop/keys", body: #"{"kind":"read"}"#, headers: [("Authorization", "Bearer " + token), ("Content-Type", "application/json")])
        let key = try #require(try json(made.body)["key"] as? String)
        for path in ["/api/v1/stats/aggregate?", "/api/v1/stats/timeseries?", "/api/v1/stats/breakdown?property=path&", "/api/v1/stats/realtime?", "/api/v1/export?"] {
            let query = path.contains("realtime") ? "site_id=shop" : range
            var refused = false
            for _ in 0..<200 {
                refused = try await Self.get(c, path + query).status == 401
                if refused { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            #expect(refused, "\(path) without a key")
            #expect(try await Self.get(c, path + query, key: key).status == 200, "\(path) with the read key")
            #expect(try await Self.get(c, path + query + "&key=" + key).status == 200, "\(path) with ?key=")
        }
        let spec = try json(try await Self.get(c, "/api/v1/openapi.json").body)
        #expect(spec["openapi"] as? String == "3.1.0" && (spec["paths"] as? [String: Any])?.count == 18)
        await c.close()
        try await s.stop()
    }

    /// An export longer than a page (16,384 rows): the next page is read while one is written,
    /// and every row arrives once, in id order, with its own fields.
    @Test func exportAcrossPages() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        let total = 40_000
        for batch in stride(from: 0, to: total, by: 10_000) {
            let body = "[" + (batch..<batch + 10_000).map {
                #"{"site_id":"big","event_type":"page_view","path":"/p\#($0)","user_id":"u\#($0 % 97)","timestamp":"2026-11-03T12:00:00Z"}"#
            }.joined(separator: ",") + "]"
            #expect(try await c.post("/events?ack=durable", body).status == 202)
        }
        let range = "site_id=big&from=2026-11-03&to=2026-11-03"
        var lines: [Substring] = []
        for _ in 0..<400 {
            lines = try await Self.get(c, "/api/v1/export?\(range)").body.split(separator: "\r\n")
            if lines.count == total + 1 { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(lines.count == total + 1)
        for (i, line) in lines.dropFirst().enumerated() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            guard f.count == 16, f[0] == "\(i + 1)", f[3] == "/p\(i)", f[4] == "u\(i % 97)" else {
                Issue.record("row \(i + 1): \(line)")
                break
            }
        }
        let nd = try await Self.get(c, "/api/v1/export?\(range)&format=ndjson").body
        #expect(nd.split(separator: "\n").count == total && nd.hasSuffix(#""bot":false}"# + "\n"))
    }
}
