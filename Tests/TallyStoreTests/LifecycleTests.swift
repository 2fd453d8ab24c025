import Foundation
import Testing
import TallyCore
import TallyTestSupport
@testable import TallyStore

/// Retention and purges, on both stores, against the numbers computed straight from the
/// events that should be left (``SQLiteSchemaTests/expected(_:site:day:)``) and the raw rows
/// read back by SQL.
@Suite struct LifecycleContractTests {
    static let sites = (0..<5).map { "site-\($0)" }
    /// The four days ``SQLiteSchemaTests/randomEvents(_:seed:)`` spreads events over.
    static let days = (0..<4).map { UTCDay(number: UTCDay(parsing: "2025-11-10")!.number + Int32($0)) }

    /// A prepared store on an empty database, as a lifecycle store too, and a way to open a second.
    static func open(_ backend: Backend, _ dir: String) async throws
        -> (store: any EventStore, life: any LifecycleStore, reopen: @Sendable () -> any EventStore) {
        let (store, reopen) = try await backend.make(dir)
        try await store.prepare()
        return (store, try #require(store as? any LifecycleStore), reopen)
    }

    /// Every site's numbers, all time and each day, are those of `events`.
    static func expectNumbers(_ store: any EventStore, _ events: [Event], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for site in sites {
            for day in [nil] + days.map(Optional.some) {
                let got = try await store.stats(siteID: site, day: day, limit: 10)
                #expect(got == SQLiteSchemaTests.expected(events, site: site, day: day), "\(site) \(day.map { "\($0)" } ?? "all time")",
                        sourceLocation: sourceLocation)
            }
        }
    }

    /// On SQLite, `row_spans` after a sweep: every row is in a span of its site and hour, and
    /// every span holds a row of its site and hour (the sweep deleted the spans it emptied).
    /// Returns the number of spans (nil on PostgreSQL).
    static func spansFitRows(_ store: any EventStore, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int? {
        guard let s = store as? SQLiteStore else { return nil }
        let db = try SQLiteConnection(path: s.path)
        #expect(try SQLiteSchemaTests.strings(db, """
            SELECT count(*) FROM event_rows e WHERE NOT EXISTS (SELECT 1 FROM row_spans s
                WHERE s.site = e.site AND s.hour = e.event_ts / 3600000000 AND e.id BETWEEN s.first AND s.last)
            """) == ["0"], "rows outside the spans", sourceLocation: sourceLocation)
        #expect(try SQLiteSchemaTests.strings(db, """
            SELECT count(*) FROM row_spans s WHERE NOT EXISTS (SELECT 1 FROM event_rows e
                WHERE e.id BETWEEN s.first AND s.last AND e.site = s.site AND e.event_ts / 3600000000 = s.hour)
            """) == ["0"], "empty spans", sourceLocation: sourceLocation)
        return try SQLiteSchemaTests.strings(db, "SELECT count(*) FROM row_spans").first.flatMap { Int($0) }
    }

    /// A whole sweep in small steps.
    static func sweep(_ store: any LifecycleStore, _ rules: SweepRules) async throws -> (retention: Int, purges: Int) {
        var after = try await store.firstRowID()
        var out = (retention: 0, purges: 0)
        while true {
            let step = try await store.sweep(after: after, span: 997, rules: rules)
            out.retention += step.deletedByRetention
            out.purges += step.deletedByPurges
            guard let next = step.next else { return out }
            #expect(next > after)
            after = next
        }
    }

    /// (site, event time) of a raw row from ``rawRows(_:)``.
    static func fields(_ row: String) -> (site: String, ts: Int64) {
        let f = row.split(separator: "|", omittingEmptySubsequences: false)
        return (String(f[0]), Int64(f[4])!)
    }

    /// ``open(_:_:)`` with 20,000 random events loaded in four batches, and their raw rows.
    static func seeded(_ backend: Backend, _ dir: String, seed: UInt64) async throws
        -> (store: any EventStore, life: any LifecycleStore, reopen: @Sendable () -> any EventStore, events: [Event], rows: [String]) {
        let (store, life, reopen) = try await open(backend, dir)
        let events = SQLiteSchemaTests.randomEvents(20_000, seed: seed)
        try await load(store, events)
        return (store, life, reopen, events, try await rawRows(store))
    }

    static func load(_ store: any EventStore, _ events: [Event], parts: Int = 4) async throws {
        let size = (events.count + parts - 1) / parts
        for k in 0..<parts {
            let slice = Array(events[min(events.count, k * size)..<min(events.count, (k + 1) * size)])
            #expect(try await store.load(StoreBatch(id: "part-\(k)", createdAt: Int64(k + 1), events: slice)) == .loaded)
        }
    }

    @Test(arguments: Backend.available)
    func aPurgeDeletesOneSiteAndNothingElse(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, life, reopen, events, rows) = try await Self.seeded(backend, dir, seed: 5)
            let kept = events.filter { $0.siteID != "site-1" }

            let lease = Timestamp.now() + 60_000_000
            let p = try await life.recordPurge(site: "site-1", before: nil, leaseUntil: lease)
            #expect(p.site == "site-1" && p.before == nil && !p.done && p.leaseUntil == lease)
            // Its recorder holds it: another sweeper cannot claim it; the holder renews it.
            #expect(try await life.claimPurges(ids: [], until: lease, takeExpired: true).isEmpty)
            #expect(try await life.claimPurges(ids: [p.id], until: lease + 1, takeExpired: false).map(\.leaseUntil) == [lease + 1])
            // Gone from the reports at once; the raw rows wait for the sweep.
            try await Self.expectNumbers(store, kept)
            #expect(try await rawRows(store) == rows)
            #expect(try await life.purges(unfinishedOnly: true).map(\.id) == [p.id])

            let spans = try Self.spansFitRows(store)
            let swept = try await Self.sweep(life, SweepRules(retention: RetentionPolicy(), today: .today, purges: [p]))
            #expect(swept.purges == events.count - kept.count && swept.retention == 0)
            #expect(try await rawRows(store) == rows.filter { Self.fields($0).site != "site-1" })
            if let spans { #expect(try Self.spansFitRows(store)! < spans) }
            #expect(try await store.eventCount() == Int64(kept.count))
            try await life.finishPurges([p.id])
            #expect(try await life.purges(unfinishedOnly: true).isEmpty)
            #expect(try await life.purges(unfinishedOnly: false).map(\.done) == [true])
            if let s = store as? SQLiteStore {
                // Names only the purged site used are gone; every other one stays.
                let db = try SQLiteConnection(path: s.path)
                func names(_ table: String) throws -> Set<String> {
                    let q = try db.statement("SELECT name FROM \(table)")
                    var out: Set<String> = []
                    while try q.step() { out.insert(q.text(0)) }
                    return out
                }
                #expect(try names("sites") == Set(kept.map(\.siteID)))
                #expect(try names("users") == Set(kept.compactMap(\.userID)))
                #expect(try names("paths") == Set(kept.compactMap(\.path)))
                #expect(try names("labels") == Set(kept.flatMap { [$0.referrer, $0.visit.browser, $0.visit.os] }.compactMap { $0 }))
            }

            // A batch cut before the purge (still spooled somewhere) brings nothing back, in
            // this store or another on the same database; one cut after it counts.
            let again = events.filter { $0.siteID == "site-1" }.prefix(300)
            #expect(try await store.load(StoreBatch(id: "spooled", createdAt: p.at - 1, events: Array(again))) == .loaded)
            try await Self.expectNumbers(store, kept)
            let other = reopen()
            try await other.prepare()
            #expect(try await other.load(StoreBatch(id: "spooled-too", createdAt: p.at - 1, events: Array(again))) == .loaded)
            try await Self.expectNumbers(other, kept)
            #expect(try await other.load(StoreBatch(id: "after", createdAt: p.at + 1, events: Array(again))) == .loaded)
            try await Self.expectNumbers(store, kept + again)
            #expect(try await rawRows(store).filter { Self.fields($0).site == "site-1" }.count == again.count)
            // The first store's caches (names, users known to be stored) were made stale by
            // the purge and the name sweep: its loads still come out exact.
            #expect(try await store.load(StoreBatch(id: "after-2", createdAt: p.at + 2, events: Array(again))) == .loaded)
            try await Self.expectNumbers(store, kept + again + again)
            try await other.close()
            try await store.close()
        }
    }

    @Test(arguments: Backend.available)
    func aPurgeBeforeADayKeepsTheLaterDays(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, life, _, events, rows) = try await Self.seeded(backend, dir, seed: 6)
            let cut = Self.days[2]
            let kept = events.filter { !($0.siteID == "site-2" && $0.day < cut) }
            let recorded = try await life.recordPurge(site: "site-2", before: cut, leaseUntil: 0)
            // Nobody holds it (its recorder died, say): the next sweeper claims it.
            // Renewing one's own claims takes nothing else; a claim takes what nobody holds.
            #expect(try await life.claimPurges(ids: [], until: Timestamp.now() + 60_000_000, takeExpired: false).isEmpty)
            let claimed = try await life.claimPurges(ids: [], until: Timestamp.now() + 60_000_000, takeExpired: true)
            #expect(claimed.map(\.id) == [recorded.id])
            let p = try #require(claimed.first)
            #expect(p.before == cut && p.at == recorded.at)
            // All-time numbers too: path views lose the days, unique users are those of the days left.
            try await Self.expectNumbers(store, kept)
            let swept = try await Self.sweep(life, SweepRules(retention: RetentionPolicy(), today: .today, purges: [p]))
            #expect(swept.purges == events.count - kept.count)
            #expect(try await rawRows(store) == rows.filter { r in let f = Self.fields(r); return !(f.site == "site-2" && f.ts < cut.start) })
            try await life.finishPurges([p.id])
            try await Self.expectNumbers(store, kept)
            try await store.close()
        }
    }

    @Test(arguments: Backend.available)
    func retentionDeletesExactlyTheRawRowsPastTheLimitAndKeepsTheNumbers(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, life, _, events, rows) = try await Self.seeded(backend, dir, seed: 7)
            // On the last day: one day back for every site, three for site-3 (all of them).
            let policy = RetentionPolicy(days: 1, siteDays: [ExactString("site-3"): 3])
            let rules = SweepRules(retention: policy, today: Self.days[3], purges: [])
            let spans = try Self.spansFitRows(store)
            let swept = try await Self.sweep(life, rules)
            let left = rows.filter { r in let f = Self.fields(r); return f.site == "site-3" || f.ts >= Self.days[2].start }
            #expect(swept.retention == rows.count - left.count && swept.purges == 0 && swept.retention > 0)
            #expect(try await rawRows(store) == left)
            if let spans { #expect(try Self.spansFitRows(store)! < spans) }
            #expect(try await store.eventCount() == Int64(left.count))
            try await Self.expectNumbers(store, events)
            // A second sweep finds nothing more.
            let second = try await Self.sweep(life, rules)
            #expect(second.retention == 0 && second.purges == 0)

            // Rows already past the limit when they arrive are counted and never stored.
            life.setRetention(RetentionPolicy(days: 30))
            let old = SQLiteSchemaTests.randomEvents(3_000, seed: 8)
            let now = Event(siteID: "site-0", eventType: "page_view", path: "/now", userID: "u-now", timestamp: Timestamp.now())
            #expect(try await store.load(StoreBatch(id: "late", createdAt: 10, events: old + [now])) == .loaded)
            try await Self.expectNumbers(store, events + old + [now])
            let after = try await rawRows(store)
            #expect(after.count == left.count + 1 && Array(after.prefix(left.count)) == left)
            #expect(try await store.eventCount() == Int64(left.count + 1))
            #expect(after.last.map(Self.fields)?.ts == now.timestamp)
            try await store.close()
        }
    }

    @Test(arguments: Backend.available)
    func rollupRetentionKeepsTheReportsOfTheLastDaysOnly(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, life, _, events, rows) = try await Self.seeded(backend, dir, seed: 9)
            let cut = Self.days[2]
            let sites = try await life.sitesWithRollups(before: cut)
            #expect(sites.sorted() == Self.sites)
            for site in sites { try await life.dropRollups(site: site, before: cut) }
            // All-time numbers are those of the days left, as if only they had been loaded.
            try await Self.expectNumbers(store, events.filter { $0.day >= cut })
            #expect(try await life.sitesWithRollups(before: cut).isEmpty)
            #expect(try await rawRows(store) == rows)
            // Events of days past the rollup retention are neither counted nor stored.
            life.setRetention(RetentionPolicy(rollupDays: 30))
            #expect(try await store.load(StoreBatch(id: "old", createdAt: 10, events: SQLiteSchemaTests.randomEvents(2_000, seed: 10))) == .loaded)
            try await Self.expectNumbers(store, events.filter { $0.day >= cut })
            #expect(try await rawRows(store) == rows)
            try await store.close()
        }
    }

    /// Sites are told apart by their bytes: purging the NFC spelling of a name leaves the NFD
    /// one (another site to the stores) alone, in the rollups and at load.
    @Test(arguments: Backend.available)
    func aPurgeTakesTheSiteOfItsBytesOnly(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, life, _) = try await Self.open(backend, dir)
            let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
            func views(_ site: String, _ n: Int) -> [Event] {
                (0..<n).map { Event(siteID: site, eventType: "page_view", path: "/p\($0)", timestamp: ts("2025-11-14T12:00:00Z")) }
            }
            #expect(try await store.load(StoreBatch(id: "a", createdAt: 1, events: views(nfc, 3) + views(nfd, 5))) == .loaded)
            let p = try await life.recordPurge(site: nfc, before: nil, leaseUntil: 0)
            #expect(try await store.stats(siteID: nfc, day: nil, limit: 10).totalViews == 0)
            #expect(try await store.stats(siteID: nfd, day: nil, limit: 10).totalViews == 5)
            #expect(try await store.load(StoreBatch(id: "b", createdAt: p.at - 1, events: views(nfc, 2) + views(nfd, 4))) == .loaded)
            #expect(try await store.stats(siteID: nfc, day: nil, limit: 10).totalViews == 0)
            #expect(try await store.stats(siteID: nfd, day: nil, limit: 10).totalViews == 9)
            try await store.close()
        }
    }
}
