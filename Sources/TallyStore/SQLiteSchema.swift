import CSQLite

/// The SQLite schema (version 8) and the migrations from versions 1 to 7.
///
/// Names (sites, event types, paths, users) are interned once in dictionary tables and every
/// row and rollup key refers to them by integer id: an integer row is a third of the bytes of
/// a text row, and integer keys compare with one instruction, so appends and rollup upserts
/// cost far less than with text. The `events` view gives back the text columns of version 1,
/// so `SELECT … FROM events` keeps working for your own queries.
enum SQLiteSchema {
    static let version = 8

    static let tables = """
        CREATE TABLE IF NOT EXISTS sites(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS event_types(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS paths(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS labels(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS event_rows\(eventRowsColumns);
        CREATE TABLE IF NOT EXISTS loaded_batches(
            batch_id TEXT PRIMARY KEY, event_count INTEGER NOT NULL, loaded_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS daily_views(
            site INTEGER NOT NULL, day INTEGER NOT NULL, views INTEGER NOT NULL,
            PRIMARY KEY(site, day)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS daily_path_views(
            site INTEGER NOT NULL, day INTEGER NOT NULL, path INTEGER NOT NULL, views INTEGER NOT NULL,
            PRIMARY KEY(site, day, path)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS site_path_views(
            site INTEGER NOT NULL, path INTEGER NOT NULL, views INTEGER NOT NULL,
            PRIMARY KEY(site, path)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS daily_user_sets(
            site INTEGER NOT NULL, day INTEGER NOT NULL, chunk INTEGER NOT NULL,
            members INTEGER NOT NULL, bits BLOB NOT NULL,
            PRIMARY KEY(site, day, chunk)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS site_user_sets(
            site INTEGER NOT NULL, chunk INTEGER NOT NULL,
            members INTEGER NOT NULL, bits BLOB NOT NULL,
            PRIMARY KEY(site, chunk)) WITHOUT ROWID;
        \(v3Tables)
        CREATE VIEW IF NOT EXISTS events AS \(eventsView);
        """

    /// The site registry (``SiteRecord``), in every version from 4 on: new tables only, which
    /// older readers of a version-4 file ignore. Origins are one per line (an origin has no
    /// line break); keys are stored as SHA-256 hashes; `registry_version` has one row, advanced
    /// by every change, which running collectors poll.
    static let registryTables = """
        CREATE TABLE IF NOT EXISTS registered_sites(
            id TEXT PRIMARY KEY, origins TEXT NOT NULL, rate INTEGER,
            created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, raw_retention_days INTEGER) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS site_keys(
            id TEXT PRIMARY KEY, site_id TEXT NOT NULL, kind TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS site_keys_by_site ON site_keys(site_id);
        CREATE TABLE IF NOT EXISTS registry_version(one INTEGER PRIMARY KEY CHECK(one = 1), version INTEGER NOT NULL);
        INSERT OR IGNORE INTO registry_version(one, version) VALUES(1, 0);
        """

    /// The data lifecycle, from version 5 on (new tables only, so version 4 upgrades by creating
    /// them): purges of sites' data (kept after they finish: a batch cut before one may still be
    /// spooled somewhere); a generation every purge and name sweep advances, which a writer
    /// reads at the start of each load to know that its cached names and purges are stale; and
    /// the number of raw rows (`max(id)` counted them while none was ever deleted).
    static let lifecycleTables = """
        CREATE TABLE IF NOT EXISTS site_purges(
            id INTEGER PRIMARY KEY, site TEXT NOT NULL, before_day INTEGER, at INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0,
            lease_until INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS store_generation(one INTEGER PRIMARY KEY CHECK(one = 1), value INTEGER NOT NULL);
        INSERT OR IGNORE INTO store_generation(one, value) VALUES(1, 0);
        CREATE TABLE IF NOT EXISTS store_counts(one INTEGER PRIMARY KEY CHECK(one = 1), raw_rows INTEGER NOT NULL);
        """

    /// Where the raw rows of each site and UTC hour of event time are (per site from version
    /// 8; per hour in versions 6 and 7): `[first, last]` id ranges that hold every row of the
    /// site's hour, among few others'. Reports and exports over a range read only these ids
    /// instead of the whole table, without an index on `event_rows` (one costs every append a
    /// second B-tree insert: 775k rows/s became 316k), and only the site's rows with few
    /// others': a load appends its rows grouped by hour and site. A sweep (purges, retention)
    /// deletes the spans it empties; rows deleted otherwise leave theirs behind: a span is a
    /// bound, never a promise that rows are there.
    static let spanTables = """
        CREATE TABLE IF NOT EXISTS row_spans(
            site INTEGER NOT NULL, hour INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
            PRIMARY KEY(site, hour, first)) WITHOUT ROWID;
        """

    /// The reporting API's rollups (version 7), kept by ``SQLiteReportRollup`` behind the
    /// loads: every row with an id up to `report_state.rolled_up` is in them, and a report
    /// adds the rows above it from `event_rows` (see ``SQLiteReports``).
    ///
    /// - `report_counts`: views and events per site and UTC hour, day and month
    ///   (``ReportLevel``) for every event (property 0, value 0), and per day for each value
    ///   of each property (``ReportProp``). On the day and month rows of every event,
    ///   `visitors` and `users` are the distinct counts of the row's set (below), so a single
    ///   day or month needs no set read; rows whose members are lists keep 0 there.
    /// - Distinct visitors of the same keys, as member ids: a user is member `2 × users.id`,
    ///   an anonymous visitor `2 × anon_visitors.id + 1`, so the even members are the users.
    ///   Days and months of every event in `report_sets`, as chunks in the ``UserChunk``
    ///   format; hours of every event and days of each property value in `report_lists` as
    ///   sorted ``MemberList``s (their members are spread over the whole id range, so chunks
    ///   would hold one or two each), in parts a rollup adds and merges (``ListParts``).
    /// - `anon_visitors`: the anonymous visitor ids (daily-salted hashes) as small integers.
    static let reportTables = """
        CREATE TABLE IF NOT EXISTS anon_visitors(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL UNIQUE);
        CREATE TABLE IF NOT EXISTS report_counts(
            site INTEGER NOT NULL, prop INTEGER NOT NULL, level INTEGER NOT NULL, bucket INTEGER NOT NULL, value INTEGER NOT NULL,
            views INTEGER NOT NULL, events INTEGER NOT NULL, visitors INTEGER NOT NULL, users INTEGER NOT NULL,
            PRIMARY KEY(site, prop, level, bucket, value)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS report_sets(
            site INTEGER NOT NULL, prop INTEGER NOT NULL, level INTEGER NOT NULL, value INTEGER NOT NULL, bucket INTEGER NOT NULL,
            chunk INTEGER NOT NULL, members INTEGER NOT NULL, bits BLOB NOT NULL,
            PRIMARY KEY(site, prop, level, value, bucket, chunk)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS report_lists\(reportListsColumns);
        CREATE TABLE IF NOT EXISTS report_state(one INTEGER PRIMARY KEY CHECK(one = 1), rolled_up INTEGER NOT NULL);
        INSERT OR IGNORE INTO report_state(one, rolled_up) VALUES(1, 0);
        """

    static let reportListsColumns = """
        (site INTEGER NOT NULL, prop INTEGER NOT NULL, level INTEGER NOT NULL, value INTEGER NOT NULL, bucket INTEGER NOT NULL,
            part INTEGER NOT NULL, members INTEGER NOT NULL, list BLOB NOT NULL,
            PRIMARY KEY(site, prop, level, value, bucket, part)) WITHOUT ROWID
        """

    /// Version 6 → 7: a list key's members in parts (``ListParts``); a version 6 list is part 0.
    /// The distinct counts its list keys' counts rows had are zeroed: rollups no longer keep
    /// them, and a stale count is a trap for any later reader.
    static let listPartsFromV6 = """
        CREATE TABLE report_lists_v7\(reportListsColumns);
        INSERT INTO report_lists_v7(site, prop, level, value, bucket, part, members, list)
            SELECT site, prop, level, value, bucket, 0, members, list FROM report_lists;
        DROP TABLE report_lists;
        ALTER TABLE report_lists_v7 RENAME TO report_lists;
        UPDATE report_counts SET visitors = 0, users = 0 WHERE prop <> 0 OR level NOT IN (1, 2);
        """

    /// The id ranges, ascending and merged, that hold every row with an event time in `span`,
    /// cut to `ids`.
    static func spanRanges(_ db: SQLiteConnection, site: Int64, _ span: TimeSpan, ids: ClosedRange<Int64>) throws -> [ClosedRange<Int64>] {
        let s = try db.statement("SELECT first, last FROM row_spans WHERE site = ?1 AND hour BETWEEN ?2 AND ?3 AND last >= ?4")
        s.bind(1, site)
        s.bind(2, span.start / microsPerHour)
        s.bind(3, (span.end - 1) / microsPerHour)
        s.bind(4, ids.lowerBound)
        var ranges: [(Int64, Int64)] = []
        while try s.step() {
            let r = (max(s.int(0), ids.lowerBound), min(s.int(1), ids.upperBound))
            if r.0 <= r.1 { ranges.append(r) }
        }
        sqlite3_reset(s.handle)
        ranges.sort { $0.0 < $1.0 }
        var merged: [ClosedRange<Int64>] = []
        for (a, b) in ranges {
            if let m = merged.last, a <= m.upperBound + 1 { merged[merged.count - 1] = m.lowerBound...max(m.upperBound, b) } else { merged.append(a...b) }
        }
        return merged
    }

    /// Versions 1 to 5 → 8: one span per site and hour from the rows there are (one pass
    /// over them).
    static let spansFromRows = """
        INSERT INTO row_spans(site, hour, first, last)
            SELECT site, event_ts / \(microsPerHour), min(id), max(id) FROM event_rows GROUP BY 1, 2;
        """

    /// Versions 6 and 7 → 8: each hour's span split by site, over the rows it holds (each row
    /// read about once), so spans that were tight stay tight; a site's rows in a span that
    /// also holds other sites' rows are bounded by their first and last id.
    static let spansFromHourSpans = """
        ALTER TABLE row_spans RENAME TO v7_row_spans;
        \(spanTables)
        INSERT INTO row_spans(site, hour, first, last)
            SELECT e.site, s.hour, min(e.id), max(e.id) FROM v7_row_spans s JOIN event_rows e ON e.id BETWEEN s.first AND s.last
            WHERE e.event_ts / \(microsPerHour) = s.hour GROUP BY s.hour, s.first, e.site;
        DROP TABLE v7_row_spans;
        """

    static let microsPerHour: Int64 = 3_600_000_000

    /// The raw rows: interned names, the event's time and the batch's.
    static let eventRowsColumns = """
        (id INTEGER PRIMARY KEY, site INTEGER NOT NULL, type INTEGER NOT NULL, path INTEGER, user INTEGER,
            event_ts INTEGER NOT NULL, ingested_at INTEGER NOT NULL)
        """

    /// What an event's sender told or the server derived (version 3, beside the rows since
    /// version 4): where the visitor came from and what they used, the visitor id and the bot
    /// flag. Names (referrer host, UTM values, browser, OS) are interned in `labels`.
    static let detailColumns = [
        "referrer INTEGER", "utm_source INTEGER", "utm_medium INTEGER", "utm_campaign INTEGER",
        "device INTEGER", "browser INTEGER", "os INTEGER", "visitor INTEGER", "bot INTEGER NOT NULL DEFAULT 0",
    ]
    /// Their names, in that order, for column lists.
    static let detailNames = detailColumns.map { $0.prefix { $0 != " " } }.joined(separator: ", ")

    /// `event_details` holds those columns for the rows that have any, under the row's id.
    /// As columns of `event_rows` they would be NULL in most rows, and SQLite stores a NULL
    /// column too: nine of them made every row about a quarter larger and appends as much
    /// slower (measured: 1M rows, 37.5 vs 48.2 MB, 0.82 vs 1.05 s). Distinct anonymous
    /// visitors per site and day (bots excluded; users are counted by the user sets), exact
    /// over any range by `count(DISTINCT visitor)`; and the daily salts of anonymous ids.
    static let v3Tables = """
        CREATE TABLE IF NOT EXISTS event_details(
            id INTEGER PRIMARY KEY\(detailColumns.map { ", " + $0 }.joined()));
        CREATE TABLE IF NOT EXISTS daily_visitors(
            site INTEGER NOT NULL, day INTEGER NOT NULL, visitor INTEGER NOT NULL,
            PRIMARY KEY(site, day, visitor)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS visitor_salts(day INTEGER PRIMARY KEY, salt BLOB NOT NULL);
        """

    /// A row of `event_rows e` that counts: not flagged as a bot.
    static let counts = "NOT EXISTS (SELECT 1 FROM event_details d WHERE d.id = e.id AND d.bot <> 0)"

    /// Text columns for your own queries (`device`: desktop, mobile or tablet; `bot`: 0 or 1).
    static let eventsView = """
        SELECT e.id, s.name AS site_id, t.name AS event_type, p.name AS path, u.name AS user_id,
                   e.event_ts, e.ingested_at, r.name AS referrer, us.name AS utm_source, um.name AS utm_medium,
                   uc.name AS utm_campaign, CASE d.device WHEN 1 THEN 'desktop' WHEN 2 THEN 'mobile' WHEN 3 THEN 'tablet' END AS device,
                   b.name AS browser, o.name AS os, d.visitor, coalesce(d.bot, 0) AS bot
            FROM event_rows e
            JOIN sites s ON s.id = e.site
        \(nameJoins)
        """

    /// The names of a row (`event_rows e`) and its details: the `events` view's joins, which
    /// export reads too.
    static let nameJoins = """
            JOIN event_types t ON t.id = e.type
            LEFT JOIN paths p ON p.id = e.path
            LEFT JOIN users u ON u.id = e.user
            LEFT JOIN event_details d ON d.id = e.id
            LEFT JOIN labels r ON r.id = d.referrer
            LEFT JOIN labels us ON us.id = d.utm_source
            LEFT JOIN labels um ON um.id = d.utm_medium
            LEFT JOIN labels uc ON uc.id = d.utm_campaign
            LEFT JOIN labels b ON b.id = d.browser
            LEFT JOIN labels o ON o.id = d.os
        """

    /// Version 2 → 4: new tables and the wider view (old rows: no details, so no visitors).
    static let migrateFromV2 = """
        CREATE TABLE IF NOT EXISTS labels(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        \(v3Tables)
        DROP VIEW IF EXISTS events;
        CREATE VIEW events AS \(eventsView);
        """

    /// Version 3 → 4: the detail columns move from `event_rows` to `event_details` (only the
    /// rows that have any), and `event_rows` is rebuilt as narrow as in version 2, in one pass
    /// (nine `DROP COLUMN`s would rewrite it nine times). The rename runs in legacy mode
    /// (``prepare(_:)``), so views of your own over `events` are neither rewritten nor checked
    /// while `events` is briefly gone; indexes of your own on `event_rows` go with the old table.
    static let migrateFromV3 = """
        \(v3Tables)
        INSERT INTO event_details(id, \(detailNames)) SELECT id, \(detailNames) FROM event_rows
            WHERE referrer IS NOT NULL OR utm_source IS NOT NULL OR utm_medium IS NOT NULL OR utm_campaign IS NOT NULL
               OR device IS NOT NULL OR browser IS NOT NULL OR os IS NOT NULL OR visitor IS NOT NULL OR bot <> 0;
        CREATE TABLE v4_event_rows\(eventRowsColumns);
        INSERT INTO v4_event_rows SELECT id, site, type, path, user, event_ts, ingested_at FROM event_rows ORDER BY id;
        DROP VIEW IF EXISTS events;
        DROP TABLE event_rows;
        ALTER TABLE v4_event_rows RENAME TO event_rows;
        CREATE VIEW events AS \(eventsView);
        """

    static let microsPerDay: Int64 = 86_400_000_000

    /// Rebuilds the view rollups from `event_rows`: the definition the incremental upserts must
    /// agree with (used by the migration, and by tests as the oracle). The user sets are
    /// rebuilt by ``SQLiteUserSets/rebuild()``.
    static let rebuildViewRollups = """
        DELETE FROM daily_views; DELETE FROM daily_path_views; DELETE FROM site_path_views;
        INSERT INTO daily_views(site, day, views)
            SELECT site, event_ts / \(microsPerDay), count(*) FROM event_rows e
            WHERE type = (SELECT id FROM event_types WHERE name = 'page_view') AND \(counts) GROUP BY 1, 2;
        INSERT INTO daily_path_views(site, day, path, views)
            SELECT site, event_ts / \(microsPerDay), path, count(*) FROM event_rows e
            WHERE type = (SELECT id FROM event_types WHERE name = 'page_view') AND \(counts) AND path IS NOT NULL GROUP BY 1, 2, 3;
        INSERT INTO site_path_views(site, path, views)
            SELECT site, path, count(*) FROM event_rows e
            WHERE type = (SELECT id FROM event_types WHERE name = 'page_view') AND \(counts) AND path IS NOT NULL GROUP BY 1, 2;
        DELETE FROM daily_visitors;
        INSERT INTO daily_visitors(site, day, visitor)
            SELECT DISTINCT e.site, e.event_ts / \(microsPerDay), d.visitor FROM event_rows e JOIN event_details d ON d.id = e.id
            WHERE d.visitor IS NOT NULL AND d.bot = 0;
        """

    /// Version 1 kept text in every row and rollup key. Its raw `events` rows are interned into
    /// the version 2 tables and the rollups are rebuilt from them (rollups are a function of the
    /// raw rows); `loaded_batches` is kept as it is, so exactly-once holds across the upgrade.
    static let migrateFromV1 = """
        ALTER TABLE events RENAME TO v1_events;
        DROP TABLE daily_views; DROP TABLE daily_path_views; DROP TABLE site_path_views;
        DROP TABLE daily_users; DROP TABLE site_users;
        \(tables)
        INSERT INTO sites(name) SELECT DISTINCT site_id FROM v1_events;
        INSERT INTO event_types(name) SELECT DISTINCT event_type FROM v1_events;
        INSERT INTO paths(name) SELECT DISTINCT path FROM v1_events WHERE path IS NOT NULL;
        INSERT INTO users(name) SELECT DISTINCT user_id FROM v1_events WHERE user_id IS NOT NULL;
        INSERT INTO event_rows(id, site, type, path, user, event_ts, ingested_at)
            SELECT e.id, s.id, t.id, p.id, u.id, e.event_ts, e.ingested_at FROM v1_events e
            JOIN sites s ON s.name = e.site_id
            JOIN event_types t ON t.name = e.event_type
            LEFT JOIN paths p ON p.name = e.path
            LEFT JOIN users u ON u.name = e.user_id
            ORDER BY e.id;
        DROP TABLE v1_events;
        \(rebuildViewRollups)
        """

    /// Creates the schema, or upgrades an older one, inside one write transaction.
    static func prepare(_ db: SQLiteConnection) throws {
        try db.exec("BEGIN IMMEDIATE")
        do {
            let current = try db.statement("PRAGMA user_version")
            let version = try current.step() ? current.int(0) : 0
            db.resetAll()
            if version == 0, try isVersion1(db) {
                try db.exec(migrateFromV1)
                try SQLiteUserSets(db: db).rebuild()
            } else if version == 2 {
                try db.exec(migrateFromV2)
            } else if version == 3 {
                try db.exec("PRAGMA legacy_alter_table = ON")
                defer { try? db.exec("PRAGMA legacy_alter_table = OFF") }
                try db.exec(migrateFromV3)
            } else if version > Self.version {
                throw StoreError("the SQLite file has schema version \(version); this tally knows up to \(Self.version)")
            } else {
                try db.exec(tables)
            }
            try db.exec(registryTables)
            try db.exec(lifecycleTables)
            // Before version 6 there were no spans, and before version 8 they were per hour.
            let spans = try db.statement("""
                SELECT (SELECT 1 FROM sqlite_master WHERE name = 'row_spans'), (SELECT 1 FROM pragma_table_info('row_spans') WHERE name = 'site')
                """)
            let (hasSpans, siteSpans) = try spans.step() ? (spans.int(0) == 1, spans.int(1) == 1) : (false, false)
            db.resetAll()
            if !hasSpans {
                try db.exec(spanTables)
                try db.exec(spansFromRows)
            } else if !siteSpans {
                try db.exec(spansFromHourSpans)
            }
            // Version 6's lists had no parts.
            let parts = try db.statement("SELECT (SELECT 1 FROM sqlite_master WHERE name = 'report_lists'), (SELECT 1 FROM pragma_table_info('report_lists') WHERE name = 'part')")
            let v6Lists = try parts.step() && parts.int(0) == 1 && parts.int(1) != 1
            db.resetAll()
            if v6Lists { try db.exec(listPartsFromV6) }
            // The report rollups start empty: rows already there are rolled up behind the
            // loads, and reports read them from event_rows meanwhile.
            try db.exec(reportTables)
            // Version 4's registry had no retention column.
            let columns = try db.statement("SELECT 1 FROM pragma_table_info('registered_sites') WHERE name = 'raw_retention_days'")
            let hasRetention = try columns.step()
            db.resetAll()
            if !hasRetention { try db.exec("ALTER TABLE registered_sites ADD COLUMN raw_retention_days INTEGER") }
            // The raw row count, kept by loads and sweeps from version 5 on (counted once here).
            let counted = try db.statement("SELECT 1 FROM store_counts")
            let hasCount = try counted.step()
            db.resetAll()
            if !hasCount { try db.exec("INSERT INTO store_counts(one, raw_rows) SELECT 1, count(*) FROM event_rows") }
            try db.exec("PRAGMA user_version = \(Self.version)")
            try db.exec("COMMIT")
        } catch {
            db.resetAll()
            try? db.exec("ROLLBACK")
            throw error
        }
    }

    /// Version 1 had no user_version and a table (not a view) named `events`.
    private static func isVersion1(_ db: SQLiteConnection) throws -> Bool {
        let s = try db.statement("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'")
        defer { db.resetAll() }
        return try s.step()
    }
}
