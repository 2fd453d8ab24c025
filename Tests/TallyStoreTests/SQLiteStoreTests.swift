import Foundation
import Testing
import PostgresNIO
import TallyCore
import TallyTestSupport
@testable import TallyStore

func ts(_ s: String) -> Int64 { Timestamp.parse(s)! }

/// The seed README's "Scenario 2": five page views, one anonymous.
let scenario2: [Event] = [
    Event(siteID: "demo-site", eventType: "page_view", path: "/home", userID: "user-001", timestamp: ts("2025-11-14T12:00:00Z")),
    Event(siteID: "demo-site", eventType: "page_view", path: "/products", userID: "user-002", timestamp: ts("2025-11-14T12:05:00Z")),
    Event(siteID: "demo-site", eventType: "page_view", path: "/products", userID: "user-001", timestamp: ts("2025-11-14T12:10:00Z")),
    Event(siteID: "demo-site", eventType: "page_view", path: "/home", userID: nil, timestamp: ts("2025-11-14T12:15:00Z")),
    Event(siteID: "demo-site", eventType: "page_view", path: "/about", userID: "user-003", timestamp: ts("2025-11-14T12:20:00Z")),
]

/// The same behaviour from both stores: the suite runs once per backend. PostgreSQL runs when
/// `TALLY_TEST_POSTGRES` names a server (`make test` starts one).
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres
    var testDescription: String { rawValue }

    static var available: [Backend] {
        ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] == nil ? [.sqlite] : allCases
    }

    /// The order a load's events are stored in: SQLite appends them grouped by the hour of
    /// their time, then by site (by interned id: `sites` in the order the store first saw
    /// them), in arrival order within a group (``SQLiteRow/toAppend``); PostgreSQL keeps
    /// arrival order. An export reads one site's rows in this order.
    func stored(_ load: [Event], sites: [String]) -> [Event] {
        guard self == .sqlite else { return load }
        func key(_ e: (offset: Int, element: Event)) -> (Int64, Int, Int) {
            (e.element.timestamp / SQLiteSchema.microsPerHour, sites.firstIndex(of: e.element.siteID) ?? sites.count, e.offset)
        }
        return load.enumerated().sorted { key($0) < key($1) }.map(\.element)
    }

    /// A store on an empty database; `reopen` gives a second store on the same database.
    func make(_ dir: String) async throws -> (store: any EventStore, reopen: @Sendable () -> any EventStore) {
        switch self {
        case .sqlite:
            let path = dir + "/t.sqlite"
            return (SQLiteStore(path: path), { SQLiteStore(path: path) })
        case .postgres:
            let url = try await PostgresTestDatabase.create()
            // Small inserts: loads of a few thousand rows cross statement boundaries. A longer
            // operation timeout than a collector's: the suite runs dozens of tests at once on a
            // debug build, and a migration starved of CPU for 5 s is no store failure.
            let location = try PostgresStore.Location(url: url)
            let make: @Sendable () -> any EventStore = { PostgresStore(location: location, operationTimeout: .seconds(30), rowsPerInsert: 4096) }
            return (make(), make)
        }
    }
}

/// Whether the store recorded `batchID` as loaded, asked of its database directly.
func isLoaded(_ store: any EventStore, _ batchID: String) async throws -> Bool {
    switch store {
    case let s as SQLiteStore:
        let db = try SQLiteConnection(path: s.path)
        let q = try db.statement("SELECT 1 FROM loaded_batches WHERE batch_id = ?1")
        q.bind(1, batchID)
        return try q.step()
    case let p as PostgresStore:
        let rows = try await p.client.query("SELECT 1 FROM loaded_batches WHERE batch_id = \(batchID)")
        for try await _ in rows { return true }
        return false
    default:
        Issue.record("unknown store \(type(of: store))")
        return false
    }
}

/// Every raw row in id order, one string per row with its fields joined by "|" ("-" for NULL,
/// times in microseconds since 1970, the visitor as a signed 64-bit integer), read back by SQL.
func rawRows(_ store: any EventStore) async throws -> [String] {
    let fields = ["site_id", "event_type", "coalesce(path, '-')", "coalesce(user_id, '-')", "%TS(event_ts)", "%TS(ingested_at)",
                  "coalesce(referrer, '-')", "coalesce(utm_source, '-')", "coalesce(utm_medium, '-')", "coalesce(utm_campaign, '-')",
                  "coalesce(device, '-')", "coalesce(browser, '-')", "coalesce(os, '-')", "coalesce(visitor || '', '-')", "%BOOL(bot)"]
    switch store {
    case let s as SQLiteStore:
        let sql = fields.joined(separator: " || '|' || ").replacingOccurrences(of: "%TS", with: "")
            .replacingOccurrences(of: "%BOOL", with: "")
        let db = try SQLiteConnection(path: s.path)
        let q = try db.statement("SELECT \(sql) FROM events ORDER BY id")
        var rows: [String] = []
        while try q.step() { rows.append(q.text(0)) }
        return rows
    case let p as PostgresStore:
        let sql = fields.joined(separator: " || '|' || ")
            .replacingOccurrences(of: #"%TS\((\w+)\)"#, with: "(extract(epoch FROM $1) * 1000000)::bigint", options: .regularExpression)
            .replacingOccurrences(of: #"%BOOL\((\w+)\)"#, with: "$1::int", options: .regularExpression)
        var rows: [String] = []
        for try await row in try await p.client.query(PostgresQuery(unsafeSQL: "SELECT \(sql) FROM events ORDER BY id")).decode(String.self) {
            rows.append(row)
        }
        return rows
    default:
        Issue.record("unknown store \(type(of: store))")
        return []
    }
}

@Suite struct StoreContractTests {
    /// A fresh database, a store on it with a 1 s bound, and an `admin` store with bounds as
    /// long as the suite's other stores' (dozens of tests start at once).
    static func shortBoundStore() async throws -> (url: String, admin: PostgresStore, store: PostgresStore) {
        let url = try await PostgresTestDatabase.create()
        let admin = PostgresStore(location: try .init(url: url), operationTimeout: .seconds(30))
        try await admin.prepare()
        let store = PostgresStore(location: try .init(url: url), operationTimeout: .seconds(1))
        // Its 1 s bound also applies to its migration, which a busy machine can take longer for.
        var prepared = false
        for _ in 0..<30 where !prepared { prepared = (try? await store.prepare()) != nil }
        #expect(prepared)
        return (url, admin, store)
    }

    /// Another session of the database at `url` holding `table` (ACCESS EXCLUSIVE) for
    /// `seconds`, in the task; its store is closed by the caller.
    static func hold(_ table: String, seconds: Int, url: String) throws -> (PostgresStore, Task<Void, any Error>) {
        let blocker = PostgresStore(location: try .init(url: url), operationTimeout: .seconds(30))
        let held = Task {
            try await blocker.client.withConnection { conn in
                let log = Logger(label: "blocker")
                try await conn.query(PostgresQuery(unsafeSQL: "BEGIN"), logger: log)
                try await conn.query(PostgresQuery(unsafeSQL: "LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE"), logger: log)
                try await Task.sleep(for: .seconds(seconds))
                try await conn.query(PostgresQuery(unsafeSQL: "COMMIT"), logger: log)
            }
        }
        return (blocker, held)
    }

    /// A PostgreSQL load the collector gives up on stops in the server too. Left running (a
    /// backend waiting for a lock does not notice its client has gone) it would hold its batch
    /// ids' row locks, and every retry would wait behind it and time out in turn.
    @Test(.enabled(if: Backend.available.contains(.postgres)))
    func aPostgresLoadGivenUpOnStopsInTheServer() async throws {
        let (url, admin, store) = try await Self.shortBoundStore()
        // Another session holds `loaded_batches`, the load's first table, for 10 s.
        let (blocker, held) = try Self.hold("loaded_batches", seconds: 10, url: url)
        try await Task.sleep(for: .milliseconds(500))
        let e = Event(siteID: "s", eventType: "page_view", path: "/", timestamp: ts("2026-05-04T10:00:00Z"))
        let error = await #expect(throws: (any Error).self) { try await store.load(StoreBatch(id: "given-up", createdAt: 1, events: [e])) }
        #expect(String(describing: error).contains("load"), "\(String(describing: error))")
        // Well before the lock is let go, no backend is still running the load.
        var running: Int64 = 1
        for _ in 0..<30 where running > 0 {
            try await Task.sleep(for: .milliseconds(200))
            for try await n in try await admin.client.query("""
                SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'
                AND query LIKE '%INSERT INTO loaded_batches%' AND query NOT LIKE '%pg_stat_activity%'
                """).decode(Int64.self) { running = n }
        }
        #expect(running == 0)
        try await held.value
        // Nothing of the given-up load was committed (through a store with a longer bound: a
        // fresh pool's first connection on a busy machine can take a second).
        #expect(try await admin.load(StoreBatch(id: "given-up", createdAt: 1, events: [e])) == .loaded)
        for s in [store, blocker, admin] { try await s.close() }
    }

    /// A reporting question PostgreSQL stops at its own time limit fails alone: the collector
    /// keeps the connection pool its loads share (a new pool would cut off the loads running on
    /// the old one), and the next question is answered.
    @Test(.enabled(if: Backend.available.contains(.postgres)))
    func aPostgresQuestionStoppedByTheServerKeepsThePool() async throws {
        // A 1 s bound: questions get 6 s, of which the server allows 5.4.
        let (url, admin, store) = try await Self.shortBoundStore()
        let day = UTCDay(parsing: "2026-05-04")!, span = [TimeSpan(day.start, day.start + 86_400_000_000)]
        #expect(try await admin.load(StoreBatch(id: "b", createdAt: 1, events: [Event(siteID: "s", eventType: "page_view", path: "/", timestamp: day.start)])) == .loaded)
        let pool = store.client
        // Another session holds `events` for 8 s: the question waits for it past its limit.
        let (blocker, held) = try Self.hold("events", seconds: 8, url: url)
        try await Task.sleep(for: .milliseconds(500))
        await #expect(throws: ReportTookTooLong.self) { try await store.figures(siteID: "s", spans: span) }
        #expect(store.client === pool)
        try await held.value
        #expect(try await store.figures(siteID: "s", spans: span) == [ReportFigures(views: 1, events: 1)])
        for s in [store, blocker, admin] { try await s.close() }
    }

    @Test(arguments: Backend.available)
    func scenario2ByDateAndAllTime(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            #expect(try await store.load(StoreBatch(id: "b1", createdAt: 1, events: scenario2)) == .loaded)
            let expected = SiteStats(totalViews: 5, uniqueUsers: 3, topPaths: [
                PathViews(path: "/home", views: 2), PathViews(path: "/products", views: 2), PathViews(path: "/about", views: 1)])
            #expect(try await store.stats(siteID: "demo-site", day: UTCDay(parsing: "2025-11-14"), limit: 10) == expected)
            #expect(try await store.stats(siteID: "demo-site", day: nil, limit: 10) == expected)
            #expect(try await store.stats(siteID: "demo-site", day: UTCDay(parsing: "2025-11-15"), limit: 10)
                    == SiteStats(totalViews: 0, uniqueUsers: 0, topPaths: []))
            #expect(try await store.stats(siteID: "nobody", day: nil, limit: 10) == SiteStats(totalViews: 0, uniqueUsers: 0, topPaths: []))
            try await store.close()
        }
    }

    /// What goes in comes back out of the raw rows, field by field, from loads of each shape
    /// (no details, only visitor ids, everything): times to the microsecond at both ends of the
    /// accepted range and around PostgreSQL's own epoch (2000-01-01), visitor ids with the top
    /// bit set, names that are not ASCII.
    @Test(arguments: Backend.available)
    func rawRowsKeepEveryFieldExactly(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let times: [Int64] = [0, 1, 946_684_799_999_999, 946_684_800_000_000, 946_684_800_000_001,
                                  1_763_121_600_123_456, EventLimits.maxTimestamp - 1]
            let plain = times.enumerated().map { k, t in
                Event(siteID: "s-\(k % 2)", eventType: k == 3 ? "click" : "page_view", path: k == 1 ? nil : "/p/\(k)",
                      userID: k % 3 == 0 ? nil : "user-\(k)", timestamp: t)
            }
            let visitors = times.map { t in
                Event(siteID: "s-0", eventType: "page_view", path: "/v", timestamp: t, referrer: nil,
                      visit: Visit(visitor: t == 0 ? UInt64.max : UInt64(t) | 1 << 63))
            }
            let full = [
                Event(siteID: "s-1", eventType: "page_view", path: "/ünï", userID: nil, timestamp: times[5],
                      referrer: "news.example", utmSource: "letter", utmMedium: "e-mail", utmCampaign: "winter ❄",
                      visit: Visit(visitor: 42, device: .mobile, browser: "Safari", os: "iOS")),
                Event(siteID: "s-1", eventType: "page_view", path: "/bot", timestamp: times[6], referrer: nil,
                      visit: Visit(device: .desktop, browser: "Chrome", os: "Linux", isBot: true)),
                Event(siteID: "s-0", eventType: "signup", userID: "user-9", timestamp: times[2], referrer: "t.co",
                      visit: Visit(visitor: 0, browser: "Firefox")),
            ]
            #expect(try await store.load(StoreBatch(id: "plain", createdAt: 1_763_121_700_000_001, events: plain)) == .loaded)
            #expect(try await store.load(StoreBatch(id: "visitors", createdAt: 2, events: visitors)) == .loaded)
            #expect(try await store.load(StoreBatch(id: "full", createdAt: 3, events: full)) == .loaded)

            func row(_ e: Event, _ ingested: Int64) -> String {
                let v = e.visit
                return [e.siteID, e.eventType, e.path ?? "-", e.userID ?? "-", "\(e.timestamp)", "\(ingested)",
                        e.referrer ?? "-", e.utmSource ?? "-", e.utmMedium ?? "-", e.utmCampaign ?? "-",
                        v.device?.name ?? "-", v.browser ?? "-", v.os ?? "-", v.visitor == 0 ? "-" : "\(Int64(bitPattern: v.visitor))",
                        v.isBot ? "1" : "0"].joined(separator: "|")
            }
            let sites = ["s-0", "s-1"]
            #expect(backend.stored(full, sites: sites).map(\.timestamp) == (backend == .sqlite ? [times[2], times[5], times[6]] : full.map(\.timestamp)))
            // Two sites in one hour: s-0 (interned first) before s-1, though s-1's event came first.
            #expect(backend.stored(plain, sites: sites).map(\.siteID)[3...4] == (backend == .sqlite ? ["s-0", "s-1"] : ["s-1", "s-0"]))
            let expected = backend.stored(plain, sites: sites).map { row($0, 1_763_121_700_000_001) }
                + backend.stored(visitors, sites: sites).map { row($0, 2) } + backend.stored(full, sites: sites).map { row($0, 3) }
            #expect(try await rawRows(store) == expected)
            try await store.close()
        }
    }

    /// Loads larger than one insert statement (PostgreSQL unnests 4096 rows at a time here), with
    /// and without details, in one batch and in a group: every view, user and path is counted.
    @Test(arguments: Backend.available)
    func largeLoadsOfEveryShapeCountExactly(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let events = SQLiteSchemaTests.randomEvents(30_000, seed: 11)
            let plain = events.filter { !$0.hasExtra }
            let visitorsOnly = events.filter(\.hasExtra).map {
                Event(siteID: $0.siteID, eventType: $0.eventType, path: $0.path, userID: $0.userID, timestamp: $0.timestamp,
                      referrer: nil, visit: Visit(visitor: $0.userID == nil ? 7 : 0))
            }
            #expect(try await store.load(StoreBatch(id: "plain", createdAt: 1, events: plain)) == .loaded)
            #expect(try await store.load(StoreBatch(id: "visitors", createdAt: 2, events: visitorsOnly)) == .loaded)
            #expect(try await store.load([StoreBatch(id: "all-1", createdAt: 3, events: Array(events[..<12_000])),
                                          StoreBatch(id: "all-2", createdAt: 3, events: Array(events[12_000...]))])
                    == [.loaded, .loaded])
            let all = plain + visitorsOnly + events
            // Rollups come from the batch in memory; the raw rows must all be there too.
            #expect(try await store.eventCount() == Int64(all.count))
            for site in (0..<5).map({ "site-\($0)" }) {
                #expect(try await store.stats(siteID: site, day: nil, limit: 10) == SQLiteSchemaTests.expected(all, site: site, day: nil))
            }
            try await store.close()
        }
    }

    @Test(arguments: Backend.available)
    func batchIsLoadedExactlyOnce(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, reopen) = try await backend.make(dir)
            try await store.prepare()
            #expect(try await store.load(StoreBatch(id: "same", createdAt: 1, events: scenario2)) == .loaded)
            #expect(try await store.load(StoreBatch(id: "same", createdAt: 1, events: scenario2)) == .alreadyLoaded)
            #expect(try await isLoaded(store, "same"))
            #expect(try await !isLoaded(store, "other"))
            #expect(try await store.eventCount() == 5)
            #expect(try await store.stats(siteID: "demo-site", day: nil, limit: 10).totalViews == 5)
            try await store.close()
            // A second store on the same database (a restart, or another collector).
            let again = reopen()
            try await again.prepare()
            #expect(try await again.load(StoreBatch(id: "same", createdAt: 1, events: scenario2)) == .alreadyLoaded)
            #expect(try await again.stats(siteID: "demo-site", day: nil, limit: 10).totalViews == 5)
            try await again.close()
        }
    }

    @Test(arguments: Backend.available)
    func severalBatchesInOneTransactionStayExactlyOnce(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            #expect(try await store.load(StoreBatch(id: "a", createdAt: 1, events: Array(scenario2[0..<2]))) == .loaded)
            // "a" again (a replay after a crash) beside two new batches: only the new ones count.
            let outcomes = try await store.load([
                StoreBatch(id: "b", createdAt: 2, events: Array(scenario2[2..<4])),
                StoreBatch(id: "a", createdAt: 1, events: Array(scenario2[0..<2])),
                StoreBatch(id: "c", createdAt: 3, events: [scenario2[4]]),
            ])
            #expect(outcomes == [.loaded, .alreadyLoaded, .loaded])
            #expect(try await store.load([StoreBatch(id: "b", createdAt: 2, events: []), StoreBatch(id: "c", createdAt: 3, events: [])])
                    == [.alreadyLoaded, .alreadyLoaded])
            #expect(try await store.eventCount() == 5)
            let s = try await store.stats(siteID: "demo-site", day: nil, limit: 10)
            #expect(s.totalViews == 5 && s.uniqueUsers == 3)
            try await store.close()
        }
    }

    @Test(arguments: Backend.available)
    func rollupsAccumulateAcrossBatchesAndDays(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let d1 = ts("2025-11-14T10:00:00Z"), d2 = ts("2025-11-15T10:00:00Z")
            let tricky = #"/t\ab"# + "\t x\n new'q\r" + #"\\N"#
            let b1 = [
                Event(siteID: "s", eventType: "page_view", path: "/b", userID: "u1", timestamp: d1),
                Event(siteID: "s", eventType: "click", path: "/b", userID: "u9", timestamp: d1),  // a user, not a view
                Event(siteID: "s", eventType: "page_view", path: nil, userID: "u2", timestamp: d1),  // a view, no path
                Event(siteID: "other", eventType: "page_view", path: "/b", userID: "u1", timestamp: d1),
            ]
            let b2 = [
                Event(siteID: "s", eventType: "page_view", path: "/a", userID: "u1", timestamp: d2),
                Event(siteID: "s", eventType: "page_view", path: "/b", userID: "u3", timestamp: d2),
                Event(siteID: "s", eventType: "page_view", path: "/a", userID: "", timestamp: d2),
                // Text that COPY and SQL must carry byte for byte.
                Event(siteID: "s", eventType: "page_view", path: tricky, userID: "ü", timestamp: d2),
            ]
            _ = try await store.load(StoreBatch(id: "1", createdAt: 1, events: b1))
            _ = try await store.load(StoreBatch(id: "2", createdAt: 2, events: b2))
            let day1 = try await store.stats(siteID: "s", day: UTCDay(containing: d1), limit: 10)
            #expect(day1 == SiteStats(totalViews: 2, uniqueUsers: 3, topPaths: [PathViews(path: "/b", views: 1)]))
            let all = try await store.stats(siteID: "s", day: nil, limit: 10)
            // Ties broken by path ascending (byte order); u1 counted once across days; "" is not a user.
            #expect(all == SiteStats(totalViews: 6, uniqueUsers: 5, topPaths: [
                PathViews(path: "/a", views: 2), PathViews(path: "/b", views: 2), PathViews(path: tricky, views: 1)]))
            #expect(try await store.stats(siteID: "s", day: nil, limit: 1).topPaths == [PathViews(path: "/a", views: 2)])
            #expect(try await store.eventCount() == 8)
            try await store.close()
        }
    }
}
