import Foundation
import PostgresNIO
import Testing
import TallyCore
@testable import TallyReport
import TallyTestSupport
@testable import TallyStore

/// The reporting API's figures on both stores, against an oracle that shares no code with
/// them: local dates and hours from Foundation's `Calendar` for each event, and plain SQL
/// over the raw rows (PostgreSQL's own `AT TIME ZONE` for the day boundaries).
@Suite struct ReportContractTests {
    static let zones = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
                        "Pacific/Chatham", "America/St_Johns", "Asia/Tehran"]
    /// Four-day windows around DST changes: New York and St. John's spring forward on
    /// 2026-03-08, London on 03-29; Lord Howe (30 minutes) and Chatham go back on 04-05;
    /// New York goes back on 11-01.
    static let windows = ["2026-03-06", "2026-03-27", "2026-04-03", "2026-10-30"].map { UTCDay(parsing: $0)! }

    static func randomEvents(_ n: Int, seed: UInt64) -> [Event] {
        var rng = SeededRandom(seed)
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        return (0..<n).map { _ in
            let day = pick(windows)
            // Any microsecond of the window, and now and then one right at a zone's day start.
            var t = day.start + Int64(rng.next() % UInt64(4 * 86_400_000_000))
            if rng.next() % 20 == 0 {
                let z = ReportZone(identifier: pick(zones))!
                t = z.start(of: UTCDay(number: day.number + Int32(rng.next() % 4))) * 1_000_000 - Int64(rng.next() % 2)
            }
            let r = rng.next() % 10
            let user: String? = r < 4 ? nil : r == 4 ? "" : "u\(rng.next() % 60)"
            let visit = Visit(visitor: user?.isEmpty == false || rng.next() % 8 == 0 ? 0 : rng.next() % 80 + 1,
                              device: rng.next() % 3 == 0 ? nil : pick(Device.allCases), browser: rng.next() % 4 == 0 ? nil : pick(["Firefox", "Chrome", "Safari"]),
                              os: rng.next() % 4 == 0 ? nil : pick(["Linux", "iOS", "Windows"]), isBot: rng.next() % 12 == 0)
            return Event(siteID: pick(["a", "b", "c"]), eventType: rng.next() % 5 == 0 ? "click" : "page_view",
                         path: rng.next() % 8 == 0 ? nil : "/p\(rng.next() % 12)", userID: user, timestamp: t,
                         referrer: rng.next() % 3 == 0 ? pick(["news.example", "search.example", "é.example"]) : nil,
                         utmSource: rng.next() % 5 == 0 ? pick(["mail", "ads"]) : nil, utmMedium: rng.next() % 7 == 0 ? "cpc" : nil,
                         utmCampaign: rng.next() % 9 == 0 ? pick(["spring", ""]) : nil, visit: visit)
        }
    }

    typealias Local = (day: UTCDay, hour: Int, offset: Int)

    /// The local date and hour of each event, and the offset then, by Foundation's calendar
    /// (worked out once per zone: the calendar is slow, and the suite's other tests share the CPU).
    static func locals(_ events: [Event], _ tz: String) -> [Local] {
        var cal = Calendar(identifier: .gregorian)
        let zone = TimeZone(identifier: tz)!
        cal.timeZone = zone
        return events.map { e in
            let seconds = e.timestamp >= 0 ? e.timestamp / 1_000_000 : (e.timestamp - 999_999) / 1_000_000
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            let c = cal.dateComponents([.year, .month, .day, .hour], from: date)
            return (UTCDay(year: c.year!, month: c.month!, day: c.day!), c.hour!, zone.secondsFromGMT(for: date))
        }
    }

    /// Figures of `events` (already the site's, in the range), by definition.
    static func figures(_ events: [Event]) -> ReportFigures {
        let counted = events.filter(\.counts)
        let users = Set(counted.compactMap(\.userID).filter { !$0.isEmpty })
        let visitors = Set(counted.compactMap { e -> String? in
            if let u = e.userID, !u.isEmpty { return "u" + u }
            return e.visit.visitor == 0 ? nil : "v\(e.visit.visitor)"
        })
        return ReportFigures(views: Int64(counted.filter(\.isPageView).count), events: Int64(counted.count),
                             users: Int64(users.count), visitors: Int64(visitors.count))
    }

    /// When SQLite's report rollups are written: behind its loads (as a collector does: some
    /// rows rolled up, the rest read raw), after each load, after some; or read back from
    /// the rows by a second store on the same file (the first one's kept rollup lost, as in
    /// a crash). PostgreSQL reads raw rows.
    enum Rollups: String, CaseIterable, Sendable { case behindLoads, afterEachLoad, afterSome, readBack }

    static var variants: [(Backend, Rollups)] {
        [(.sqlite, .behindLoads), (.sqlite, .afterEachLoad), (.sqlite, .afterSome), (.sqlite, .readBack)] + (Backend.available.contains(.postgres) ? [(.postgres, .behindLoads)] : [])
    }

    @Test(arguments: variants)
    func reportsEqualTheRawEventsInAnyZone(_ backend: Backend, _ rollups: Rollups) async throws {
        try await withTempDir { dir in
            var (store, reopen) = try await backend.make(dir)
            try await store.prepare()
            let events = Self.randomEvents(5000, seed: 16)
            var life = try #require(store as? any LifecycleStore)
            for k in 0..<5 {
                let part = Array(events[k * 1000..<(k + 1) * 1000])
                #expect(try await store.load(StoreBatch(id: "part-\(k)", createdAt: Int64(k + 1), events: part)) == .loaded)
                if rollups == .afterEachLoad || rollups == .afterSome && (k == 0 || k == 3) { while try await life.rollUpReports() > 0 {} }
            }
            if rollups == .afterSome { while try await life.rollUpReports() > 0 {} }
            if rollups == .readBack {
                try await store.close()
                store = reopen()
                life = try #require(store as? any LifecycleStore)
                while try await life.rollUpReports() > 0 {}
            }
            let engine = ReportEngine(store: store)
            var locals: [String: [Local]] = [:]
            var rng = SeededRandom(backend == .sqlite ? (rollups == .afterEachLoad ? 3 : 1) : 2)
            // Most rounds where the rollups are the usual mix; fewer for the other timings.
            for round in 0..<(rollups == .behindLoads ? 60 : 24) {
                let tz = Self.zones[round % Self.zones.count]
                let site = ["a", "b", "c", "none"][Int(rng.next() % 4)]
                let w = Self.windows[Int(rng.next() % 4)]
                let from = UTCDay(number: w.number - 1 + Int32(rng.next() % 5))
                let to = UTCDay(number: from.number + Int32(rng.next() % 4))
                let range = ReportRange(siteID: site, from: from, to: to, zone: ReportZone(identifier: tz)!)
                if locals[tz] == nil { locals[tz] = Self.locals(events, tz) }
                let inRange = events.indices.filter { events[$0].siteID == site && (from...to).contains(locals[tz]![$0].day) }
                let mine = inRange.map { events[$0] }
                let local = inRange.map { locals[tz]![$0] }
                let what = "\(site) \(from)…\(to) \(tz)"

                #expect(try await engine.aggregate(range) == Self.figures(mine), "aggregate \(what)")

                // Days and months: every bucket, by its label.
                for interval in [ReportInterval.day, .month] {
                    let buckets = range.buckets(interval)
                    let got = try await engine.timeseries(range, buckets)
                    let labels = buckets.map(\.label)
                    let want = labels.map { label in
                        Self.figures(mine.indices.filter { k in
                            let d = local[k].day.description
                            return interval == .day ? d == label : d.hasPrefix(label)
                        }.map { mine[$0] })
                    }
                    #expect(got == want, "\(interval) \(what)")
                    #expect(Set(labels).count == labels.count)
                }
                // Hours: each bucket is one local hour at one offset; the skipped hour has none.
                let hours = range.buckets(.hour)
                let byHour = try await engine.timeseries(range, hours)
                var seen = 0
                for (b, f) in zip(hours, byHour) {
                    let label = String(b.label.prefix(16))
                    let inBucket = mine.indices.filter { k in
                        "\(local[k].day)T\(zeroPadded(local[k].hour, 2)):00" == label && Int64(local[k].offset) == b.offset
                    }.map { mine[$0] }
                    seen += inBucket.count
                    #expect(f == Self.figures(inBucket), "hour \(b.label) \(what)")
                }
                #expect(seen == mine.count, "every event in one hour bucket: \(what)")

                let property = BreakdownProperty.allCases[Int(rng.next() % UInt64(BreakdownProperty.allCases.count))]
                let limit = Int(rng.next() % 15) + 1
                let want = Self.breakdown(mine, property, limit: limit)
                #expect(try await engine.breakdown(range, property, limit: limit) == want, "breakdown \(property) \(what)")

                if backend == .postgres, round % 3 == 0 {
                    try await expectPostgresSQL(store, range, Self.figures(mine))
                }
            }
            // Export reads every row back: bots too, with every column.
            let all = ReportRange(siteID: "b", from: UTCDay(parsing: "2026-03-01")!, to: UTCDay(parsing: "2026-11-30")!,
                                  zone: ReportZone(identifier: "UTC")!)
            var back: [Event] = []
            try await store.scanRows("b", from: all.start * 1_000_000, to: all.end * 1_000_000) { back.append($0.event) }
            let loads: [[Event]] = (0..<5).map { k in Array(events[k * 1000..<(k + 1) * 1000]) }
            let inStoredOrder: [Event] = loads.flatMap { backend.stored($0, sites: ["b"]) }
            #expect(back == inStoredOrder.filter { $0.siteID == "b" })
            // In small pages over part of the range, the same rows in the same order: each page
            // reads on from where the one before stopped (on SQLite, in the id ranges the first
            // page found).
            let (from, to) = (ts("2026-03-07T05:30:00Z"), ts("2026-04-05T19:00:00Z"))
            var paged: [Event] = [], pages = 0
            var cursor: RowCursor? = .start
            while let after = cursor {
                let page = try await store.rows(siteID: "b", from: from, to: to, after: after, limit: 97)
                paged += page.rows.map(\.event)
                cursor = page.next
                pages += 1
            }
            #expect(pages > 10)
            #expect(paged == inStoredOrder.filter { $0.siteID == "b" && $0.timestamp >= from && $0.timestamp < to })

            // A purge takes effect at once, before any sweep deletes a row: the days of "c"
            // before 2026-03-28 are gone from every report, the later ones are all there (the
            // month it cuts is made again from its days left).
            let cut = UTCDay(parsing: "2026-03-28")!
            _ = try await life.recordPurge(site: "c", before: cut, leaseUntil: 0)
            let c = ReportRange(siteID: "c", from: all.from, to: all.to, zone: all.zone)
            let left = events.filter { $0.siteID == "c" && $0.timestamp >= cut.start }
            #expect(try await engine.aggregate(c) == Self.figures(left))
            let march = ReportRange(siteID: "c", from: UTCDay(parsing: "2026-03-01")!, to: UTCDay(parsing: "2026-03-31")!, zone: all.zone)
            #expect(try await engine.timeseries(march, march.buckets(.month)) == [Self.figures(left.filter { $0.timestamp < UTCDay(parsing: "2026-04-01")!.start })])
            for property in BreakdownProperty.allCases {
                #expect(try await engine.breakdown(c, property, limit: 20) == Self.breakdown(left, property, limit: 20), "\(property) after the purge")
            }
            var exported = 0
            try await store.scanRows("c", from: all.start * 1_000_000, to: all.end * 1_000_000) { _ in exported += 1 }
            #expect(exported == left.count && left.count > 0)
            // Pages that a purge emptied still lead on to the next.
            let page = try await store.rows(siteID: "c", from: all.start * 1_000_000, to: all.end * 1_000_000, after: .start, limit: 3)
            #expect(page.next != nil)
            try await store.close()
        }
    }

    /// The breakdown of `events` (the site's, in the range), by definition.
    static func breakdown(_ events: [Event], _ property: BreakdownProperty, limit: Int) -> [BreakdownRow] {
        var groups: [String?: [Event]] = [:]
        for e in events where e.counts { groups[property.value(of: e), default: []].append(e) }
        let rows: [BreakdownRow] = groups.map { v, es in
            let f = figures(es)
            return BreakdownRow(value: v, views: f.views, visitors: f.visitors, events: f.events)
        }
        return Array(rows.sorted(by: breakdownOrder).prefix(limit))
    }

    /// Views, then events, descending; then the value's bytes, no value first.
    static func breakdownOrder(_ a: BreakdownRow, _ b: BreakdownRow) -> Bool {
        if a.views != b.views { return a.views > b.views }
        if a.events != b.events { return a.events > b.events }
        guard let x = a.value else { return b.value != nil }
        guard let y = b.value else { return false }
        return Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8))
    }

    /// A purge sweeps the newest rows away after they were rolled up; the rows loaded next
    /// must not take ids the rollups count as taken in (they would be in no report).
    @Test func rowsAfterAPurgedTailAreCounted() async throws {
        try await withTempDir { dir in
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            let day = UTCDay(parsing: "2026-05-04")!
            func events(_ n: Int, _ site: String) -> [Event] {
                (0..<n).map { Event(siteID: site, eventType: "page_view", path: "/", userID: "u\($0)", timestamp: day.start + Int64($0) * 1_000_000) }
            }
            _ = try await store.load(StoreBatch(id: "b", createdAt: 1, events: events(50, "b")))
            _ = try await store.load(StoreBatch(id: "a", createdAt: 2, events: events(100, "a")))
            while try await store.rollUpReports() > 0 {}
            let p = try await store.recordPurge(site: "a", before: nil, leaseUntil: 0)
            let swept = try await LifecycleContractTests.sweep(store, SweepRules(retention: RetentionPolicy(), today: .today, purges: [p]))
            #expect(swept.purges == 100)
            _ = try await store.load(StoreBatch(id: "a2", createdAt: Timestamp.now() + 1_000_000, events: events(30, "a")))
            let span = TimeSpan(day.start, day.start + 86_400_000_000)
            for _ in 0..<2 {
                #expect(try await store.figures(siteID: "a", spans: [span]) == [ReportFigures(views: 30, events: 30, users: 30, visitors: 30)])
                #expect(try await store.figures(siteID: "b", spans: [span]) == [ReportFigures(views: 50, events: 50, users: 50, visitors: 50)])
                while try await store.rollUpReports() > 0 {}
            }
            try await store.close()
        }
    }

    /// A report that would need raw rows the retention deleted is refused, not counted short.
    @Test(arguments: Backend.available)
    func reportsNeedingDeletedRowsAreRefused(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let life = try #require(store as? any LifecycleStore)
            life.setRetention(RetentionPolicy(days: 30))
            let engine = ReportEngine(store: store)
            let old = UTCDay(number: UTCDay.today.number - 60)
            let berlin = ReportRange(siteID: "s", from: old, to: old, zone: ReportZone(identifier: "Europe/Berlin")!)
            let utc = ReportRange(siteID: "s", from: old, to: old, zone: ReportZone(identifier: "UTC")!)
            _ = try await store.load(StoreBatch(id: "x", createdAt: 1, events: [Event(siteID: "s", eventType: "page_view", path: "/", timestamp: old.start + 3_600_000_000)]))
            while try await life.rollUpReports() > 0 {}
            await #expect(throws: ReportNeedsDeletedRows.self) { try await engine.breakdown(berlin, .path, limit: 5) }
            if backend == .sqlite {
                // Whole UTC days come from the rollups, which outlive the raw rows.
                #expect(try await engine.breakdown(utc, .path, limit: 5) == [BreakdownRow(value: "/", views: 1, visitors: 0, events: 1)])
                #expect(try await engine.aggregate(berlin).views == 1)
            } else {
                await #expect(throws: ReportNeedsDeletedRows.self) { try await engine.aggregate(utc) }
            }
            try await store.close()
        }
    }

    /// Realtime: the current minute and the four before, from minute rollups once rolled up.
    @Test(arguments: Backend.available)
    func realtimeCountsTheLastMinutes(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let now = Timestamp.now()
            var rng = SeededRandom(9)
            let events = (0..<3000).map { k in
                // From 20 minutes ago to a minute ahead.
                Event(siteID: "rt", eventType: k % 4 == 0 ? "click" : "page_view", path: "/", userID: k % 3 == 0 ? nil : "u\(rng.next() % 40)",
                      timestamp: now - 1_200_000_000 + Int64(rng.next() % 1_260_000_000), referrer: nil,
                      visit: Visit(visitor: k % 3 == 0 ? rng.next() % 30 + 1 : 0, isBot: k % 50 == 0))
            }
            try await LifecycleContractTests.load(store, events, parts: 3)
            let life = try #require(store as? any LifecycleStore)
            let engine = ReportEngine(store: store)
            let span = ReportEngine.realtimeSpan(now: now)
            let want = Self.figures(events.filter { $0.timestamp >= span.start && $0.timestamp < span.end })
            #expect(try await engine.realtime("rt", now: now) == want)
            while try await life.rollUpReports() > 0 {}
            #expect(try await engine.realtime("rt", now: now) == want, "rolled up")
            try await store.close()
        }
    }

    /// Values tied on views and events are ordered by their bytes, whatever a store's own
    /// spelling of them (PostgreSQL escapes NUL and U+FFFF, and so sorts "x\u{0}" after
    /// "x\u{1}"), and the limit cuts through the ties at the same place.
    @Test(arguments: Backend.available)
    func breakdownTiesAreOrderedByBytes(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let t = UTCDay(parsing: "2026-05-01")!.start + 3_600_000_000
            let paths = ["x\u{FFFF}", "x\u{1}", "x\u{FFFF}\u{0}", "x\u{0}", "x", "\u{0}", "y", "y"]
            let events = paths.enumerated().map { k, p in
                Event(siteID: "t", eventType: "page_view", path: p, timestamp: t + Int64(k), referrer: nil, visit: Visit(visitor: UInt64(k + 1)))
            }
            _ = try await store.load(StoreBatch(id: "ties", createdAt: 1, events: events))
            let range = ReportRange(siteID: "t", from: UTCDay(parsing: "2026-05-01")!, to: UTCDay(parsing: "2026-05-01")!, zone: ReportZone(identifier: "UTC")!)
            let engine = ReportEngine(store: store)
            for limit in 1...7 {
                let got = try await engine.breakdown(range, .path, limit: limit)
                #expect(got == Self.breakdown(events, .path, limit: limit), "limit \(limit)")
            }
            #expect(try await engine.breakdown(range, .path, limit: 4).map(\.value) == ["y", "\u{0}", "x", "x\u{0}"])
            try await store.close()
        }
    }

    /// Spans need not touch: events between two spans are in neither, and a span with no
    /// events has zeros (the reporting API's spans always touch; the store's contract does not
    /// ask them to).
    @Test(arguments: Backend.available)
    func eventsBetweenSpansAreInNone(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let hour: Int64 = 3_600_000_000, t = UTCDay(parsing: "2026-05-01")!.start
            let events = (0..<12).map { k in
                Event(siteID: "g", eventType: "page_view", path: "/", userID: "u\(k)", timestamp: t + Int64(k) * hour / 2, referrer: nil)
            }
            _ = try await store.load(StoreBatch(id: "gaps", createdAt: 1, events: events))
            let spans = [TimeSpan(t, t + hour), TimeSpan(t + 2 * hour, t + 3 * hour), TimeSpan(t + 3 * hour, t + 3 * hour + 1), TimeSpan(t + 5 * hour, t + 7 * hour)]
            let want = spans.map { s in Self.figures(events.filter { $0.timestamp >= s.start && $0.timestamp < s.end }) }
            #expect(want.map(\.views) == [2, 2, 1, 2])
            #expect(try await store.figures(siteID: "g", spans: spans) == want)
            try await store.close()
        }
    }

    /// A PostgreSQL database from before the reports' index gets it when a collector starts,
    /// with its rows and loaded batches as they were, and its reports read a site's range
    /// through it (the plan is asked of the server with the table's statistics made).
    @Test func aPostgresDatabaseGainsTheReportsIndex() async throws {
        guard Backend.available.contains(.postgres) else { return }
        try await withTempDir { dir in
            let (old, reopen) = try await Backend.postgres.make(dir)
            try await old.prepare()
            let t = UTCDay(parsing: "2026-05-01")!.start
            let events = (0..<3000).map { k in
                Event(siteID: "s\(k % 30)", eventType: "page_view", path: "/", userID: "u\(k % 7)", timestamp: t + Int64(k) * 1_000_000, referrer: nil)
            }
            #expect(try await old.load(StoreBatch(id: "before", createdAt: 1, events: events)) == .loaded)
            let admin = try #require(old as? PostgresStore).client
            try await admin.query("DROP INDEX events_by_site_time")
            try await old.close()

            let store = reopen()
            try await store.prepare()
            let pg = try #require(store as? PostgresStore)
            var indexes: [String] = []
            for try await d in try await pg.client.query("SELECT indexdef FROM pg_indexes WHERE indexname = 'events_by_site_time'").decode(String.self) {
                indexes.append(d)
            }
            #expect(indexes.count == 1 && indexes.first?.hasSuffix("(site_id, event_ts)") == true, "\(indexes)")
            #expect(try await store.load(StoreBatch(id: "before", createdAt: 1, events: events)) == .alreadyLoaded)
            try await pg.client.query("ANALYZE events")
            var plan: [String] = []
            for try await line in try await pg.client.query("""
                EXPLAIN SELECT count(*) FROM events WHERE site_id = 's3' AND event_ts >= '2026-05-01' AND event_ts < '2026-05-02'
                """).decode(String.self) { plan.append(line) }
            #expect(plan.joined().contains("events_by_site_time"), "\(plan)")
            let range = ReportRange(siteID: "s3", from: UTCDay(parsing: "2026-05-01")!, to: UTCDay(parsing: "2026-05-01")!, zone: ReportZone(identifier: "UTC")!)
            #expect(try await ReportEngine(store: store).aggregate(range) == Self.figures(events.filter { $0.siteID == "s3" }))
            try await store.close()
        }
    }

    /// The same figures as one SQL statement over PostgreSQL's raw rows, its own time zone
    /// rules deciding which local day each event falls on.
    func expectPostgresSQL(_ store: any EventStore, _ r: ReportRange, _ want: ReportFigures) async throws {
        let pg = try #require(store as? PostgresStore)
        var row: [String] = []
        for try await v in try await pg.client.query(PostgresQuery(unsafeSQL: """
            SELECT concat_ws(' ', count(*) FILTER (WHERE event_type = 'page_view'), count(*),
                   count(DISTINCT user_id) FILTER (WHERE user_id <> ''),
                   count(DISTINCT CASE WHEN user_id <> '' THEN 'u' || user_id WHEN visitor IS NOT NULL THEN 'v' || visitor END))
            FROM events WHERE site_id = '\(r.siteID)' AND NOT bot
              AND (event_ts AT TIME ZONE '\(r.zone.identifier)')::date BETWEEN '\(r.from)' AND '\(r.to)'
            """)).decode(String.self) { row.append(v) }
        #expect(row == ["\(want.views) \(want.events) \(want.users) \(want.visitors)"], "SQL \(r.siteID) \(r.from)…\(r.to) \(r.zone.identifier)")
    }
}

/// Export lines, byte for byte: RFC 4180 quoting (and "" for an empty string, an empty field
/// for none), JSON escapes.
@Suite struct ExportFormatTests {
    @Test func csvAndNDJSONLines() {
        let e = Event(siteID: "s", eventType: "page_view", path: "/a,\"b\"\nc", userID: "", timestamp: 1_764_000_000_123_456,
                      referrer: nil, utmSource: "é", visit: Visit(visitor: 0xAB, device: .mobile, browser: "Firefox", os: nil, isBot: true))
        let row = StoredEvent(id: 7, ingestedAt: 1_764_000_001_000_000, event: e)
        var csvBytes: [UInt8] = [], ndBytes: [UInt8] = []
        ExportFormat.csv.append(row, to: &csvBytes)
        ExportFormat.ndjson.append(row, to: &ndBytes)
        let csv = String(decoding: csvBytes, as: UTF8.self), nd = String(decoding: ndBytes, as: UTF8.self)
        #expect(csv == "7,s,page_view,\"/a,\"\"b\"\"\nc\",\"\",2025-11-24T16:00:00.123456Z,2025-11-24T16:00:01.000000Z,,é,,,mobile,Firefox,,00000000000000ab,true\r\n")
        #expect(nd == #"{"id":7,"site_id":"s","event_type":"page_view","path":"/a,\"b\"\nc","user_id":"","timestamp":"2025-11-24T16:00:00.123456Z","ingested_at":"2025-11-24T16:00:01.000000Z","referrer":null,"utm_source":"é","utm_medium":null,"utm_campaign":null,"device":"mobile","browser":"Firefox","os":null,"visitor":"00000000000000ab","bot":true}"# + "\n")
    }

    /// The byte writer against the `String` functions it replaced: `JSONText.quote` and
    /// `Timestamp.format`, on awkward strings and random times (negative, past year 9999).
    @Test func bytesAgreeWithTheStringFormatters() {
        var rng = SystemRandomNumberGenerator()
        let texts = ["", "a\\b", "\t\r\n", "\u{01}\u{1F}\u{7F}", "\"quoted\"", "é→😀", "\u{2028}"]
        for (i, text) in texts.enumerated() {
            let micros = i == 0 ? -1 : Int64.random(in: -400_000_000_000_000_000...400_000_000_000_000_000, using: &rng)
            let e = Event(siteID: "s", eventType: "t", path: text, timestamp: micros)
            var bytes: [UInt8] = []
            ExportFormat.ndjson.append(StoredEvent(id: 1, ingestedAt: 0, event: e), to: &bytes)
            let line = String(decoding: bytes, as: UTF8.self)
            #expect(line.contains("\"path\":\(JSONText.quote(text)),"), "\(line)")
            #expect(line.contains("\"timestamp\":\"\(Timestamp.format(micros))\","), "\(line)")
        }
    }
}

/// Day starts and hours where the clocks change, checked against the zones' published rules.
@Suite struct ReportZoneTests {
    static func zone(_ id: String) -> ReportZone { ReportZone(identifier: id)! }
    static func at(_ s: String) -> Int64 { Timestamp.parse(s)! / 1_000_000 }
    static func day(_ s: String) -> UTCDay { UTCDay(parsing: s)! }

    @Test func dayStarts() {
        #expect(Self.zone("UTC").start(of: Self.day("2026-03-08")) == Self.at("2026-03-08T00:00:00Z"))
        #expect(Self.zone("America/New_York").start(of: Self.day("2026-03-08")) == Self.at("2026-03-08T05:00:00Z"))
        #expect(Self.zone("America/New_York").start(of: Self.day("2026-03-09")) == Self.at("2026-03-09T04:00:00Z"))
        #expect(Self.zone("Asia/Kolkata").start(of: Self.day("2026-01-15")) == Self.at("2026-01-14T18:30:00Z"))
        #expect(Self.zone("Asia/Kathmandu").start(of: Self.day("2026-01-15")) == Self.at("2026-01-14T18:15:00Z"))
        #expect(Self.zone("Pacific/Chatham").start(of: Self.day("2026-01-15")) == Self.at("2026-01-14T10:15:00Z"))
        // Samoa skipped 2011-12-30: the day is empty.
        let apia = Self.zone("Pacific/Apia")
        #expect(apia.start(of: Self.day("2011-12-30")) == apia.start(of: Self.day("2011-12-31")))
        // Santiago starts DST at midnight: 2026-09-06 begins at 01:00 local.
        #expect(Self.zone("America/Santiago").start(of: Self.day("2026-09-06")) == Self.at("2026-09-06T04:00:00Z"))
        #expect(ReportZone(identifier: "EST") == nil && ReportZone(identifier: "GMT+5") == nil && ReportZone(identifier: "Mars/Base") == nil)
    }

    @Test func hoursAcrossDSTChanges() {
        let ny = Self.zone("America/New_York")
        let spring = ny.hours(from: ny.start(of: Self.day("2026-03-08")), to: ny.start(of: Self.day("2026-03-09")))
        #expect(spring.count == 23 && spring.map(\.label).prefix(3) == ["2026-03-08T00:00", "2026-03-08T01:00", "2026-03-08T03:00"])
        let fall = ny.hours(from: ny.start(of: Self.day("2026-11-01")), to: ny.start(of: Self.day("2026-11-02")))
        #expect(fall.count == 25 && fall.map(\.label).prefix(4) == ["2026-11-01T00:00", "2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00", "2026-11-01T02:00"])
        #expect(fall[1].start == Self.at("2026-11-01T05:00:00Z") && fall[2].start == Self.at("2026-11-01T06:00:00Z"))
        // Lord Howe goes back 30 minutes at 02:00: the 01:00 hour has a full and a half stretch.
        let lh = Self.zone("Australia/Lord_Howe")
        let back = lh.hours(from: lh.start(of: Self.day("2026-04-05")), to: lh.start(of: Self.day("2026-04-06")))
        #expect(back.map(\.label).prefix(4) == ["2026-04-05T00:00", "2026-04-05T01:00+11:00", "2026-04-05T01:00+10:30", "2026-04-05T02:00"])
        #expect(back[2].end - back[2].start == 1800 && back.reduce(0) { $0 + $1.end - $1.start } == 24 * 3600 + 1800)
        // Kolkata's hours start at half past UTC hours.
        let k = Self.zone("Asia/Kolkata")
        #expect(k.hours(from: k.start(of: Self.day("2026-01-15")), to: k.start(of: Self.day("2026-01-16")))[1].start == Self.at("2026-01-14T19:30:00Z"))
    }

    @Test func rangesAndMonths() {
        let r = ReportRange(siteID: "s", from: Self.day("2026-01-30"), to: Self.day("2026-03-02"), zone: Self.zone("Europe/Berlin"))
        #expect(r.months.map(\.label) == ["2026-01", "2026-02", "2026-03"])
        #expect(r.months.first!.start == Self.at("2026-01-29T23:00:00Z") && r.months.last!.end == Self.at("2026-03-02T23:00:00Z"))
        #expect(r.days.count == 32 && r.days[2].label == "2026-02-01")
    }
}
