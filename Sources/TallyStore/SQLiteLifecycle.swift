import CSQLite
import TallyCore

extension SQLiteStore: LifecycleStore {
    public func setRetention(_ policy: RetentionPolicy) {
        retention.withLockedValue { $0 = policy }
    }

    public func recordPurge(site: String, before: UTCDay?, leaseUntil: Int64) async throws -> SitePurge {
        try await onWriter { w in
            try w.db.writeTransaction { try SQLiteLifecycle.recordPurge(w.db, site: site, before: before, leaseUntil: leaseUntil) }
        }
    }

    public func claimPurges(ids: [Int64], until: Int64, takeExpired: Bool) async throws -> [SitePurge] {
        try await onWriter { w in
            try w.db.writeTransaction {
                let claim = try w.db.statement("""
                    UPDATE site_purges SET lease_until = ?1
                    WHERE done = 0 AND (lease_until < ?2 OR id IN (SELECT value FROM json_each(?3))) RETURNING id
                    """)
                claim.bind(1, until)
                claim.bind(2, takeExpired ? Timestamp.now() : Int64.min)
                claim.bind(3, "[" + ids.map(String.init).joined(separator: ",") + "]")
                var claimed: Set<Int64> = []
                while try claim.step() { claimed.insert(claim.int(0)) }
                w.db.resetAll()
                return try SQLiteLifecycle.purges(w.db, unfinishedOnly: true).filter { claimed.contains($0.id) }
            }
        }
    }

    public func purges(unfinishedOnly: Bool) async throws -> [SitePurge] {
        try await onReader { db in try SQLiteLifecycle.purges(db, unfinishedOnly: unfinishedOnly) }
    }

    public func sweep(after: Int64, span: Int64, rules: SweepRules) async throws -> SweepStep {
        let (rows, next) = try await onReader { db in try SQLiteLifecycle.doomed(db, after: after, span: span, rules: rules) }
        guard !rows.isEmpty else { return SweepStep(next: next, deletedByRetention: 0, deletedByPurges: 0) }
        let retention = self.retention.withLockedValue { $0 }
        let deleted = try await onWriter { w in
            // Rows past their retention reach the report rollups first (a rollup does nothing
            // when it is up to date): deleted before, they would be missing from them for good.
            if let last = rows.last(where: { !$0.byPurge })?.id {
                while try SQLiteWriter.rolledUp(w.db) < last, try w.rollUpReports(retention: retention) > 0 {}
            }
            return try w.db.writeTransaction { try SQLiteLifecycle.delete(w.db, rows) }
        }
        return SweepStep(next: next, deletedByRetention: deleted.retention, deletedByPurges: deleted.purges)
    }

    public func finishPurges(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await onWriter { w in
            try w.db.writeTransaction {
                let done = try w.db.statement("UPDATE site_purges SET done = 1 WHERE id = ?1")
                for id in ids {
                    done.bind(1, id)
                    try done.run()
                }
                try SQLiteLifecycle.sweepNames(w.db)
                try w.db.exec("UPDATE store_generation SET value = value + 1")
            }
        }
    }

    public func reclaimSpace(pages: Int) async throws -> Int {
        try await onWriter { w in
            let free = try w.db.statement("PRAGMA freelist_count")
            let before = try free.step() ? free.int(0) : 0
            w.db.resetAll()
            try w.db.exec("PRAGMA incremental_vacuum(\(max(1, pages)))")
            let after = try free.step() ? free.int(0) : 0
            return Int(before - after)
        }
    }

    public func sitesWithRollups(before: UTCDay) async throws -> [String] {
        try await onReader { db in try SQLiteLifecycle.sitesWithRollups(db, before: before) }
    }

    public func dropRollups(site: String, before: UTCDay) async throws {
        try await onWriter { w in
            try w.db.writeTransaction {
                let find = try w.db.statement("SELECT id FROM sites WHERE name = ?1")
                find.bind(1, site)
                guard try find.step() else { return }
                let id = find.int(0)
                w.db.resetAll()
                try SQLiteLifecycle.dropRollups(w.db, site: id, before: before)
            }
        }
    }

    public func firstRowID() async throws -> Int64 {
        try await onReader { db in
            let s = try db.statement("SELECT coalesce(min(id), 1) - 1 FROM event_rows")
            return try s.step() ? s.int(0) : 0
        }
    }
}

/// The SQLite side of ``LifecycleStore``, on the writer connection.
enum SQLiteLifecycle {
    /// Adds `rows` (negative: deleted) to the stored count of raw rows.
    static func count(_ db: SQLiteConnection, rows: Int) throws {
        guard rows != 0 else { return }
        let s = try db.statement("UPDATE store_counts SET raw_rows = raw_rows + ?1")
        s.bind(1, Int64(rows))
        try s.run()
    }

    static func purges(_ db: SQLiteConnection, unfinishedOnly: Bool) throws -> [SitePurge] {
        let s = try db.statement("SELECT id, site, before_day, at, done, lease_until FROM site_purges\(unfinishedOnly ? " WHERE done = 0" : "") ORDER BY id")
        var out: [SitePurge] = []
        while try s.step() {
            let before: UTCDay? = sqlite3_column_type(s.handle, 2) == SQLITE_NULL ? nil : UTCDay(number: Int32(s.int(2)))
            out.append(SitePurge(id: s.int(0), site: s.text(1), before: before, at: s.int(3), done: s.int(4) != 0, leaseUntil: s.int(5)))
        }
        sqlite3_reset(s.handle)
        return out
    }

    /// The rollup tables keyed by site and day, whose rows a purge deletes.
    static let dailyTables = ["daily_views", "daily_path_views", "daily_user_sets", "daily_visitors"]

    static func recordPurge(_ db: SQLiteConnection, site: String, before: UTCDay?, leaseUntil: Int64) throws -> SitePurge {
        let at = Timestamp.now()
        let add = try db.statement("INSERT INTO site_purges(site, before_day, at, lease_until) VALUES(?1, ?2, ?3, ?4)")
        add.bind(1, site)
        if let before { add.bind(2, Int64(before.number)) } else { sqlite3_bind_null(add.handle, 2) }
        add.bind(3, at)
        add.bind(4, leaseUntil)
        try add.run()
        let id = sqlite3_last_insert_rowid(db.db)
        let find = try db.statement("SELECT id FROM sites WHERE name = ?1")
        find.bind(1, site)
        if try find.step() {
            let siteID = find.int(0)
            sqlite3_reset(find.handle)
            try dropRollups(db, site: siteID, before: before)
        }
        try db.exec("UPDATE store_generation SET value = value + 1")
        return SitePurge(id: id, site: site, before: before, at: at, done: false, leaseUntil: leaseUntil)
    }

    /// Deletes a site's rollups and unique sets: all of them, or the days before `before`.
    static func dropRollups(_ db: SQLiteConnection, site: Int64, before: UTCDay?) throws {
        try SQLiteReports.drop(db, site: site, before: before)
        guard let before else {
            for table in dailyTables + ["site_path_views", "site_user_sets"] {
                let d = try db.statement("DELETE FROM \(table) WHERE site = ?1")
                d.bind(1, site)
                try d.run()
            }
            return
        }
        // All-time path views lose what the deleted days added; the all-time user set becomes
        // the union of the days left.
        let paths = try db.statement("""
            UPDATE site_path_views SET views = views - coalesce((SELECT sum(d.views) FROM daily_path_views d
                WHERE d.site = ?1 AND d.day < ?2 AND d.path = site_path_views.path), 0) WHERE site = ?1
            """)
        paths.bind(1, site); paths.bind(2, Int64(before.number))
        try paths.run()
        let empty = try db.statement("DELETE FROM site_path_views WHERE site = ?1 AND views <= 0")
        empty.bind(1, site)
        try empty.run()
        for table in dailyTables {
            let d = try db.statement("DELETE FROM \(table) WHERE site = ?1 AND day < ?2")
            d.bind(1, site); d.bind(2, Int64(before.number))
            try d.run()
        }
        try SQLiteUserSets(db: db).rebuildSiteSet(site)
    }

    /// Sites with rollups of days before `before`, by name.
    static func sitesWithRollups(_ db: SQLiteConnection, before: UTCDay) throws -> [String] {
        let s = try db.statement("""
            SELECT name FROM sites WHERE id IN (SELECT site FROM daily_views WHERE day < ?1 UNION SELECT site FROM daily_user_sets WHERE day < ?1
                                               UNION SELECT site FROM daily_visitors WHERE day < ?1
                                               UNION SELECT site FROM report_counts WHERE prop = 0 AND level = 1 AND bucket < ?1) ORDER BY id
            """)
        s.bind(1, Int64(before.number))
        var out: [String] = []
        while try s.step() { out.append(s.text(0)) }
        sqlite3_reset(s.handle)
        return out
    }

    /// A raw row a sweep deletes, as it was read.
    struct Doomed: Sendable {
        var id: Int64, site: Int64, timestamp: Int64, ingestedAt: Int64
        var byPurge: Bool
    }

    /// The rows in (`after`, `after` + `span`] that `rules` name, read on the reader
    /// connection (a sweep's reading holds up no load), and where the next step starts.
    static func doomed(_ db: SQLiteConnection, after: Int64, span: Int64, rules: SweepRules) throws -> (rows: [Doomed], next: Int64?) {
        // Rules by site id: the rows carry ids, and a site's rules are worked out once.
        var bySite: [Int64: (firstKept: Int64?, purges: [SitePurge])] = [:]
        let names = try db.statement("SELECT id, name FROM sites")
        while try names.step() {
            let name = names.text(1)
            let first = rules.retention.firstKeptDay(site: name, today: rules.today).map { UTCDay(number: $0).start }
            let purges = rules.purges.filter { $0.site.utf8Equals(name) }
            if first != nil || !purges.isEmpty { bySite[names.int(0)] = (first, purges) }
        }
        sqlite3_reset(names.handle)
        let last = try db.statement("SELECT coalesce(max(id), 0) FROM event_rows")
        let maxID = try last.step() ? last.int(0) : 0
        sqlite3_reset(last.handle)
        let hi = after + span
        let next = hi >= maxID ? nil : hi
        guard !bySite.isEmpty else { return ([], next) }
        let scan = try db.statement("SELECT id, site, event_ts, ingested_at FROM event_rows WHERE id > ?1 AND id <= ?2")
        scan.bind(1, after); scan.bind(2, hi)
        var rows: [Doomed] = []
        while try scan.step() {
            guard let r = bySite[scan.int(1)] else { continue }
            let ts = scan.int(2), ingested = scan.int(3)
            let byPurge = r.purges.contains { $0.covers(timestamp: ts, cutAt: ingested) }
            if byPurge || r.firstKept.map({ ts < $0 }) == true {
                rows.append(Doomed(id: scan.int(0), site: scan.int(1), timestamp: ts, ingestedAt: ingested, byPurge: byPurge))
            }
        }
        sqlite3_reset(scan.handle)
        return (rows, next)
    }

    /// Deletes `rows` on the writer, each only if it is still the row that was read (an id is
    /// reused after the newest rows are deleted), with its details, and then the
    /// ``SQLiteSchema/spanTables`` spans of their sites' hours that hold none of that site's
    /// rows of the hour any more (so retention keeps `row_spans` bounded too); returns the
    /// deleted counts.
    static func delete(_ db: SQLiteConnection, _ rows: [Doomed]) throws -> (retention: Int, purges: Int) {
        let row = try db.statement("DELETE FROM event_rows WHERE id = ?1 AND site = ?2 AND event_ts = ?3 AND ingested_at = ?4")
        let details = try db.statement("DELETE FROM event_details WHERE id = ?1")
        // A row past its retention that the report rollups have not taken in (a rollup that
        // failed) stays for the next sweep: deleted now, it would be missing from them for good.
        let rolledUp = try SQLiteWriter.rolledUp(db)
        var out = (retention: 0, purges: 0)
        var hours = IDPairTable()
        var (lo, hi) = (Int64.max, Int64.min)
        for r in rows where r.byPurge || r.id <= rolledUp {
            row.bind(1, r.id); row.bind(2, r.site); row.bind(3, r.timestamp); row.bind(4, r.ingestedAt)
            try row.run()
            guard sqlite3_changes(db.db) == 1 else { continue }
            details.bind(1, r.id)
            try details.run()
            if r.byPurge { out.purges += 1 } else { out.retention += 1 }
            hours.add(UInt64(r.site), UInt64(r.timestamp / SQLiteSchema.microsPerHour))
            (lo, hi) = (min(lo, r.id), max(hi, r.id))
        }
        // Only the spans these deletions could have emptied: those over the ids deleted.
        let emptySpans = try db.statement("""
            DELETE FROM row_spans WHERE site = ?1 AND hour = ?2 AND last >= ?5 AND first <= ?6 AND NOT EXISTS (
                SELECT 1 FROM event_rows e WHERE e.id BETWEEN row_spans.first AND row_spans.last AND e.site = ?1
                    AND e.event_ts >= ?3 AND e.event_ts < ?4)
            """)
        for (site, hour) in hours.sortedPairs() {
            let start = Int64(hour) * SQLiteSchema.microsPerHour
            emptySpans.bind(1, Int64(site)); emptySpans.bind(2, Int64(hour))
            emptySpans.bind(3, start); emptySpans.bind(4, start + SQLiteSchema.microsPerHour)
            emptySpans.bind(5, lo); emptySpans.bind(6, hi)
            try emptySpans.run()
        }
        try count(db, rows: -(out.retention + out.purges))
        return out
    }

    /// Deletes every interned name no row, rollup or unique set refers to. Reads all of them
    /// in this transaction (a scan of 10M rows: 1.7 s here, see the README), so no load can
    /// start to use a name between the check and the delete.
    static func sweepNames(_ db: SQLiteConnection) throws {
        func maxID(_ table: String) throws -> Int {
            let s = try db.statement("SELECT coalesce(max(id), 0) FROM \(table)")
            defer { sqlite3_reset(s.handle) }
            return Int(try s.step() ? s.int(0) : 0)
        }
        var refs = Refs(sites: Bits(try maxID("sites")), types: Bits(try maxID("event_types")), paths: Bits(try maxID("paths")),
                        users: Bits(try maxID("users")), labels: Bits(try maxID("labels")))
        func mark(_ sql: String, _ columns: [(Int32, WritableKeyPath<Refs, Bits>)]) throws {
            let s = try db.statement(sql)
            while try s.step() {
                for (column, bits) in columns where sqlite3_column_type(s.handle, column) != SQLITE_NULL {
                    refs[keyPath: bits].insert(Int(s.int(column)))
                }
            }
            sqlite3_reset(s.handle)
        }
        try mark("SELECT site, type, path, user FROM event_rows", [(0, \.sites), (1, \.types), (2, \.paths), (3, \.users)])
        try mark("SELECT referrer, utm_source, utm_medium, utm_campaign, browser, os FROM event_details",
                 (0..<6).map { (Int32($0), \Refs.labels) })
        try mark("SELECT site FROM daily_views", [(0, \.sites)])
        try mark("SELECT site, path FROM daily_path_views", [(0, \.sites), (1, \.paths)])
        try mark("SELECT site, path FROM site_path_views", [(0, \.sites), (1, \.paths)])
        try mark("SELECT site FROM daily_visitors", [(0, \.sites)])
        // Every value of the report rollups has day rows; every member is in a month set.
        for (prop, names) in [(ReportProp.of(.path), \Refs.paths), (ReportProp.of(.eventType), \Refs.types)]
            + [BreakdownProperty.referrer, .browser, .os, .utmSource, .utmMedium, .utmCampaign].map({ (ReportProp.of($0), \Refs.labels) }) {
            try mark("SELECT site, value FROM report_counts WHERE prop = \(prop)", [(0, \.sites), (1, names)])
        }
        var anonymous = Bits(try maxID("anon_visitors"))
        let sets = try db.statement("SELECT site, chunk, members, bits FROM report_sets WHERE prop = 0 AND level = 2")
        while try sets.step() {
            refs.sites.insert(Int(sets.int(0)))
            let base = Int(sets.int(1)) << UserChunk.shift
            for m in try UserChunk.members(sets.blob(3), count: Int(sets.int(2))) {
                let member = base | Int(m)
                if member & 1 == 0 { refs.users.insert(member / 2) } else { anonymous.insert(member / 2) }
            }
        }
        sqlite3_reset(sets.handle)
        for table in ["daily_user_sets", "site_user_sets"] {
            let s = try db.statement("SELECT site, chunk, members, bits FROM \(table)")
            while try s.step() {
                refs.sites.insert(Int(s.int(0)))
                let base = Int(s.int(1)) << UserChunk.shift
                for m in try UserChunk.members(s.blob(3), count: Int(s.int(2))) { refs.users.insert(base | Int(m)) }
            }
            sqlite3_reset(s.handle)
        }
        for (table, used) in [("sites", refs.sites), ("event_types", refs.types), ("paths", refs.paths), ("users", refs.users), ("labels", refs.labels),
                              ("anon_visitors", anonymous)] {
            let all = try db.statement("SELECT id FROM \(table)")
            var unused: [Int64] = []
            while try all.step() {
                if !used.contains(Int(all.int(0))) { unused.append(all.int(0)) }
            }
            sqlite3_reset(all.handle)
            let drop = try db.statement("DELETE FROM \(table) WHERE id = ?1")
            for id in unused {
                drop.bind(1, id)
                try drop.run()
            }
        }
    }

    private struct Refs {
        var sites, types, paths, users, labels: Bits
    }

    /// A set of ids from 0 to a maximum known in advance: a bit each.
    struct Bits {
        private var words: [UInt64]
        init(_ maxID: Int) { words = Array(repeating: 0, count: maxID / 64 + 1) }
        mutating func insert(_ id: Int) {
            guard id >= 0, id / 64 < words.count else { return }
            words[id / 64] |= 1 << UInt64(id % 64)
        }
        func contains(_ id: Int) -> Bool {
            // Ids past the maximum read at the start came after it: in use.
            guard id >= 0, id / 64 < words.count else { return true }
            return words[id / 64] & (1 << UInt64(id % 64)) != 0
        }
    }
}
