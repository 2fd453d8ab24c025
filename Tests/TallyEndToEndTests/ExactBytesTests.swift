import Foundation
import NIOCore
import Testing
import TallyClient
import TallyCore
import TallyTestSupport
import TallyWire

/// Names are kept as the bytes they arrived as, through ingest (HTTP JSON and wire TCP), the
/// spool, the store (SQLite and PostgreSQL) and `/stats`, also after a restart (cold caches):
/// NFC and NFD spellings stay two sites, two users and two paths; NUL does not cut a name;
/// every UTF-8 byte value survives.
@Suite(.serialized) struct ExactBytesTests {
    static let nfc = "caf\u{E9}"
    static let nfd = "cafe\u{301}"

    /// Paths covering every byte value UTF-8 has (U+0000…U+07FF whole, and every lead byte of
    /// the 3- and 4-byte forms), in pieces within the 2048-byte path limit, plus the names
    /// PostgreSQL's spelling of U+0000 must keep apart.
    static let paths: [String] = {
        var scalars = (0...0x7FF).map { Unicode.Scalar(UInt32($0))! }
        for lead in 0xE0...0xEF {
            let low = lead == 0xE0 ? 0xA0 : 0x80, high = lead == 0xED ? 0x9F : 0xBF
            for second in [low, high] {
                scalars.append(Unicode.Scalar(UInt32((lead & 0x0F) << 12 | (second & 0x3F) << 6 | 0x3F))!)
            }
        }
        for lead in 0xF0...0xF4 {
            let low = lead == 0xF0 ? 0x90 : 0x80, high = lead == 0xF4 ? 0x8F : 0xBF
            for second in [low, high] {
                scalars.append(Unicode.Scalar(UInt32((lead & 0x07) << 18 | (second & 0x3F) << 12 | 0x3F << 6 | 0x3F))!)
            }
        }
        var out: [String] = []
        var i = 0
        while i < scalars.count {
            var s = "/"
            s.unicodeScalars.append(contentsOf: scalars[i..<min(i + 500, scalars.count)])
            out.append(s)
            i += 500
        }
        return out + ["/a", "/a\u{0}b", "/\u{0}", "/\(nfc)", "/\(nfd)", "/x\u{0}", "/x\u{FFFF}", "/x\u{FFFF}0", "/x\u{FFFF}\u{FFFF}"]
    }()

    static func percentEncoded(_ s: String) -> String {
        s.utf8.map { String(format: "%%%02X", $0) }.joined()
    }

    /// `top_paths` of a site as bytes → views.
    static func topPaths(_ c: HTTPClientConnection, _ site: String) async throws -> (views: Int, users: Int, paths: [ExactString: Int]) {
        let r = try await c.get("/stats?site_id=\(percentEncoded(site))&limit=100")
        #expect(r.status == 200)
        let o = try json(r.body)
        #expect((o["site_id"] as? String).map { Array($0.utf8) } == Array(site.utf8))
        var paths: [ExactString: Int] = [:]
        for p in o["top_paths"] as? [[String: Any]] ?? [] {
            paths[ExactString(p["path"] as! String)] = p["views"] as? Int
        }
        return (o["total_views"] as? Int ?? -1, o["unique_users"] as? Int ?? -1, paths)
    }

    func roundTrip(storeURL: String?) async throws {
        let dir = NSTemporaryDirectory() + "tally-exact-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var s = try await TestServer.start(dataDirectory: dir) { $0.storeURL = storeURL }
        // Each site: one view of each path over HTTP; NFC users on the NFC site alternate
        // between an NFC and an NFD user id.
        func batch(_ site: String) -> String {
            "[" + Self.paths.enumerated().map { i, p in
                "{\"site_id\":\(JSONText.quote(site)),\"event_type\":\"page_view\",\"path\":\(JSONText.quote(p)),"
                    + "\"user_id\":\(JSONText.quote(site.utf8Equals(Self.nfd) || i % 2 == 0 ? site : Self.nfd)),"
                    + "\"timestamp\":\"2025-11-14T12:00:00Z\"}"
            }.joined(separator: ",") + "]"
        }
        let c = try await s.http()
        for site in [Self.nfc, Self.nfd] {
            let r = try await c.post("/events", batch(site))
            #expect(r.status == 202, "\(r.body)")
        }
        // The NFD site gets a second view of each path over wire TCP.
        let wire = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        try await wire.send(EventsFrame(sequence: 1, ackRequested: true, siteID: Self.nfd, events: Self.paths.map {
            WireEvent(eventType: "page_view", path: $0, userID: Self.nfd, timestamp: Timestamp.parse("2025-11-14T12:00:00Z")!)
        }))
        try await wire.waitForAck(1)
        await wire.close()
        await c.close()
        try await s.stop()

        // After a restart (every cache cold), one more NFD view of an NFC-named path.
        s = try await TestServer.start(dataDirectory: dir) { $0.storeURL = storeURL }
        let c2 = try await s.http()
        #expect(try await c2.post("/event?ack=durable", "{\"site_id\":\(JSONText.quote(Self.nfd)),\"event_type\":\"page_view\","
            + "\"path\":\(JSONText.quote("/" + Self.nfc)),\"timestamp\":\"2025-11-14T12:00:00Z\"}").status == 202)
        _ = try await s.waitForStats(c2, "site_id=\(Self.percentEncoded(Self.nfd))") { $0["total_views"] as? Int == 2 * Self.paths.count + 1 }

        let a = try await Self.topPaths(c2, Self.nfc)
        #expect(a.views == Self.paths.count)
        #expect(a.users == 2)
        #expect(a.paths == Dictionary(uniqueKeysWithValues: Self.paths.map { (ExactString($0), 1) }))
        let b = try await Self.topPaths(c2, Self.nfd)
        #expect(b.users == 1)
        var expected = Dictionary(uniqueKeysWithValues: Self.paths.map { (ExactString($0), 2) })
        expected[ExactString("/" + Self.nfc)] = 3
        #expect(b.paths == expected)
        await c2.close()
        try await s.stop()
    }

    @Test func namesRoundTripByteForByteOnSQLite() async throws {
        try await roundTrip(storeURL: nil)
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] != nil))
    func namesRoundTripByteForByteOnPostgreSQL() async throws {
        try await roundTrip(storeURL: try await PostgresTestDatabase.create(prefix: "exact"))
    }
}
