import Foundation
import Testing
import TallyTestSupport
import TallyCore
@testable import TallyStore

/// The interned SQLite schema: rollups agree with the raw rows however loads are split, the
/// `events` view gives the text back, and a version 1 file is upgraded in place.
@Suite struct SQLiteSchemaTests {
    /// Random events over a few sites, days, paths and users, with every optional field missing
    /// sometimes and an empty user id (which is not a user).
    static func randomEvents(_ n: Int, seed: UInt64) -> [Event] {
        var rng = SeededRandom(seed)
        let day0 = ts("2025-11-10T00:00:00Z")
        return (0..<n).map { _ in
            let site = "site-\(rng.next() % 5)"
            let type = rng.next() % 8 == 0 ? "click" : "page_view"
            let path: String? = rng.next() % 10 == 0 ? nil : "/p/\(rng.next() % 300)"
            let r = rng.next() % 20
            let user: String? = r == 0 ? nil : r == 1 ? "" : "u\(rng.next() % 2000)"
            let t = day0 + Int64(rng.next() % (4 * 86_400)) * 1_000_000
            // Some browser events: a referrer, an anonymous visitor, now and then a bot.
            guard rng.next() % 4 == 0 else { return Event(siteID: site, eventType: type, path: path, userID: user, timestamp: t) }
            let visit = Visit(visitor: user == nil ? rng.next() % 50 + 1 : 0, device: .desktop, browser: "Firefox", os: "Linux",
                              isBot: rng.next() % 10 == 0)
            return Event(siteID: site, eventType: type, path: path, userID: user, timestamp: t,
                         referrer: rng.next() % 2 == 0 ? "ref-\(rng.next() % 3).example" : nil, visit: visit)
        }
    }

    /// /stats computed straight from the events.
    static func expected(_ events: [Event], site: String, day: UTCDay?) -> SiteStats {
        let mine = events.filter { $0.siteID == site && (day == nil || $0.day == day) && $0.counts }
        let views = mine.filter(\.isPageView)
        var byPath: [String: Int64] = [:]
        for e in views { if let p = e.path { byPath[p, default: 0] += 1 } }
        let users = Set(mine.compactMap { $0.userID }.filter { !$0.isEmpty })
        let top = byPath.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10).map { PathViews(path: $0.key, views: $0.value) }
        return SiteStats(totalViews: Int64(views.count), uniqueUsers: Int64(users.count), topPaths: Array(top))
    }

    @Test func rollupsMatchTheRawEventsAcrossLoadsAndRestarts() async throws {
        try await withTempDir { dir in
            let path = dir + "/t.sqlite"
            let events = Self.randomEvents(40_000, seed: 7)
            var store = SQLiteStore(path: path)
            try await store.prepare()
            // Small loads, one large load (rollup and append run in parallel past 8192 rows),
            // a group of batches in one call, and a restart (empty in-memory caches) between.
            _ = try await store.load(StoreBatch(id: "a", createdAt: 1, events: Array(events[0..<100])))
            _ = try await store.load(StoreBatch(id: "b", createdAt: 2, events: Array(events[100..<20_000])))
            try await store.close()
            store = SQLiteStore(path: path)
            try await store.prepare()
            _ = try await store.load([StoreBatch(id: "c", createdAt: 3, events: Array(events[20_000..<30_000])),
                                      StoreBatch(id: "b", createdAt: 2, events: Array(events[100..<20_000])),
                                      StoreBatch(id: "d", createdAt: 4, events: Array(events[30_000...]))])
            #expect(try await store.eventCount() == 40_000)
            for site in (0..<5).map({ "site-\($0)" }) {
                #expect(try await store.stats(siteID: site, day: nil, limit: 10) == Self.expected(events, site: site, day: nil))
                for d in 0..<5 {
                    let day = UTCDay(number: UTCDay(containing: ts("2025-11-10T00:00:00Z")).number + Int32(d))
                    #expect(try await store.stats(siteID: site, day: day, limit: 10) == Self.expected(events, site: site, day: day))
                }
            }
            try await store.close()

            // The incremental rollups equal a rebuild from event_rows, row for row, and the user
            // sets hold exactly the distinct (site, day, user) of the raw rows.
            let db = try SQLiteConnection(path: path)
            let tables = ["daily_views", "daily_path_views", "site_path_views", "daily_visitors"]
            let before = try tables.map { try Self.dump(db, $0) }
            let sets = try Self.userSets(db)
            try db.exec("BEGIN; \(SQLiteSchema.rebuildViewRollups)")
            try SQLiteUserSets(db: db).rebuild()
            let after = try tables.map { try Self.dump(db, $0) }
            let rebuiltSets = try Self.userSets(db)
            try db.exec("ROLLBACK")
            #expect(before == after)
            #expect(sets == rebuiltSets)
            let raw = try Self.strings(db, """
                SELECT DISTINCT e.site || ',' || (e.event_ts / 86400000000) || ',' || e.user FROM event_rows e
                JOIN users u ON u.id = e.user WHERE u.name <> '' AND \(SQLiteSchema.counts)
                UNION ALL SELECT DISTINCT e.site || ',all,' || e.user FROM event_rows e JOIN users u ON u.id = e.user
                WHERE u.name <> '' AND \(SQLiteSchema.counts)
                """)
            #expect(sets == Set(raw))
            #expect(sets.count > 1000)
        }
    }

    @Test func eventsViewGivesTheTextBack() async throws {
        try await withTempDir { dir in
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            _ = try await store.load(StoreBatch(id: "x", createdAt: 42, events: scenario2))
            try await store.close()
            let db = try SQLiteConnection(path: dir + "/t.sqlite")
            let s = try db.statement("SELECT site_id, event_type, coalesce(path, '-'), coalesce(user_id, '-'), event_ts, ingested_at FROM events ORDER BY id")
            var got: [String] = []
            while try s.step() {
                got.append("\(s.text(0)) \(s.text(1)) \(s.text(2)) \(s.text(3)) \(s.int(4)) \(s.int(5))")
            }
            #expect(got == scenario2.map { "\($0.siteID) \($0.eventType) \($0.path ?? "-") \($0.userID ?? "-") \($0.timestamp) 42" })
        }
    }

    @Test func version1FileIsUpgradedInPlace() async throws {
        try await withTempDir { dir in
            let path = dir + "/v1.sqlite"
            // A file as the version 1 store left it: text rows, text rollups, a loaded batch.
            let db = try SQLiteConnection(path: path)
            try db.exec(Self.version1Schema)
            let insert = try db.statement("INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at) VALUES(?1, ?2, ?3, ?4, ?5, 7)")
            for e in scenario2 {
                insert.bind(1, e.siteID); insert.bind(2, e.eventType); insert.bind(3, e.path); insert.bind(4, e.userID); insert.bind(5, e.timestamp)
                try insert.run()
            }
            try db.exec("""
                INSERT INTO loaded_batches VALUES('old-batch', 5, 1);
                INSERT INTO daily_views VALUES('demo-site', 20406, 5);
                """)
            let store = SQLiteStore(path: path)
            try await store.prepare()
            let expected = SiteStats(totalViews: 5, uniqueUsers: 3, topPaths: [
                PathViews(path: "/home", views: 2), PathViews(path: "/products", views: 2), PathViews(path: "/about", views: 1)])
            #expect(try await store.stats(siteID: "demo-site", day: nil, limit: 10) == expected)
            #expect(try await store.stats(siteID: "demo-site", day: UTCDay(parsing: "2025-11-14"), limit: 10) == expected)
            #expect(try await store.eventCount() == 5)
            // Exactly-once survives the upgrade, and loading goes on.
            #expect(try await store.load(StoreBatch(id: "old-batch", createdAt: 1, events: scenario2)) == .alreadyLoaded)
            #expect(try await store.load(StoreBatch(id: "new-batch", createdAt: 1, events: [scenario2[0]])) == .loaded)
            #expect(try await store.stats(siteID: "demo-site", day: nil, limit: 1) ==
                    SiteStats(totalViews: 6, uniqueUsers: 3, topPaths: [PathViews(path: "/home", views: 3)]))
            // The reporting API reads the rows of the old file, before and after they are rolled up.
            let day = UTCDay(parsing: "2025-11-14")!
            for _ in 0..<2 {
                #expect(try await store.figures(siteID: "demo-site", spans: [TimeSpan(day.start, day.start + 86_400_000_000)])
                        == [ReportFigures(views: 6, events: 6, users: 3, visitors: 3)])
                while try await store.rollUpReports() > 0 {}
            }
            try await store.close()
            let v = try db.statement("PRAGMA user_version")
            #expect(try v.step() && v.int(0) == Int64(SQLiteSchema.version))
        }
    }

    /// Version 3 kept the detail columns in `event_rows`; version 4 moves the rows that have
    /// any to `event_details` and narrows `event_rows` again, keeping every value.
    @Test func version3FileIsUpgradedInPlace() async throws {
        try await withTempDir { dir in
            let path = dir + "/v3.sqlite"
            let db = try SQLiteConnection(path: path)
            let detailTable = SQLiteSchema.v3Tables.range(of: "CREATE TABLE IF NOT EXISTS daily_visitors")!
            let v3 = SQLiteSchema.tables
                .replacingOccurrences(of: "ingested_at INTEGER NOT NULL);",
                                      with: "ingested_at INTEGER NOT NULL, \(SQLiteSchema.detailColumns.joined(separator: ", ")));")
                .replacingOccurrences(of: String(SQLiteSchema.v3Tables[..<detailTable.lowerBound]), with: "")
                .replacingOccurrences(of: "CREATE VIEW IF NOT EXISTS events AS \(SQLiteSchema.eventsView);", with: "")
            try db.exec(v3)
            try db.exec("""
                INSERT INTO sites(id, name) VALUES(1, 'shop');
                INSERT INTO event_types(id, name) VALUES(1, 'page_view');
                INSERT INTO paths(id, name) VALUES(1, '/');
                INSERT INTO labels(id, name) VALUES(1, 'google.com'), (2, 'Chrome'), (3, 'Windows');
                INSERT INTO event_rows(id, site, type, path, user, event_ts, ingested_at) VALUES(1, 1, 1, 1, NULL, 86400000000, 7);
                INSERT INTO event_rows VALUES(2, 1, 1, 1, NULL, 86400000001, 7, 1, NULL, NULL, NULL, 1, 2, 3, 42, 0);
                INSERT INTO event_rows VALUES(3, 1, 1, 1, NULL, 86400000002, 7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1);
                INSERT INTO daily_views VALUES(1, 1, 2);
                INSERT INTO daily_path_views VALUES(1, 1, 1, 2);
                INSERT INTO site_path_views VALUES(1, 1, 2);
                INSERT INTO daily_visitors VALUES(1, 1, 42);
                INSERT INTO loaded_batches VALUES('old-batch', 3, 1);
                CREATE VIEW events AS SELECT e.id, s.name AS site_id, r.name AS referrer FROM event_rows e
                    JOIN sites s ON s.id = e.site LEFT JOIN labels r ON r.id = e.referrer;
                CREATE VIEW my_referrers AS SELECT site_id, referrer, count(*) AS n FROM events WHERE referrer IS NOT NULL GROUP BY 1, 2;
                PRAGMA user_version = 3;
                """)
            let store = SQLiteStore(path: path)
            try await store.prepare()
            #expect(try await store.stats(siteID: "shop", day: nil, limit: 10) ==
                    SiteStats(totalViews: 2, uniqueUsers: 0, topPaths: [PathViews(path: "/", views: 2)]))
            #expect(try await store.load(StoreBatch(id: "old-batch", createdAt: 1, events: scenario2)) == .alreadyLoaded)
            // The bot row counts nowhere; visitor 42 is the one visitor.
            for _ in 0..<2 {
                #expect(try await store.figures(siteID: "shop", spans: [TimeSpan(86_400_000_000, 2 * 86_400_000_000)])
                        == [ReportFigures(views: 2, events: 2, users: 0, visitors: 1)])
                while try await store.rollUpReports() > 0 {}
            }
            try await store.close()
            #expect(try Self.strings(db, """
                SELECT id || ' ' || coalesce(referrer, '-') || ' ' || coalesce(device, '-') || ' ' || coalesce(browser, '-') || ' '
                    || coalesce(os, '-') || ' ' || coalesce(visitor, '-') || ' ' || bot FROM events ORDER BY id
                """) == ["1 - - - - - 0", "2 google.com desktop Chrome Windows 42 0", "3 - - - - - 1"])
            #expect(try Self.strings(db, "SELECT id FROM event_details ORDER BY id") == ["2", "3"])
            #expect(try Self.strings(db, "SELECT name FROM pragma_table_info('event_rows')") ==
                    ["id", "site", "type", "path", "user", "event_ts", "ingested_at"])
            #expect(try Self.strings(db, "SELECT visitor FROM daily_visitors") == ["42"])
            // A view of the owner's own over `events` survives the rebuild.
            #expect(try Self.strings(db, "SELECT site_id || ' ' || referrer || ' ' || n FROM my_referrers") == ["shop google.com 1"])
            let v = try db.statement("PRAGMA user_version")
            #expect(try v.step() && v.int(0) == Int64(SQLiteSchema.version))
        }
    }

    /// Rows deleted by hand from the end of `event_rows` leave their details behind; the ids
    /// the next rows take must not inherit them.
    @Test func detailsOfDeletedNewestRowsAreNotInherited() async throws {
        try await withTempDir { dir in
            let path = dir + "/t.sqlite"
            let store = SQLiteStore(path: path)
            try await store.prepare()
            let at = ts("2025-11-14T10:00:00Z")
            let bot = Event(siteID: "s", eventType: "page_view", path: "/", timestamp: at, referrer: "spam.example",
                            visit: Visit(device: .desktop, browser: "Chrome", os: "Linux", isBot: true))
            _ = try await store.load(StoreBatch(id: "a", createdAt: 1, events: [Event(siteID: "s", eventType: "page_view", path: "/a", timestamp: at), bot]))
            let db = try SQLiteConnection(path: path)
            try db.exec("DELETE FROM event_rows WHERE id = 2")
            _ = try await store.load(StoreBatch(id: "b", createdAt: 2, events: [Event(siteID: "s", eventType: "page_view", path: "/", timestamp: at)]))
            _ = try await store.load(StoreBatch(id: "c", createdAt: 3, events: [bot]))
            try await store.close()
            #expect(try Self.strings(db, "SELECT id || ' ' || coalesce(referrer, '-') || ' ' || bot FROM events ORDER BY id")
                    == ["1 - 0", "2 - 0", "3 spam.example 1"])
        }
    }

    /// A load's rows are appended grouped by hour and site, each with its own details, so the
    /// spans of a backfill's site hours hold only their own rows; live traffic continues the
    /// last span of each site.
    @Test func backfilledLoadsAreStoredInHourAndSiteOrderWithTightSpans() async throws {
        try await withTempDir { dir in
            let path = dir + "/t.sqlite"
            let store = SQLiteStore(path: path)
            try await store.prepare()
            let t0 = ts("2025-11-10T00:00:00Z")
            var rng = SeededRandom(11)
            // Two loads of 3000 events of two sites, 150 of each in each of 10 hours, shuffled;
            // every third one has details that name it (its referrer repeats its path).
            func load(_ id: String, _ base: Int) -> [Event] {
                var events = (0..<3000).map { k -> Event in
                    let t = t0 + Int64(k % 10) * 3_600_000_000 + Int64(k / 10) * 1_000_000, name = "p\(base + k)"
                    let site = (k / 10) % 2 == 0 ? "s" : "t"
                    guard k % 3 == 0 else { return Event(siteID: site, eventType: "page_view", path: "/" + name, timestamp: t) }
                    return Event(siteID: site, eventType: "page_view", path: "/" + name, timestamp: t, referrer: name + ".example",
                                 visit: Visit(device: .desktop, browser: "Firefox", os: "Linux"))
                }
                for i in stride(from: events.count - 1, to: 0, by: -1) { events.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                return events
            }
            let (a, b) = (load("a", 0), load("b", 3000))
            // Then live traffic: the last hour, in order, both sites.
            let c = (0..<300).map {
                Event(siteID: $0 % 2 == 0 ? "s" : "t", eventType: "page_view", path: "/live\($0)", timestamp: t0 + 9 * 3_600_000_000 + 3_000_000_000 + Int64($0))
            }
            _ = try await store.load(StoreBatch(id: "a", createdAt: 1, events: a))
            _ = try await store.load(StoreBatch(id: "b", createdAt: 2, events: b))
            _ = try await store.load(StoreBatch(id: "c", createdAt: 3, events: c))
            try await store.close()
            let db = try SQLiteConnection(path: path)
            let rows = try Self.strings(db, """
                SELECT id || ' ' || (event_ts / 3600000000) || ' ' || site FROM event_rows ORDER BY id
                """).map { $0.split(separator: " ").map(String.init) }
            #expect(rows.count == 6300)
            // Hour, then site order within each load, and each row's details are its own.
            for (range, name) in [(0..<3000, "a"), (3000..<6000, "b"), (6000..<6300, "c")] {
                let groups = rows[range].map { [Int($0[1])!, Int($0[2])!] }
                #expect(groups == groups.sorted { $0.lexicographicallyPrecedes($1) }, "load \(name)")
            }
            let referrers = try Self.strings(db, "SELECT e.id || ' ' || coalesce(referrer, '-') || ' ' || path FROM events e ORDER BY e.id")
                .map { $0.split(separator: " ").map(String.init) }
            #expect(referrers.allSatisfy { $0[1] == "-" || "/" + $0[1] == $0[2] + ".example" })
            #expect(referrers.filter { $0[1] != "-" }.count == 2000)
            #expect(Set(referrers.map { $0[2] }) == Set((a + b + c).map { $0.path! }))
            // 10 hours × 2 sites × 2 loads; the live load's two runs continue the last span of
            // their sites, each taking in the other site's 150 rows between. No span holds a
            // row of another hour; the backfills' spans hold no row of another site.
            #expect(try Self.strings(db, "SELECT count(*) || ' ' || sum(last - first + 1) FROM row_spans") == ["40 6600"])
            #expect(try Self.strings(db, """
                SELECT count(*) FROM row_spans s JOIN event_rows e ON e.id BETWEEN s.first AND s.last WHERE e.event_ts / 3600000000 <> s.hour
                """) == ["0"])
            #expect(try Self.strings(db, """
                SELECT (s.last > 6000) || '|' || count(*) FROM row_spans s JOIN event_rows e ON e.id BETWEEN s.first AND s.last
                WHERE e.site <> s.site GROUP BY s.last > 6000
                """) == ["1|300"])
            #expect(try Self.strings(db, "SELECT first || '-' || last FROM row_spans WHERE last > 6000 ORDER BY first")
                    == ["5701-6150", "5851-6300"])
        }
    }

    /// Names interned by a load that rolls back must not be used afterwards: their ids may by
    /// then belong to other names.
    @Test func namesFromARolledBackLoadAreForgotten() async throws {
        try await withTempDir { dir in
            let path = dir + "/t.sqlite"
            let store = SQLiteStore(path: path)
            try await store.prepare()
            _ = try await store.load(StoreBatch(id: "a", createdAt: 1, events: [scenario2[0]]))
            // Another connection breaks the next load after its names are interned ...
            let other = try SQLiteConnection(path: path)
            try other.exec("DROP TABLE daily_user_sets")
            let fresh = Event(siteID: "new-site", eventType: "page_view", path: "/new", userID: "new-user", timestamp: scenario2[0].timestamp)
            await #expect(throws: StoreError.self) { try await store.load(StoreBatch(id: "b", createdAt: 2, events: [fresh])) }
            // ... then repairs the schema and takes the rowids the rolled-back names had.
            try other.exec(SQLiteSchema.tables)
            try other.exec("INSERT INTO sites(name) VALUES('other-site'); INSERT INTO paths(name) VALUES('/other'); INSERT INTO users(name) VALUES('other-user')")
            #expect(try await store.load(StoreBatch(id: "b", createdAt: 2, events: [fresh])) == .loaded)
            #expect(try await store.stats(siteID: "new-site", day: nil, limit: 10) ==
                    SiteStats(totalViews: 1, uniqueUsers: 1, topPaths: [PathViews(path: "/new", views: 1)]))
            #expect(try await store.stats(siteID: "other-site", day: nil, limit: 10) == SiteStats(totalViews: 0, uniqueUsers: 0, topPaths: []))
            try await store.close()
            let rows = try Self.strings(other, "SELECT site_id || ' ' || path || ' ' || user_id FROM events ORDER BY id")
            #expect(rows == ["demo-site /home user-001", "new-site /new new-user"])
        }
    }

    /// A list key touched by every rollup gets a part per rollup, merged like the carries of a
    /// binary counter: after 64 rollups of 40 new visitors each, the busiest keys (the hour,
    /// each absent property's day) have at most log2(64) + 1 parts, and the reports still
    /// count every visitor once although the same users come back.
    @Test func listPartsStayFewAndReportsExact() async throws {
        try await withTempDir { dir in
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            let hour = ts("2026-05-04T10:00:00Z")
            var events: [Event] = []
            for round in 0..<64 {
                // 40 new users a round, and 10 seen two rounds ago.
                let batch = (0..<50).map { i in
                    let user = i < 40 ? "u\(round * 40 + i)" : "u\(max(round - 2, 0) * 40 + i - 40)"
                    return Event(siteID: "busy", eventType: "page_view", path: "/p\(i % 3)", userID: user, timestamp: hour + Int64(round * 50 + i) * 1_000_000)
                }
                events += batch
                _ = try await store.load(StoreBatch(id: "r\(round)", createdAt: 1, events: batch))
                while try await store.rollUpReports() > 0 {}
            }
            let db = try SQLiteConnection(path: dir + "/t.sqlite")
            let most = try Self.strings(db, "SELECT max(n) FROM (SELECT count(*) AS n FROM report_lists GROUP BY site, prop, level, value, bucket)")
            #expect(Int(most.first ?? "") ?? 99 <= 7 && Int(most.first ?? "") ?? 0 >= 2, "parts of the busiest key: \(most)")
            let users = Int64(Set(events.compactMap(\.userID)).count)
            let inHour = TimeSpan(hour, hour + 3_600_000_000), inDay = TimeSpan(ts("2026-05-04T00:00:00Z"), ts("2026-05-05T00:00:00Z"))
            for span in [inHour, TimeSpan(hour, hour + 900_000_000 * 2), inDay] {
                let want = events.filter { $0.timestamp >= span.start && $0.timestamp < span.end }
                let f = try await store.figures(siteID: "busy", spans: [span])
                #expect(f == [ReportFigures(views: Int64(want.count), events: Int64(want.count), users: Int64(Set(want.compactMap(\.userID)).count),
                                            visitors: Int64(Set(want.compactMap(\.userID)).count))])
            }
            #expect(users == 64 * 40)
            let byPath = try await store.breakdown(siteID: "busy", span: inDay, property: .path, limit: 10)
            #expect(byPath.map(\.visitors) == (0..<3).map { p in Int64(Set(events.filter { $0.path == "/p\(p)" }.compactMap(\.userID)).count) })
            try await store.close()
        }
    }

    /// A version 6 file (one list per key, no parts) is upgraded: its lists become part 0,
    /// and later rollups add parts to them.
    @Test func version6ListsBecomePartZero() async throws {
        try await withTempDir { dir in
            let path = dir + "/v6.sqlite"
            let store = SQLiteStore(path: path)
            try await store.prepare()
            let day = ts("2026-05-04T00:00:00Z")
            let first = (0..<30).map { Event(siteID: "s", eventType: "page_view", path: "/a", userID: "u\($0)", timestamp: day + Int64($0) * 60_000_000) }
            _ = try await store.load(StoreBatch(id: "one", createdAt: 1, events: first))
            while try await store.rollUpReports() > 0 {}
            try await store.close()
            let db = try SQLiteConnection(path: path)
            try db.exec("""
                CREATE TABLE v6_lists(site INTEGER NOT NULL, prop INTEGER NOT NULL, level INTEGER NOT NULL, value INTEGER NOT NULL, bucket INTEGER NOT NULL,
                    members INTEGER NOT NULL, list BLOB NOT NULL, PRIMARY KEY(site, prop, level, value, bucket)) WITHOUT ROWID;
                INSERT INTO v6_lists SELECT site, prop, level, value, bucket, members, list FROM report_lists;
                UPDATE report_counts SET visitors = 99, users = 99 WHERE prop <> 0 OR level NOT IN (1, 2);
                DROP TABLE report_lists;
                ALTER TABLE v6_lists RENAME TO report_lists;
                PRAGMA user_version = 6;
                """)
            let upgraded = SQLiteStore(path: path)
            try await upgraded.prepare()
            #expect(try Self.strings(db, "SELECT DISTINCT part FROM report_lists") == ["0"])
            // Version 6 kept distinct counts on list keys' rows; version 7 keeps none there.
            #expect(try Self.strings(db, "SELECT count(*) FROM report_counts WHERE visitors <> 0 AND (prop <> 0 OR level NOT IN (1, 2))") == ["0"])
            #expect(try Self.strings(db, "SELECT visitors FROM report_counts WHERE prop = 0 AND level = 1") == ["30"])
            let more = (20..<50).map { Event(siteID: "s", eventType: "page_view", path: "/a", userID: "u\($0)", timestamp: day + Int64($0) * 60_000_000 + 1) }
            _ = try await upgraded.load(StoreBatch(id: "two", createdAt: 2, events: more))
            while try await upgraded.rollUpReports() > 0 {}
            let f = try await upgraded.figures(siteID: "s", spans: [TimeSpan(day, day + 3_600_000_000)])
            #expect(f == [ReportFigures(views: 60, events: 60, users: 50, visitors: 50)])
            let byPath = try await upgraded.breakdown(siteID: "s", span: TimeSpan(day, day + 86_400_000_000), property: .path, limit: 5)
            #expect(byPath == [BreakdownRow(value: "/a", views: 60, visitors: 50, events: 60)])
            let v = try db.statement("PRAGMA user_version")
            #expect(try v.step() && v.int(0) == Int64(SQLiteSchema.version))
            try await upgraded.close()
        }
    }

    /// A version 7 file (one span per hour, all sites' rows in it) is upgraded: each hour's
    /// span is split by site over the rows it holds, giving the spans loads write from version 8.
    @Test func version7SpansAreSplitBySite() async throws {
        try await withTempDir { dir in
            let path = dir + "/v7.sqlite"
            let store = SQLiteStore(path: path)
            try await store.prepare()
            let t0 = ts("2026-05-04T00:00:00Z")
            var rng = SeededRandom(7)
            for (n, id) in ["a", "b"].enumerated() {
                var events: [Event] = []
                for k in 0..<400 {
                    let t: Int64 = t0 + Int64(k % 4) * 3_600_000_000 + Int64(k)
                    events.append(Event(siteID: (k / 4) % 2 == 0 ? "s" : "t", eventType: "page_view", path: "/\(n)-\(k)", timestamp: t))
                }
                for i in stride(from: events.count - 1, to: 0, by: -1) { events.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                _ = try await store.load(StoreBatch(id: id, createdAt: Int64(n), events: events))
            }
            try await store.close()
            let db = try SQLiteConnection(path: path)
            let spans = "SELECT site || ' ' || hour || ' ' || first || '-' || last FROM row_spans ORDER BY site, hour, first"
            let written = try Self.strings(db, spans)
            #expect(written.count == 16)
            // Version 7 kept one span per hour and load run, over both sites' rows.
            try db.exec("""
                CREATE TABLE v7_spans(hour INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(hour, first)) WITHOUT ROWID;
                INSERT INTO v7_spans SELECT hour, min(first), max(last) FROM row_spans GROUP BY hour, first > 400;
                DROP TABLE row_spans;
                ALTER TABLE v7_spans RENAME TO row_spans;
                PRAGMA user_version = 7;
                """)
            #expect(try Self.strings(db, "SELECT count(*) FROM row_spans") == ["8"])
            let upgraded = SQLiteStore(path: path)
            try await upgraded.prepare()
            #expect(try Self.strings(db, spans) == written)
            var exported = 0
            try await upgraded.scanRows("t", from: t0, to: t0 + 86_400_000_000) { _ in exported += 1 }
            #expect(exported == 400)
            let v = try db.statement("PRAGMA user_version")
            #expect(try v.step() && v.int(0) == Int64(SQLiteSchema.version))
            try await upgraded.close()
        }
    }

    @Test func newerSchemaVersionIsRefused() async throws {
        try await withTempDir { dir in
            let db = try SQLiteConnection(path: dir + "/t.sqlite")
            try db.exec("PRAGMA user_version = 99")
            let store = SQLiteStore(path: dir + "/t.sqlite")
            await #expect(throws: StoreError.self) { try await store.prepare() }
            try await store.close()
        }
    }

    /// Every member of every stored user set, as "site,day,user" ("site,all,user" for all time).
    static func userSets(_ db: SQLiteConnection) throws -> Set<String> {
        var out = Set<String>()
        let d = try db.statement("SELECT site, day, chunk, members, bits FROM daily_user_sets")
        while try d.step() {
            for m in try UserChunk.members(d.blob(4), count: Int(d.int(3))) {
                out.insert("\(d.int(0)),\(d.int(1)),\(d.int(2) << 12 + Int64(m))")
            }
        }
        db.resetAll()
        let s = try db.statement("SELECT site, chunk, members, bits FROM site_user_sets")
        while try s.step() {
            for m in try UserChunk.members(s.blob(3), count: Int(s.int(2))) {
                out.insert("\(s.int(0)),all,\(s.int(1) << 12 + Int64(m))")
            }
        }
        db.resetAll()
        return out
    }

    static func strings(_ db: SQLiteConnection, _ sql: String) throws -> [String] {
        let s = try db.statement(sql)
        var out: [String] = []
        while try s.step() { out.append(s.text(0)) }
        db.resetAll()
        return out
    }

    static func dump(_ db: SQLiteConnection, _ table: String) throws -> [String] {
        let s = try db.statement("SELECT * FROM \(table)")
        var rows: [String] = []
        let columns = s.columnCount
        while try s.step() { rows.append((0..<columns).map { String(s.int(Int32($0))) }.joined(separator: ",")) }
        db.resetAll()
        return rows.sorted()
    }

    static let version1Schema = """
        CREATE TABLE events(id INTEGER PRIMARY KEY, site_id TEXT NOT NULL, event_type TEXT NOT NULL, path TEXT,
            user_id TEXT, event_ts INTEGER NOT NULL, ingested_at INTEGER NOT NULL);
        CREATE TABLE loaded_batches(batch_id TEXT PRIMARY KEY, event_count INTEGER NOT NULL, loaded_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE daily_views(site_id TEXT NOT NULL, day INTEGER NOT NULL, views INTEGER NOT NULL, PRIMARY KEY(site_id, day)) WITHOUT ROWID;
        CREATE TABLE daily_path_views(site_id TEXT NOT NULL, day INTEGER NOT NULL, path TEXT NOT NULL, views INTEGER NOT NULL,
            PRIMARY KEY(site_id, day, path)) WITHOUT ROWID;
        CREATE TABLE site_path_views(site_id TEXT NOT NULL, path TEXT NOT NULL, views INTEGER NOT NULL, PRIMARY KEY(site_id, path)) WITHOUT ROWID;
        CREATE TABLE daily_users(site_id TEXT NOT NULL, day INTEGER NOT NULL, user_id TEXT NOT NULL,
            PRIMARY KEY(site_id, day, user_id)) WITHOUT ROWID;
        CREATE TABLE site_users(site_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY(site_id, user_id)) WITHOUT ROWID;
        """
}

@Suite struct UserChunkTests {
    @Test func growsFromArrayToBitmapAndMergesExactly() throws {
        var blob: [UInt8]? = nil
        var count = 0
        var oracle = Set<UInt16>()
        var rng = SeededRandom(11)
        for round in 0..<40 {
            let adding = Array(Set((0..<20).map { _ in UInt16(rng.next() % 4096) })).sorted()
            let merged = try blob.map { b in try b.withUnsafeBytes { try UserChunk.merge($0, count: count, adding: adding[...]) } }
                ?? UserChunk.merge(nil, count: 0, adding: adding[...])
            let before = oracle.count
            oracle.formUnion(adding)
            if let merged {
                blob = merged.blob
                count = merged.count
            }
            #expect((merged == nil) == (oracle.count == before), "round \(round)")
            #expect(count == oracle.count)
            #expect(blob!.count == (count < UserChunk.arrayLimit ? 2 * count : UserChunk.bitmapBytes))
            #expect(try blob!.withUnsafeBytes { try UserChunk.members($0, count: count) } == oracle.sorted())
        }
        #expect(count >= UserChunk.arrayLimit)
        // Adding members that are all present changes nothing.
        let again = try blob!.withUnsafeBytes { try UserChunk.merge($0, count: count, adding: oracle.sorted().prefix(5)) }
        #expect(again == nil)
    }

    @Test func blobThatDoesNotFitItsCountIsAnError() {
        #expect(throws: StoreError.self) { try [UInt8](repeating: 0, count: 5).withUnsafeBytes { try UserChunk.members($0, count: 3) } }
        #expect(throws: StoreError.self) { try [UInt8](repeating: 0, count: 512).withUnsafeBytes { try UserChunk.members($0, count: 300) } }
    }
}

@Suite struct IDPairTableTests {
    @Test func agreesWithADictionaryIncludingTableToTableCopies() {
        var rng = SeededRandom(3)
        var table = IDPairTable()
        var oracle: [String: Int64] = [:]
        for _ in 0..<50_000 {
            let a = IDPairTable.word(Int64(rng.next() % 50), Int32(rng.next() % 30)), b = rng.next() % 500
            let isNew = table.add(a, b, 2)
            #expect(isNew == (oracle["\(a) \(b)"] == nil))
            oracle["\(a) \(b)", default: 0] += 2
        }
        #expect(table.count == oracle.count)
        let entries = table.sorted()
        #expect(entries.map { "\($0.a) \($0.b)" } == entries.sorted { ($0.a, $0.b) < ($1.a, $1.b) }.map { "\($0.a) \($0.b)" })
        #expect(entries.allSatisfy { oracle["\($0.a) \($0.b)"] == $0.value })
        // Copying in slot order into a small table that grows must neither lose keys nor stall.
        var copy = IDPairTable()
        table.forEach { a, b, v in copy.add(a, b, v) }
        #expect(copy.sorted().map { "\($0.a) \($0.b) \($0.value)" } == entries.map { "\($0.a) \($0.b) \($0.value)" })
        #expect(!copy.contains(IDPairTable.word(999, 0), 1))
        copy.removeAll()
        #expect(copy.count == 0 && !copy.contains(entries[0].a, entries[0].b))
        #expect(SQLiteRollup.site(IDPairTable.word(12, 345)) == 12 && SQLiteRollup.day(IDPairTable.word(12, 345)) == 345)
    }
}

/// SplitMix64, so the random data is the same on every run.
struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The union reports read distinct counts from, against a `Set`: members from set chunks (both
/// chunk formats), one by one (past the fold into chunks too), repeated.
@Suite struct MemberUnionTests {
    @Test func countsEqualASet() throws {
        var rng = SeededRandom(7)
        for (n, span) in [(1_000, Int64(1 << 21)), (300_000, Int64(1 << 20)), (20_000, Int64(1 << 13))] {
            var oracle = Set<Int64>()
            var a = MemberUnion()
            // A chunk of each format: sparse (array) and dense (bitmap).
            for (chunk, count) in [(Int64(3), 40), (Int64(5), 3_000)] {
                let offsets = Set((0..<count).map { _ in UInt16(rng.next() % UInt64(UserChunk.span)) }).sorted()
                let blob = UserChunk.encode(offsets)
                try blob.withUnsafeBytes { try a.add(chunk: chunk, count: offsets.count, blob: $0) }
                for o in offsets { oracle.insert(chunk << Int64(UserChunk.shift) + Int64(o)) }
            }
            for _ in 0..<n {
                let m = Int64(rng.next() % UInt64(span)) + 2
                oracle.insert(m)
                a.add(member: m)
            }
            a.add(hash: 12_345)
            let even = oracle.filter { $0 & 1 == 0 }.count
            #expect(a.counts == (Int64(oracle.count + 1), Int64(even)), "n \(n)")
            var back = Set<Int64>()
            a.forEachChunk { c, offsets in for o in offsets { back.insert(c << Int64(UserChunk.shift) + Int64(o)) } }
            #expect(back == oracle)
        }
    }
}
