import CSQLite
import Foundation
import NIOHTTP1
import Testing
import TallyClient
import TallyCore

/// Purges and retention through their real interfaces: the `tally sites purge` binary, the
/// admin API and `--raw-retention-days`, on a running collector's SQLite file.
@Suite(.serialized) struct LifecycleEndToEndTests {
    /// Raw rows of `site` in the SQLite file, read by SQL.
    static func rawRows(_ s: TestServer, site: String) throws -> Int {
        var db: OpaquePointer?
        guard sqlite3_open_v2(s.dataDirectory + "/tally.sqlite", &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return -1 }
        defer { sqlite3_close(db) }
        var st: OpaquePointer?
        sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE site_id = ?1", -1, &st, nil)
        defer { sqlite3_finalize(st) }
        sqlite3_bind_text(st, 1, site, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        return sqlite3_step(st) == SQLITE_ROW ? Int(sqlite3_column_int64(st, 0)) : -1
    }

    static func post(_ c: HTTPClientConnection, site: String, count: Int, day: String = "2025-11-14") async throws {
        let body = "[" + (0..<count).map { eventJSON(site: site, path: "/p\($0 % 4)", user: "u\($0 % 7)", timestamp: day + "T12:00:00Z") }
            .joined(separator: ",") + "]"
        let r = try await c.post("/events?ack=durable", body)
        #expect(r.status == 202, "\(r.body)")
    }

    static func views(_ c: HTTPClientConnection, _ query: String) async throws -> Int {
        try json(try await c.get("/stats?" + query).body)["total_views"] as? Int ?? -1
    }

    @Test func aPurgedSiteStaysEmptyAfterARestartWithItsBatchesStillSpooled() async throws {
        let a = try await TestServer.start { $0.shutdownTimeout = .seconds(2) }
        defer { a.removeData() }
        var c = try await a.http()
        try await Self.post(c, site: "gone", count: 30)
        try await Self.post(c, site: "kept", count: 20)
        _ = try await a.waitForStats(c, "site_id=gone") { $0["total_views"] as? Int == 30 }
        _ = try await a.waitForStats(c, "site_id=kept") { $0["total_views"] as? Int == 20 }

        // Loading blocked: the next events are durable in the spool only, and stay there when
        // the collector stops.
        var db: OpaquePointer?
        #expect(sqlite3_open(a.dataDirectory + "/tally.sqlite", &db) == SQLITE_OK)
        #expect(sqlite3_exec(db, "BEGIN EXCLUSIVE", nil, nil, nil) == SQLITE_OK)
        try await Self.post(c, site: "gone", count: 15)
        try await Self.post(c, site: "kept", count: 5)
        await c.close()
        try await a.stop()
        #expect(sqlite3_exec(db, "COMMIT", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        let spooled = try FileManager.default.contentsOfDirectory(atPath: a.dataDirectory + "/spool")
            .filter { !$0.hasPrefix(".") && $0 != "tmp" && $0 != "quarantine" }
        #expect(!spooled.isEmpty)

        let purge = try SitesEndToEndTests.cli(["sites", "purge", "gone", "--data-dir", a.dataDirectory])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(purge.stdout.contains("purged all data of site \"gone\"") && purge.stdout.contains("deleted 30 raw rows"), "\(purge.stdout)")
        #expect(try Self.rawRows(a, site: "gone") == 0 && Self.rawRows(a, site: "kept") == 20)

        // The next start loads the spooled batches: the purged site's events in them are dropped.
        let b = try await TestServer.start(dataDirectory: a.dataDirectory)
        c = try await b.http()
        _ = try await b.waitForStats(c, "site_id=kept") { $0["total_views"] as? Int == 25 }
        let deadline = ContinuousClock.now + .seconds(20)
        while try json(try await c.get("/health").body)["spool_backlog_files"] as? Int != 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await Self.views(c, "site_id=gone") == 0)
        #expect(try await Self.views(c, "site_id=gone&date=2025-11-14") == 0)
        #expect(try json(try await c.get("/stats?site_id=gone").body)["unique_users"] as? Int == 0)
        #expect(try Self.rawRows(b, site: "gone") == 0 && Self.rawRows(b, site: "kept") == 25)
        // Events sent after the purge count again.
        try await Self.post(c, site: "gone", count: 3)
        _ = try await b.waitForStats(c, "site_id=gone") { $0["total_views"] as? Int == 3 && $0["unique_users"] as? Int == 3 }
        await c.close()
        try await b.stop()
    }

    @Test func theAdminAPIPurgesASiteWhileTheCollectorServes() async throws {
        let dir = NSTemporaryDirectory() + "tally-purge-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = "admin-token-0123456789"
        try token.write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let s = try await TestServer.start { $0.adminTokenFile = dir + "/token" }
        defer { s.removeData() }
        let c = try await s.http()
        func call(_ method: HTTPMethod, _ path: String, token: String? = token) async throws -> HTTPClientResponse {
            try await c.request(method, path, body: String?.none, headers: token.map { [("Authorization", "Bearer " + $0)] } ?? [])
        }
        try await Self.post(c, site: "a", count: 12, day: "2025-11-13")
        try await Self.post(c, site: "a", count: 8, day: "2025-11-14")
        try await Self.post(c, site: "b", count: 10)
        _ = try await s.waitForStats(c, "site_id=a") { $0["total_views"] as? Int == 20 }
        _ = try await s.waitForStats(c, "site_id=b") { $0["total_views"] as? Int == 10 }
        let day14 = try await c.get("/stats?site_id=a&date=2025-11-14").body

        #expect(try await call(.DELETE, "/api/v1/sites/a/data", token: nil).status == 401)
        var r = try await call(.DELETE, "/api/v1/sites/a/data?before=2025-13-01&keep=1")
        #expect(r.status == 400)
        #expect(try json(r.body)["details"] as? [String] == [
            "before must be a date as YYYY-MM-DD (UTC); data of earlier days is deleted", #"unknown query parameter "keep"; known: before"#])

        r = try await call(.DELETE, "/api/v1/sites/a/data?before=2025-11-14")
        #expect(r.status == 202, "\(r.body)")
        let purge = try #require(try json(r.body)["purge"] as? [String: Any])
        #expect(purge["site_id"] as? String == "a" && purge["before"] as? String == "2025-11-14" && purge["done"] as? Bool == false)
        // The reports change at once: the 13th is gone, the 14th is as it was.
        #expect(try await Self.views(c, "site_id=a") == 8)
        #expect(try await Self.views(c, "site_id=a&date=2025-11-13") == 0)
        #expect(try await c.get("/stats?site_id=a&date=2025-11-14").body == day14)
        #expect(try await Self.views(c, "site_id=b") == 10)
        // The raw rows follow in the background; the purge says when.
        let deadline = ContinuousClock.now + .seconds(30)
        var done = false
        while !done, ContinuousClock.now < deadline {
            r = try await call(.GET, "/api/v1/sites/a/data/purges")
            done = (try json(r.body)["purges"] as? [[String: Any]])?.first?["done"] as? Bool == true
            if !done { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(done, "\(r.body)")
        #expect(try Self.rawRows(s, site: "a") == 8 && Self.rawRows(s, site: "b") == 10)

        #expect(try await call(.DELETE, "/api/v1/sites/b/data").status == 202)
        #expect(try await Self.views(c, "site_id=b") == 0)
        // Any site id with data, registered or not; one that has none is no error either.
        #expect(try await call(.DELETE, "/api/v1/sites/never-seen/data").status == 202)
        await c.close()
        try await s.stop()
    }

    @Test func retentionKeepsTheNumbersAndDeletesOldRawRows() async throws {
        let today = UTCDay.today
        func day(_ back: Int32) -> String { "\(UTCDay(number: today.number - back))" }
        // Without retention, an old day's rows are stored.
        let a = try await TestServer.start()
        defer { a.removeData() }
        var c = try await a.http()
        try await Self.post(c, site: "r", count: 5, day: day(10))
        _ = try await a.waitForStats(c, "site_id=r") { $0["total_views"] as? Int == 5 }
        #expect(try Self.rawRows(a, site: "r") == 5)
        await c.close()
        try await a.stop()

        // With two days kept, the next start sweeps them away, and rows that arrive already
        // older are counted and never stored; the numbers keep every day.
        let b = try await TestServer.start(dataDirectory: a.dataDirectory) { $0.rawRetentionDays = 2 }
        c = try await b.http()
        try await Self.post(c, site: "r", count: 4, day: day(2))
        try await Self.post(c, site: "r", count: 3, day: day(3))
        try await Self.post(c, site: "r", count: 2, day: day(0))
        _ = try await b.waitForStats(c, "site_id=r") { $0["total_views"] as? Int == 14 }
        let deadline = ContinuousClock.now + .seconds(30)
        while try Self.rawRows(b, site: "r") != 6, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try Self.rawRows(b, site: "r") == 6)
        #expect(try await Self.views(c, "site_id=r&date=\(day(10))") == 5)
        #expect(try await Self.views(c, "site_id=r&date=\(day(3))") == 3)
        #expect(try await c.get("/metrics").body.contains(#"tally_raw_rows_deleted_total{reason="retention"} 5"#))
        await c.close()
        try await b.stop()

        // Reports kept four days: the tenth day back goes from them too, all time included.
        await #expect(throws: (any Error).self) {
            _ = try await TestServer.start(dataDirectory: a.dataDirectory) { $0.rawRetentionDays = 2; $0.rollupRetentionDays = 1 }
        }
        let d = try await TestServer.start(dataDirectory: a.dataDirectory) { $0.rawRetentionDays = 2; $0.rollupRetentionDays = 4 }
        c = try await d.http()
        _ = try await d.waitForStats(c, "site_id=r") { $0["total_views"] as? Int == 9 }
        #expect(try await Self.views(c, "site_id=r&date=\(day(10))") == 0)
        #expect(try await Self.views(c, "site_id=r&date=\(day(3))") == 3)
        try await Self.post(c, site: "r", count: 2, day: day(6))
        try await Self.post(c, site: "r", count: 1, day: day(1))
        _ = try await d.waitForStats(c, "site_id=r") { $0["total_views"] as? Int == 10 }
        #expect(try Self.rawRows(d, site: "r") == 7)
        await c.close()
        try await d.stop()
    }

    @Test func aSiteOwnRetentionTakesEffectWhenItIsRegistered() async throws {
        let old = "\(UTCDay(number: UTCDay.today.number - 5))"
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        try await Self.post(c, site: "brief", count: 4, day: old)
        try await Self.post(c, site: "other", count: 4, day: old)
        _ = try await s.waitForStats(c, "site_id=brief") { $0["total_views"] as? Int == 4 }
        _ = try await s.waitForStats(c, "site_id=other") { $0["total_views"] as? Int == 4 }
        #expect(try Self.rawRows(s, site: "brief") == 4)

        let add = try SitesEndToEndTests.cli(["sites", "add", "brief", "--raw-retention-days", "1", "--data-dir", s.dataDirectory])
        #expect(add.status == 0, "\(add.stderr)")
        let shown = try SitesEndToEndTests.cli(["sites", "show", "brief", "--json", "--data-dir", s.dataDirectory])
        #expect(try json(shown.stdout)["raw_retention_days"] as? Int == 1)
        // The running collector picks the registry up, sweeps, and stores no more such rows.
        let deadline = ContinuousClock.now + .seconds(30)
        while try Self.rawRows(s, site: "brief") != 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try Self.rawRows(s, site: "brief") == 0 && Self.rawRows(s, site: "other") == 4)
        try await Self.post(c, site: "brief", count: 2, day: old)
        _ = try await s.waitForStats(c, "site_id=brief") { $0["total_views"] as? Int == 6 }
        #expect(try Self.rawRows(s, site: "brief") == 0)
        await c.close()
        try await s.stop()
    }
}
