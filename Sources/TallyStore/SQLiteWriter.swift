import CSQLite
import Dispatch
import TallyCore

/// The writer connection and what it remembers between loads: interned names. Not
/// thread-safe: ``SQLiteStore`` holds its lock around every use.
final class SQLiteWriter {
    let db: SQLiteConnection
    let sites = SQLiteNames(table: "sites", limit: 1 << 16)
    let types = SQLiteNames(table: "event_types", limit: 1 << 12)
    let paths = SQLiteNames(table: "paths", limit: 1 << 20)
    let users = SQLiteNames(table: "users", limit: 1 << 20)
    /// Referrer hosts, UTM values, browser and OS families.
    let labels = SQLiteNames(table: "labels", limit: 1 << 16)
    /// The store generation the names and `purges` were read at (-1: not yet).
    private var generation: Int64 = -1
    /// Every purge recorded, as loads apply them.
    private var purges: [SitePurge] = []
    init(_ db: SQLiteConnection) { self.db = db }

    /// Reads the generation inside the open write transaction; when a purge or a name sweep
    /// (this process's or another's) moved it, forgets the cached names and reads the purges.
    private func refresh() throws {
        let g = try db.statement("SELECT value FROM store_generation")
        let now = try g.step() ? g.int(0) : 0
        sqlite3_reset(g.handle)
        guard now != generation else { return }
        for n in [sites, types, paths, users, labels] { n.forget() }
        purges = try SQLiteLifecycle.purges(db, unfinishedOnly: false)
        generation = now
    }

    /// Loads the batches not loaded before, in one transaction: the events purges cover are
    /// dropped, and rows already past `retention` only reach the rollups.
    func load(_ batches: [StoreBatch], retention: RetentionPolicy = RetentionPolicy()) throws -> [LoadOutcome] {
        try db.exec("BEGIN IMMEDIATE")
        do {
            try refresh()
            var outcomes: [LoadOutcome] = []
            var fresh: [StoreBatch] = []
            let mark = try db.statement("INSERT INTO loaded_batches(batch_id, event_count, loaded_at) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING")
            for batch in batches {
                mark.bind(1, batch.id)
                mark.bind(2, Int64(batch.events.count))
                mark.bind(3, Timestamp.now())
                try mark.run()
                let isNew = sqlite3_changes(db.db) == 1
                outcomes.append(isNew ? .loaded : .alreadyLoaded)
                if isNew { fresh.append(batch) }
            }
            guard !fresh.isEmpty else {
                try db.exec("ROLLBACK")
                return outcomes
            }
            let filter = LoadFilter(purges: purges, retention: retention)
            let today = UTCDay.today
            let (all, allExtras) = try intern(fresh.map { filter.kept($0, today: today) }, filter: filter, today: today)
            // Ids above the report rollups' mark: after the newest rows were deleted (a purge,
            // a sweep), max(id) + 1 could be an id the rollups count as taken in already.
            let last = try db.statement("SELECT coalesce(max(id), 0), (SELECT rolled_up FROM report_state) FROM event_rows")
            guard try last.step() else { throw StoreError("event_rows: no max(id)") }
            let (top, base) = (last.int(0), max(last.int(0), last.int(1)) + 1)
            sqlite3_reset(last.handle)
            // Adding up the rollups is pure Swift work and appending the rows is SQLite's: on
            // a large load they run on two cores. Only the append touches the connection, and
            // the caller waits for both, so the connection is never used by two threads at once.
            let rollup: SQLiteRollup, stored: Int
            if all.count >= 8192 {
                let appended = UnsafeTransfer(Result<Int, any Error>.success(0))
                let added = UnsafeTransfer(SQLiteRollup())
                let writer = UnsafeTransfer(self)
                DispatchQueue.concurrentPerform(iterations: 2) { i in
                    if i == 0 {
                        appended.value = Result { try writer.value.append(all, allExtras, base: base, gap: base != top + 1) }
                    } else {
                        added.value = SQLiteRollup(all, allExtras)
                    }
                }
                stored = try appended.value.get()
                rollup = added.value
            } else {
                stored = try append(all, allExtras, base: base, gap: base != top + 1)
                rollup = SQLiteRollup(all, allExtras)
            }
            try upsert(rollup)
            try rollUpUnstored(all, allExtras)
            try SQLiteLifecycle.count(db, rows: stored)
            try db.exec("COMMIT")
            for n in [sites, types, paths, users, labels] { n.commit() }
            return outcomes
        } catch {
            db.resetAll()
            try? db.exec("ROLLBACK")
            for n in [sites, types, paths, users, labels] { n.rollback() }
            throw error
        }
    }

    /// Rows past the raw-row retention get no row id, so no rollup can read them back: their
    /// report rollup is written in the load's transaction.
    private func rollUpUnstored(_ all: [SQLiteRow], _ extras: [SQLiteRowExtra]) throws {
        guard all.contains(where: { !$0.stored }) else { return }
        var r = SQLiteReportRollup()
        let now = Timestamp.now()
        for row in all where !row.stored {
            if let x = SQLiteReportRollup.Row(row, extras) { try r.add(x, now: now) }
        }
        try r.flush(db, anonymousIDs: anonymousIDs)
    }

    /// Maps each event's names to their ids (adding new names inside the transaction).
    private func intern(_ batches: [StoreBatch], filter: LoadFilter, today: UTCDay) throws -> (rows: [SQLiteRow], extras: [SQLiteRowExtra]) {
        let keepsAllRows = filter.retention.keepsEverything
        var rows: [SQLiteRow] = []
        var extras: [SQLiteRowExtra] = []
        rows.reserveCapacity(batches.reduce(0) { $0 + $1.events.count })
        // Events arrive in runs of one site and mostly one type: remember the last of each.
        var lastSite = "", lastSiteID: Int64 = -1
        var lastType = "", lastTypeID: Int64 = -1, lastIsView = false
        for batch in batches {
            for e in batch.events {
                if lastSiteID < 0 || !e.siteID.utf8Equals(lastSite) {
                    lastSite = e.siteID
                    lastSiteID = try sites.id(e.siteID, db)
                    // Rollup keys pack the site id beside the day in one word.
                    guard lastSiteID < Int64(Int32.max) else { throw StoreError("more than 2^31 sites") }
                }
                if lastTypeID < 0 || !e.eventType.utf8Equals(lastType) {
                    lastType = e.eventType
                    lastTypeID = try types.id(e.eventType, db)
                    lastIsView = e.isPageView
                }
                var user: Int64 = -1, countsAsUser = false
                if let u = e.userID {
                    user = try users.id(u, db)
                    countsAsUser = !u.isEmpty && e.counts
                }
                var row = SQLiteRow(site: lastSiteID, type: lastTypeID, path: try e.path.map { try paths.id($0, db) } ?? -1,
                                    user: user, timestamp: e.timestamp, ingestedAt: batch.createdAt,
                                    day: UTCDay(containing: e.timestamp).number, isView: lastIsView && e.counts,
                                    countsAsUser: countsAsUser)
                if !keepsAllRows { row.stored = filter.storesRawRow(e, today: today) }
                if e.hasExtra {
                    let v = e.visit
                    func label(_ s: String?) throws -> Int64 { try s.map { try labels.id($0, db) } ?? -1 }
                    row.extra = Int32(extras.count)
                    extras.append(SQLiteRowExtra(
                        row: Int32(rows.count), referrer: try label(e.referrer), utmSource: try label(e.utmSource), utmMedium: try label(e.utmMedium),
                        utmCampaign: try label(e.utmCampaign), device: v.device.map { Int64($0.rawValue) } ?? -1,
                        browser: try label(v.browser), os: try label(v.os), visitor: v.visitor, bot: v.isBot,
                        onlyVisitor: e.detailsAreOnlyVisitor))
                }
                rows.append(row)
            }
        }
        return (rows, extras)
    }

    /// Appends the load's rows that are kept, in ``SQLiteRow/toAppend(_:_:)`` order (reordered
    /// here, beside the rollup's adding-up on the other core), then the details of the rows
    /// that have any under the same ids; returns how many rows. SQLite gives an appended row
    /// the id after the largest one (checked below), so the rows get consecutive ids from there
    /// without binding them: an explicit id costs a B-tree seek per row. A detail row with only
    /// an anonymous visitor id (HTTP senders without a User-Agent) binds just that: binding
    /// NULLs costs too.
    private func append(_ all: [SQLiteRow], _ allExtras: [SQLiteRowExtra], base: Int64, gap: Bool) throws -> Int {
        let (rows, extras) = SQLiteRow.toAppend(all, allExtras)
        guard !rows.isEmpty else { return 0 }
        // Details left behind by newest rows someone deleted by hand would attach to the new
        // rows that take their ids (a range delete that finds nothing otherwise).
        let orphans = try db.statement("DELETE FROM event_details WHERE id >= ?1")
        orphans.bind(1, base)
        try orphans.run()
        // Past a gap (ids the rollups' mark covers), the first row takes `base` explicitly;
        // the others follow it.
        var skip = 0
        if gap {
            let first = try db.statement("INSERT INTO event_rows(id, site, type, path, user, event_ts, ingested_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            let row = rows[0], h = first.handle
            sqlite3_bind_int64(h, 1, base)
            sqlite3_bind_int64(h, 2, row.site)
            sqlite3_bind_int64(h, 3, row.type)
            Self.bindID(h, 4, row.path)
            Self.bindID(h, 5, row.user)
            sqlite3_bind_int64(h, 6, row.timestamp)
            sqlite3_bind_int64(h, 7, row.ingestedAt)
            try first.run()
            skip = 1
        }
        try rows.withUnsafeBufferPointer { all in
            let rows = UnsafeBufferPointer(rebasing: all[skip...])
            try db.insertRows("INSERT INTO event_rows(site, type, path, user, event_ts, ingested_at) VALUES",
                              columns: 6, count: rows.count) { s, p, i in
                let row = rows[i], h = s.handle
                sqlite3_bind_int64(h, p, row.site)
                sqlite3_bind_int64(h, p + 1, row.type)
                Self.bindID(h, p + 2, row.path)
                Self.bindID(h, p + 3, row.user)
                sqlite3_bind_int64(h, p + 4, row.timestamp)
                sqlite3_bind_int64(h, p + 5, row.ingestedAt)
            }
        }
        guard sqlite3_last_insert_rowid(db.db) == base + Int64(rows.count) - 1 else {
            throw StoreError("event_rows ids are not consecutive from \(base); the load is rolled back")
        }
        try rows.withUnsafeBufferPointer { try recordSpans($0, base: base) }
        guard !extras.isEmpty else { return rows.count }
        let full = extras.contains { !$0.onlyVisitor }
        try extras.withUnsafeBufferPointer { extras in
            if !full {
                return try db.insertRows("INSERT INTO event_details(id, visitor) VALUES", columns: 2, count: extras.count) { s, p, i in
                    sqlite3_bind_int64(s.handle, p, base + Int64(extras[i].row))
                    Self.bindVisitor(s.handle, p + 1, extras[i].visitor)
                }
            }
            try db.insertRows("""
                INSERT INTO event_details(id, \(SQLiteSchema.detailNames)) VALUES
                """, columns: 1 + SQLiteSchema.detailColumns.count, count: extras.count) { s, p, i in
                let x = extras[i], h = s.handle
                sqlite3_bind_int64(h, p, base + Int64(x.row))
                Self.bindID(h, p + 1, x.referrer)
                Self.bindID(h, p + 2, x.utmSource)
                Self.bindID(h, p + 3, x.utmMedium)
                Self.bindID(h, p + 4, x.utmCampaign)
                Self.bindID(h, p + 5, x.device)
                Self.bindID(h, p + 6, x.browser)
                Self.bindID(h, p + 7, x.os)
                Self.bindVisitor(h, p + 8, x.visitor)
                sqlite3_bind_int64(h, p + 9, x.bot ? 1 : 0)
            }
        }
        return rows.count
    }

    /// Widens or adds the ``SQLiteSchema/spanTables`` span of each site's hour the rows fall
    /// in (the rows are grouped by hour and site: each site's hour is one run of ids). A load
    /// continues the site's hour's last span when its run starts close after it (live
    /// traffic: the next load's rows of the current hour), else starts a new one. "Close" is
    /// at most 256 ids or the run's own length: a reader of the span reads at most that many
    /// rows of other sites and hours per continuation, however loads interleave sites and
    /// hours. A site with one event in a while gets a span per event, which is its rows' cost.
    private func recordSpans(_ rows: UnsafeBufferPointer<SQLiteRow>, base: Int64) throws {
        var runs: [(site: Int64, hour: Int64, first: Int64, last: Int64)] = []
        for (i, row) in rows.enumerated() {
            let hour = row.hour, id = base + Int64(i)
            if let run = runs.last, run.hour == hour, run.site == row.site {
                runs[runs.count - 1].last = id
            } else {
                runs.append((row.site, hour, id, id))
            }
        }
        let latest = try db.statement("SELECT first, last FROM row_spans WHERE site = ?1 AND hour = ?2 ORDER BY first DESC LIMIT 1")
        let widen = try db.statement("UPDATE row_spans SET last = max(last, ?4) WHERE site = ?1 AND hour = ?2 AND first = ?3")
        let add = try db.statement("""
            INSERT INTO row_spans(site, hour, first, last) VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET last = max(last, excluded.last)
            """)
        for run in runs {
            latest.bind(1, run.site); latest.bind(2, run.hour)
            var continues: Int64?
            if try latest.step(), case let (first, last) = (latest.int(0), latest.int(1)), run.first >= first,
               run.first - last - 1 <= max(256, run.last - run.first + 1) {
                continues = first
            }
            sqlite3_reset(latest.handle)
            let s = continues == nil ? add : widen
            s.bind(1, run.site)
            s.bind(2, run.hour)
            s.bind(3, continues ?? run.first)
            s.bind(4, run.last)
            try s.run()
        }
    }

    private static func bindVisitor(_ h: OpaquePointer, _ index: Int32, _ v: UInt64) {
        if v != 0 { sqlite3_bind_int64(h, index, Int64(bitPattern: v)) } else { sqlite3_bind_null(h, index) }
    }

    /// An interned id, or NULL for -1.
    private static func bindID(_ h: OpaquePointer, _ index: Int32, _ v: Int64) {
        if v >= 0 { sqlite3_bind_int64(h, index, v) } else { sqlite3_bind_null(h, index) }
    }

    /// Upserts the rollup with keys in primary-key order: each B-tree page is visited once, in
    /// order, instead of at random.
    private func upsert(_ r: SQLiteRollup) throws {
        let dv = try db.statement("INSERT INTO daily_views(site, day, views) VALUES(?1, ?2, ?3) ON CONFLICT DO UPDATE SET views = views + excluded.views")
        for k in r.dayViews {
            dv.bind(1, SQLiteRollup.site(k.a)); dv.bind(2, SQLiteRollup.day(k.a)); dv.bind(3, k.value)
            try dv.run()
        }
        let dpv = try db.statement("INSERT INTO daily_path_views(site, day, path, views) VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET views = views + excluded.views")
        for k in r.dayPathViews {
            dpv.bind(1, SQLiteRollup.site(k.a)); dpv.bind(2, SQLiteRollup.day(k.a)); dpv.bind(3, Int64(k.b)); dpv.bind(4, k.value)
            try dpv.run()
        }
        let spv = try db.statement("INSERT INTO site_path_views(site, path, views) VALUES(?1, ?2, ?3) ON CONFLICT DO UPDATE SET views = views + excluded.views")
        for k in r.sitePathViews {
            spv.bind(1, Int64(k.a)); spv.bind(2, Int64(k.b)); spv.bind(3, k.value)
            try spv.run()
        }
        let sets = SQLiteUserSets(db: db)
        try sets.add(r.dayUsers, daily: true)
        try sets.add(r.siteUsers, daily: false)
        let visitors = try db.statement("INSERT INTO daily_visitors(site, day, visitor) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING")
        for k in r.dayVisitors {
            visitors.bind(1, SQLiteRollup.site(k.a)); visitors.bind(2, SQLiteRollup.day(k.a)); visitors.bind(3, Int64(bitPattern: k.b))
            try visitors.run()
        }
    }

}

/// Hands a value to the other iteration of `concurrentPerform`, which the join orders.
private final class UnsafeTransfer<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// One `event_rows` row before it is bound (-1 stands for NULL, visitor 0 too), with what the
/// rollup needs. Bots are rows like any other, but neither views nor users nor visitors.
struct SQLiteRow {
    var site: Int64, type: Int64, path: Int64, user: Int64, timestamp: Int64, ingestedAt: Int64
    var day: Int32
    /// A page view that counts (not a bot).
    var isView: Bool
    /// Has a non-empty user id, and counts.
    var countsAsUser: Bool
    /// Index into the load's ``SQLiteRowExtra``s, -1 for a row without (most): rows stay as
    /// small as the seed's, which a load of millions of them feels.
    var extra: Int32 = -1
    /// False for a row already past the raw-row retention: counted, not kept.
    var stored = true

    /// The UTC hour of the event time (since the epoch): with the site, the order rows are
    /// appended in and the key of their ``SQLiteSchema/spanTables`` spans.
    var hour: Int64 { timestamp / SQLiteSchema.microsPerHour }

    /// The rows to append: those kept (``stored``), grouped by their event time's hour, then
    /// by site, in arrival order within a group, with their details renumbered; the same
    /// arrays when that changes nothing. Each site's hour of a load is then one run of ids, so
    /// its spans hold few rows of other sites and hours, however many sites share the
    /// collector and however far apart in time a load's events are (backfills, replays).
    static func toAppend(_ rows: [SQLiteRow], _ extras: [SQLiteRowExtra]) -> ([SQLiteRow], [SQLiteRowExtra]) {
        // The group in one word: the hour above (below 2^31 until the year 200,000), the
        // site's id below (below 2^31: ``intern`` refuses more sites).
        func group(_ r: SQLiteRow) -> UInt64 { UInt64(r.hour) << 32 | UInt64(r.site) }
        var previous: UInt64 = 0, ordered = true
        for r in rows {
            let g = group(r)
            if g < previous { ordered = false; break }
            previous = g
        }
        let allKept = !rows.contains { !$0.stored }
        guard !(ordered && allKept) else { return (rows, extras) }
        var keys: [(group: UInt64, index: Int32)] = []
        keys.reserveCapacity(rows.count)
        for (i, r) in rows.enumerated() where r.stored { keys.append((group(r), Int32(i))) }
        if !ordered { keys.sort { $0.group != $1.group ? $0.group < $1.group : $0.index < $1.index } }
        var outRows: [SQLiteRow] = [], outExtras: [SQLiteRowExtra] = []
        outRows.reserveCapacity(keys.count)
        for key in keys {
            var r = rows[Int(key.index)]
            if r.extra >= 0 {
                var x = extras[Int(r.extra)]
                x.row = Int32(outRows.count)
                r.extra = Int32(outExtras.count)
                outExtras.append(x)
            }
            outRows.append(r)
        }
        return (outRows, outExtras)
    }
}

/// The `event_details` of a row that has any (-1 stands for NULL, visitor 0 too).
struct SQLiteRowExtra {
    /// The row's index in its load.
    var row: Int32 = 0
    var referrer: Int64 = -1, utmSource: Int64 = -1, utmMedium: Int64 = -1, utmCampaign: Int64 = -1
    var device: Int64 = -1, browser: Int64 = -1, os: Int64 = -1
    var visitor: UInt64 = 0
    var bot = false
    /// ``Event/detailsAreOnlyVisitor``.
    var onlyVisitor = false
}

/// One load's rollup deltas, each sorted in its table's primary-key order so the upserts visit
/// B-tree pages in order. Keys: `a` is the site id, or site and day packed by
/// ``IDPairTable/word(_:_:)``; `b` is the path or user id (0 for `dayViews`). The user
/// entries are distinct (site-day or site, user) pairs, merged into ``SQLiteUserSets``.
struct SQLiteRollup {
    typealias Entries = [(a: UInt64, b: UInt64, value: Int64)]
    var dayViews: Entries = []
    var dayPathViews: Entries = []
    var sitePathViews: Entries = []
    var dayUsers: Entries = []
    var siteUsers: Entries = []
    /// Distinct (site-day, visitor) pairs of events that count.
    var dayVisitors: Entries = []

    init() {}

    /// Adds up `rows`.
    init(_ rows: [SQLiteRow], _ extras: [SQLiteRowExtra] = []) {
        let capacity = min(rows.count, 1 << 16)
        var dv = IDPairTable(), dpv = IDPairTable(capacity: capacity / 4), spv = IDPairTable(capacity: capacity / 4)
        var du = IDPairTable(capacity: capacity), su = IDPairTable(capacity: capacity / 4)
        // Only anonymous visitors: most loads have none, so it starts small.
        var dvis = IDPairTable(capacity: 16)
        for r in rows {
            let siteDay = IDPairTable.word(r.site, r.day)
            let site = UInt64(r.site)
            if r.extra >= 0, case let x = extras[Int(r.extra)], x.visitor != 0 && !x.bot { dvis.add(siteDay, x.visitor) }
            if r.countsAsUser {
                du.add(siteDay, UInt64(r.user))
                su.add(site, UInt64(r.user))
            }
            guard r.isView else { continue }
            dv.add(siteDay, 0)
            if r.path >= 0 {
                dpv.add(siteDay, UInt64(r.path))
                spv.add(site, UInt64(r.path))
            }
        }
        dayViews = dv.sorted()
        dayPathViews = dpv.sorted()
        sitePathViews = spv.sorted()
        dayUsers = du.sorted()
        siteUsers = su.sorted()
        dayVisitors = dvis.sorted()
    }

    static func site(_ word: UInt64) -> Int64 { Int64(word >> 32) }
    static func day(_ word: UInt64) -> Int64 { Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: word))) }
}
