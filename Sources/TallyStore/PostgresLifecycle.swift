import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import TallyCore

/// What loads apply, as of the store generation last read: the purges, and this collector's
/// retention. Each collector sharing the database keeps its own copy.
struct PostgresLoadState: Sendable {
    var generation: Int64 = -1
    var purges: [SitePurge] = []
    var retention = RetentionPolicy()
}

extension PostgresStore: LifecycleStore {
    /// µs since the epoch as `timestamptz`, exactly (a `Date` parameter would round).
    static let micros = "('epoch'::timestamptz + interval '1 microsecond' *"

    public func setRetention(_ policy: RetentionPolicy) {
        loadState.withLockedValue { $0.retention = policy }
    }

    /// The filter for a load, inside its transaction, after its `INSERT INTO loaded_batches`:
    /// a purge holds a SHARE lock on that table while it records itself, so a load that got
    /// past the insert sees every purge committed before it (read committed: each statement
    /// reads the latest commits). A moved generation also means rollup rows this collector
    /// remembers as stored may have been deleted.
    func loadFilter(_ conn: PostgresConnection) async throws -> LoadFilter {
        let logger = self.logger
        var generation: Int64 = 0
        for try await g in try await conn.query("SELECT value FROM store_generation", logger: logger).decode(Int64.self) { generation = g }
        let state = loadState.withLockedValue { $0 }
        if state.generation == generation { return LoadFilter(purges: state.purges, retention: state.retention) }
        let purges = try await Self.purges(conn, unfinishedOnly: false, logger: logger)
        knownUsers.withLockedValue { $0 = KnownUserRows() }
        loadState.withLockedValue {
            $0.generation = generation
            $0.purges = purges
        }
        return LoadFilter(purges: purges, retention: state.retention)
    }

    static func purges(_ conn: PostgresConnection, unfinishedOnly: Bool, logger: Logger) async throws -> [SitePurge] {
        var out: [SitePurge] = []
        let rows = try await conn.query(PostgresQuery(unsafeSQL: """
            SELECT id, site_id, (before_day - DATE '1970-01-01')::int, at, done, lease_until FROM site_purges
            \(unfinishedOnly ? "WHERE NOT done" : "") ORDER BY id
            """), logger: logger)
        for try await (id, site, before, at, done, lease) in rows.decode((Int64, String, Int32?, Int64, Bool, Int64).self) {
            out.append(SitePurge(id: id, site: PostgresName.name(site), before: before.map(UTCDay.init(number:)), at: at, done: done, leaseUntil: lease))
        }
        return out
    }

    public func claimPurges(ids: [Int64], until: Int64, takeExpired: Bool) async throws -> [SitePurge] {
        try await preparedOnce()
        let logger = self.logger
        return try await bounded("purges") { client in
            try await client.withTransaction(logger: logger) { conn in
                var claimed: Set<Int64> = []
                for try await id in try await conn.query("""
                    UPDATE site_purges SET lease_until = \(until)
                    WHERE NOT done AND (lease_until < \(takeExpired ? Timestamp.now() : Int64.min) OR id = ANY(\(ids))) RETURNING id
                    """, logger: logger).decode(Int64.self) { claimed.insert(id) }
                return try await Self.purges(conn, unfinishedOnly: true, logger: logger).filter { claimed.contains($0.id) }
            }
        }
    }

    public func recordPurge(site: String, before: UTCDay?, leaseUntil: Int64) async throws -> SitePurge {
        try await preparedOnce()
        let logger = self.logger
        let stored = PostgresName.stored(site)
        // Rollups of a large site are many rows: the bound is a minute, not one call's.
        return try await bounded("purge", timeout: .seconds(60)) { client in
            try await client.withTransaction(logger: logger) { conn in
                // Waits for loads in flight and holds new ones until this commits (see loadFilter).
                try await conn.query("LOCK TABLE loaded_batches IN SHARE MODE", logger: logger)
                let at = Timestamp.now()
                let day = before.map { $0.number }
                var id: Int64 = 0
                for try await v in try await conn.query("""
                    INSERT INTO site_purges(site_id, before_day, at, lease_until)
                    VALUES(\(stored), DATE '1970-01-01' + \(day)::int, \(at), \(leaseUntil)) RETURNING id
                    """, logger: logger).decode(Int64.self) { id = v }
                try await Self.dropRollups(conn, site: stored, before: day, logger: logger)
                return SitePurge(id: id, site: site, before: before, at: at, done: false, leaseUntil: leaseUntil)
            }
        }
    }

    /// Advances the generation and deletes a site's rollups (all, or of the days before
    /// `before`), inside a transaction that holds the SHARE lock on `loaded_batches`: no load
    /// upserts beside it, and every collector forgets the user rows it remembers as stored.
    static func dropRollups(_ conn: PostgresConnection, site stored: String, before day: Int32?, logger: Logger) async throws {
        // First: the one row every rollup deletion updates makes them wait for each other,
        // whatever rows each goes on to lock (two of them could otherwise deadlock).
        try await conn.query("UPDATE store_generation SET value = value + 1", logger: logger)
        if let day {
            // All-time path views lose what the deleted days added; all-time users are those of the days left.
            try await conn.query("""
                UPDATE site_path_views s SET views = s.views - d.views
                FROM (SELECT path, sum(views) AS views FROM daily_path_views
                      WHERE site_id = \(stored) AND day < DATE '1970-01-01' + \(day) GROUP BY path) d
                WHERE s.site_id = \(stored) AND s.path = d.path
                """, logger: logger)
            try await conn.query("DELETE FROM site_path_views WHERE site_id = \(stored) AND views <= 0", logger: logger)
            for table in ["daily_views", "daily_path_views", "daily_users", "daily_visitors"] {
                try await conn.query(PostgresQuery(unsafeSQL: "DELETE FROM \(table) WHERE site_id = $1 AND day < DATE '1970-01-01' + $2::int",
                                                   binds: Self.binds(stored, day)), logger: logger)
            }
            try await conn.query("""
                DELETE FROM site_users s WHERE s.site_id = \(stored)
                AND NOT EXISTS (SELECT 1 FROM daily_users d WHERE d.site_id = \(stored) AND d.user_id = s.user_id)
                """, logger: logger)
        } else {
            for table in ["daily_views", "daily_path_views", "site_path_views", "daily_users", "site_users", "daily_visitors"] {
                try await conn.query(PostgresQuery(unsafeSQL: "DELETE FROM \(table) WHERE site_id = $1", binds: Self.binds(stored)), logger: logger)
            }
        }
    }

    public func sitesWithRollups(before: UTCDay) async throws -> [String] {
        try await preparedOnce()
        let logger = self.logger
        let day = before.number
        return try await bounded("query") { client in
            var out: [String] = []
            for try await site in try await client.query("""
                SELECT site_id FROM daily_views WHERE day < DATE '1970-01-01' + \(day)::int
                UNION SELECT site_id FROM daily_users WHERE day < DATE '1970-01-01' + \(day)::int
                UNION SELECT site_id FROM daily_visitors WHERE day < DATE '1970-01-01' + \(day)::int
                ORDER BY 1
                """, logger: logger).decode(String.self) { out.append(PostgresName.name(site)) }
            return out
        }
    }

    public func dropRollups(site: String, before: UTCDay) async throws {
        let logger = self.logger
        let stored = PostgresName.stored(site)
        try await bounded("rollup retention", timeout: .seconds(60)) { client in
            try await client.withTransaction(logger: logger) { conn in
                try await conn.query("LOCK TABLE loaded_batches IN SHARE MODE", logger: logger)
                try await Self.dropRollups(conn, site: stored, before: before.number, logger: logger)
            }
        }
    }

    static func binds(_ site: String, _ day: Int32? = nil) -> PostgresBindings {
        var b = PostgresBindings()
        b.append(site)
        if let day { b.append(day) }
        return b
    }

    public func purges(unfinishedOnly: Bool) async throws -> [SitePurge] {
        try await preparedOnce()
        let logger = self.logger
        return try await bounded("purges") { client in
            try await client.withConnection { conn in try await Self.purges(conn, unfinishedOnly: unfinishedOnly, logger: logger) }
        }
    }

    public func sweep(after: Int64, span: Int64, rules: SweepRules) async throws -> SweepStep {
        let logger = self.logger
        let hi = after + span
        var purgeSites = PostgresArray<PostgresNameElement>(), purgeBefore = PostgresArray<PostgresInt64Element>()
        var purgeAt = PostgresArray<PostgresInt64Element>()
        for p in rules.purges {
            purgeSites.append(p.site)
            purgeBefore.append(p.before?.start)
            purgeAt.append(p.at)
        }
        var keepSites = PostgresArray<PostgresNameElement>(), keepFrom = PostgresArray<PostgresInt64Element>()
        for (site, _) in rules.retention.siteDays {
            keepSites.append(site.string)
            keepFrom.append(rules.retention.firstKeptDay(site: site.string, today: rules.today).map { UTCDay(number: $0).start })
        }
        let defaultFrom = rules.retention.days.map { _ in UTCDay(number: rules.today.number - Int32(clamping: rules.retention.days!)).start }
        let hasRetention = !rules.retention.keepsEverything
        return try await bounded("sweep") { [purgeSites, purgeBefore, purgeAt, keepSites, keepFrom] client in
            try await client.withTransaction(logger: logger) { conn in
                var step = SweepStep(next: nil, deletedByRetention: 0, deletedByPurges: 0)
                if purgeSites.count > 0 {
                    for try await n in try await conn.query("""
                        WITH d AS (DELETE FROM events e USING unnest(\(purgeSites), \(purgeBefore), \(purgeAt)) AS p(site, before, at)
                            WHERE e.id > \(after) AND e.id <= \(hi) AND e.site_id = p.site
                              AND e.ingested_at < ('epoch'::timestamptz + interval '1 microsecond' * p.at)
                              AND (p.before IS NULL OR e.event_ts < ('epoch'::timestamptz + interval '1 microsecond' * p.before))
                            RETURNING 1)
                        SELECT count(*) FROM d
                        """, logger: logger).decode(Int64.self) { step.deletedByPurges = Int(n) }
                }
                if hasRetention {
                    for try await n in try await conn.query("""
                        WITH d AS (DELETE FROM events e WHERE e.id > \(after) AND e.id <= \(hi)
                            AND e.event_ts < ('epoch'::timestamptz + interval '1 microsecond' *
                                coalesce((SELECT k.first FROM unnest(\(keepSites), \(keepFrom)) AS k(site, first) WHERE k.site = e.site_id),
                                         \(defaultFrom)::bigint))
                            RETURNING 1)
                        SELECT count(*) FROM d
                        """, logger: logger).decode(Int64.self) { step.deletedByRetention = Int(n) }
                }
                let deleted = Int64(step.deletedByPurges + step.deletedByRetention)
                if deleted > 0 { try await conn.query("UPDATE store_counts SET raw_rows = raw_rows - \(deleted)", logger: logger) }
                var maxID: Int64 = 0
                for try await m in try await conn.query("SELECT coalesce(max(id), 0)::bigint FROM events", logger: logger).decode(Int64.self) { maxID = m }
                step.next = hi >= maxID ? nil : hi
                return step
            }
        }
    }

    public func finishPurges(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        let logger = self.logger
        _ = try await bounded("purges") { client in
            try await client.query("UPDATE site_purges SET done = true WHERE id = ANY(\(ids))", logger: logger)
        }
    }

    /// PostgreSQL reuses the space of deleted rows once (auto)vacuum has seen them; a plain
    /// `VACUUM` also gives empty pages at the end of the table back to the file system.
    public func reclaimSpace(pages: Int) async throws -> Int {
        let logger = self.logger
        _ = try await bounded("vacuum", timeout: .seconds(600)) { client in
            try await client.query("VACUUM events", logger: logger)
        }
        return 0
    }

    public func firstRowID() async throws -> Int64 {
        let logger = self.logger
        return try await bounded("query") { client in
            var n: Int64 = 0
            for try await v in try await client.query("SELECT coalesce(min(id), 1)::bigint - 1 FROM events", logger: logger).decode(Int64.self) { n = v }
            return n
        }
    }
}
