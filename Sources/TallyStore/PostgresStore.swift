import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO
import TallyCore

/// PostgreSQL behind the same ``EventStore`` contract, for several collectors sharing one
/// database. Each batch is one transaction: its id in `loaded_batches` (the primary key makes a
/// second load of the same batch, from any collector, a no-op), its rows as unnested arrays, and its
/// rollups as sorted multi-row upserts (sorted, so concurrent collectors take row locks in
/// the same order and do not deadlock).
public final class PostgresStore: EventStore, Sendable {
    public struct Location: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        public var requireTLS: Bool

        /// Parses `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`.
        public init(url: String) throws {
            guard let u = URLComponents(string: url), u.scheme == "postgres" || u.scheme == "postgresql",
                  let host = u.host, !host.isEmpty else {
                throw StoreError("store URL must look like postgres://user@host:port/database, got \(url)")
            }
            self.host = host
            self.port = u.port ?? 5432
            self.username = u.user ?? "postgres"
            self.password = u.password
            let db = u.path.hasPrefix("/") ? String(u.path.dropFirst()) : u.path
            self.database = db.isEmpty ? username : db
            let mode = u.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
            guard ["disable", "prefer", "require"].contains(mode) else {
                throw StoreError("sslmode must be disable, prefer or require, got \(mode)")
            }
            self.requireTLS = mode == "require"
            self.preferTLS = mode == "prefer"
        }

        var preferTLS: Bool
    }

    struct State {
        var client: PostgresClient
        var runTask: Task<Void, Never>?
    }

    let configuration: PostgresClient.Configuration
    let logger: Logger
    private let state: NIOLockedValueBox<State>
    let knownUsers = NIOLockedValueBox(KnownUserRows())
    let loadState = NIOLockedValueBox(PostgresLoadState())

    public init(location: Location, operationTimeout: Duration = .seconds(5), rowsPerInsert: Int = PostgresStore.rowsPerInsert,
                logger: Logger = Logger(label: "tally.postgres")) {
        self.operationTimeout = operationTimeout
        self.rowsPerInsert = rowsPerInsert
        var config = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username,
            password: location.password, database: location.database,
            tls: location.requireTLS ? .require(.makeClientConfiguration())
                : location.preferTLS ? .prefer(.makeClientConfiguration()) : .disable)
        config.options.maximumConnections = 8
        self.configuration = config
        self.logger = logger
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.state = NIOLockedValueBox(State(client: client, runTask: Task { await client.run() }))
    }

    public convenience init(url: String, rowsPerInsert: Int = PostgresStore.rowsPerInsert, logger: Logger = Logger(label: "tally.postgres")) throws {
        self.init(location: try Location(url: url), rowsPerInsert: rowsPerInsert, logger: logger)
    }

    /// Raw rows per INSERT by default: about 2 MB of parameters for plain rows (measured here:
    /// 32,768 loaded 1M events 10-15 % faster than 8,192, with fewer round trips).
    public static let rowsPerInsert = 32_768
    /// This store's (tests make it small, to cross statement boundaries cheaply).
    let rowsPerInsert: Int

    /// Idempotent, and safe when several collectors start at once: DDL runs under a
    /// transaction-scoped advisory lock.
    public func prepare() async throws {
        let logger = self.logger
        try await bounded("migration") { client in try await Self.migrate(client, logger) }
        try await indexEventsForReports()
        prepared.withLockedValue { $0 = true }
    }

    /// Whether the schema is known to exist; a collector that started while the database was
    /// down creates it before its first load.
    private let prepared = NIOLockedValueBox(false)

    func preparedOnce() async throws {
        if !prepared.withLockedValue({ $0 }) { try await prepare() }
    }

    static func migrate(_ client: PostgresClient, _ logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(7338201)", logger: logger)
            for statement in Self.schema {
                try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS events(
            id BIGSERIAL PRIMARY KEY, site_id TEXT NOT NULL, event_type TEXT NOT NULL, path TEXT, user_id TEXT,
            event_ts TIMESTAMPTZ NOT NULL, ingested_at TIMESTAMPTZ NOT NULL)
        """,
        "CREATE TABLE IF NOT EXISTS loaded_batches(batch_id TEXT PRIMARY KEY, event_count INTEGER NOT NULL, loaded_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        "CREATE TABLE IF NOT EXISTS daily_views(site_id TEXT NOT NULL, day DATE NOT NULL, views BIGINT NOT NULL, PRIMARY KEY(site_id, day))",
        "CREATE TABLE IF NOT EXISTS daily_path_views(site_id TEXT NOT NULL, day DATE NOT NULL, path TEXT NOT NULL, views BIGINT NOT NULL, PRIMARY KEY(site_id, day, path))",
        "CREATE TABLE IF NOT EXISTS site_path_views(site_id TEXT NOT NULL, path TEXT NOT NULL, views BIGINT NOT NULL, PRIMARY KEY(site_id, path))",
        "CREATE TABLE IF NOT EXISTS daily_users(site_id TEXT NOT NULL, day DATE NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY(site_id, day, user_id))",
        "CREATE TABLE IF NOT EXISTS site_users(site_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY(site_id, user_id))",
        // Where visitors came from and what they used, the visitor id and the bot flag (bots are
        // stored, and counted nowhere); distinct visitors per day; the daily salts.
        """
        ALTER TABLE events ADD COLUMN IF NOT EXISTS referrer TEXT, ADD COLUMN IF NOT EXISTS utm_source TEXT,
            ADD COLUMN IF NOT EXISTS utm_medium TEXT, ADD COLUMN IF NOT EXISTS utm_campaign TEXT,
            ADD COLUMN IF NOT EXISTS device TEXT, ADD COLUMN IF NOT EXISTS browser TEXT, ADD COLUMN IF NOT EXISTS os TEXT,
            ADD COLUMN IF NOT EXISTS visitor BIGINT, ADD COLUMN IF NOT EXISTS bot BOOLEAN NOT NULL DEFAULT false
        """,
        "CREATE TABLE IF NOT EXISTS daily_visitors(site_id TEXT NOT NULL, day DATE NOT NULL, visitor BIGINT NOT NULL, PRIMARY KEY(site_id, day, visitor))",
        "CREATE TABLE IF NOT EXISTS visitor_salts(day DATE PRIMARY KEY, salt BYTEA NOT NULL)",
        // The site registry (SiteRecord): keys as SHA-256 hashes; registry_version has one row,
        // advanced by every change, which every collector sharing the database polls.
        """
        CREATE TABLE IF NOT EXISTS registered_sites(id TEXT PRIMARY KEY, origins TEXT[] NOT NULL, rate INTEGER,
            created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS site_keys(id TEXT PRIMARY KEY, site_id TEXT NOT NULL REFERENCES registered_sites(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('read', 'write')), hash TEXT NOT NULL UNIQUE, created_at TIMESTAMPTZ NOT NULL)
        """,
        "CREATE INDEX IF NOT EXISTS site_keys_by_site ON site_keys(site_id)",
        // Only when missing: ALTER TABLE takes an exclusive lock even when the column exists,
        // and would wait behind (then hold up) every collector reading the registry.
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                           AND table_name = 'registered_sites' AND column_name = 'raw_retention_days') THEN
                ALTER TABLE registered_sites ADD COLUMN raw_retention_days INTEGER;
            END IF;
        END $$
        """,
        "CREATE TABLE IF NOT EXISTS registry_version(one INTEGER PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL)",
        "INSERT INTO registry_version(one, version) VALUES (1, 0) ON CONFLICT DO NOTHING",
        // The data lifecycle: purges of sites' data (`at`: µs on the recording collector's
        // clock, compared with batches' cut times), kept after they finish because a batch cut
        // before one may still be spooled; a generation every purge advances, which loads read.
        """
        CREATE TABLE IF NOT EXISTS site_purges(id BIGSERIAL PRIMARY KEY, site_id TEXT NOT NULL, before_day DATE,
            at BIGINT NOT NULL, done BOOLEAN NOT NULL DEFAULT false, lease_until BIGINT NOT NULL DEFAULT 0)
        """,
        "CREATE TABLE IF NOT EXISTS store_generation(one INTEGER PRIMARY KEY CHECK (one = 1), value BIGINT NOT NULL)",
        "INSERT INTO store_generation(one, value) VALUES (1, 0) ON CONFLICT DO NOTHING",
        // The number of raw rows, kept by loads and sweeps (counted once, when the table is made).
        "CREATE TABLE IF NOT EXISTS store_counts(one INTEGER PRIMARY KEY CHECK (one = 1), raw_rows BIGINT NOT NULL)",
        "INSERT INTO store_counts(one, raw_rows) SELECT 1, (SELECT count(*) FROM events) WHERE NOT EXISTS (SELECT 1 FROM store_counts) ON CONFLICT DO NOTHING",
    ]

    /// Whether `events` (the one the search path finds, as every statement here) has the
    /// reports' index, and the table's rows.
    static let reportIndexCheck = """
        SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                       WHERE i.indrelid = 'events'::regclass AND c.relname = 'events_by_site_time'),
               (SELECT raw_rows FROM store_counts)
        """

    /// Reports read a site's range through `events_by_site_time` (PostgresReports.swift).
    /// A database from before it may hold many rows, so it is built in its own transaction
    /// (after the schema's, whose `ALTER TABLE` locks out every reader till it commits) with a
    /// bound that grows with the table: about 1 s per million rows here, five times that
    /// allowed. Loads and sweeps wait for it; reads do not.
    func indexEventsForReports() async throws {
        let logger = self.logger
        let (present, rows) = try await bounded("index check") { client in
            var found = (true, Int64(0))
            for try await r in try await client.query(PostgresQuery(unsafeSQL: Self.reportIndexCheck), logger: logger).decode((Bool, Int64).self) { found = r }
            return found
        }
        guard !present else { return }
        let bound = operationTimeout * (1 + Int(rows / 1_000_000)), millis = Self.milliseconds(bound)
        logger.notice("Building the reports' index on events", metadata: ["rows": "\(rows)", "bound": "\(bound)"])
        try await bounded("index build", timeout: bound) { client in
            try await client.withTransaction(logger: logger) { conn in
                try await conn.query("SELECT pg_advisory_xact_lock(7338201)", logger: logger)
                try await conn.query(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(millis)"), logger: logger)
                // Another collector may have built it while this one waited for the lock.
                var built = false
                for try await (p, _) in try await conn.query(PostgresQuery(unsafeSQL: Self.reportIndexCheck), logger: logger).decode((Bool, Int64).self) { built = p }
                if !built { try await conn.query("CREATE INDEX events_by_site_time ON events(site_id, event_ts)", logger: logger) }
            }
        }
    }

    /// Bounds every database call: while the server is unreachable the pool would otherwise
    /// wait for a connection indefinitely, and the loader could neither report nor retry.
    public let operationTimeout: Duration

    /// Runs `body` on the current client, giving up after `operationTimeout`. A call that
    /// times out or loses its connection retires the client: a fresh pool is made for the next
    /// call, so an outage of the server never leaves the collector with a wedged pool.
    func bounded<T: Sendable>(_ what: String, timeout: Duration? = nil, _ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = currentClient()
        let timeout = timeout ?? operationTimeout
        let once = OnceResult<T>()
        do {
            return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
                once.set(cont)
                let work = Task {
                    do { once.resume(.success(try await body(client))) } catch { once.resume(.failure(error)) }
                }
                Task {
                    try? await Task.sleep(for: timeout)
                    if once.resume(.failure(StoreError("PostgreSQL \(what) timed out after \(timeout)"))) {
                        work.cancel()
                    }
                }
            }
        } catch let error as PSQLError {
            retire(client)
            throw StoreError("PostgreSQL \(what) failed: \(String(reflecting: error))")
        } catch let error as StoreError {
            retire(client)
            throw error
        }
    }

    /// The pool in use now (tests run administrative SQL through it).
    var client: PostgresClient { currentClient() }

    private func currentClient() -> PostgresClient {
        state.withLockedValue { $0.client }
    }

    /// Replaces `client` (if still current) with a new pool; the old one is shut down.
    private func retire(_ client: PostgresClient) {
        let old: Task<Void, Never>? = state.withLockedValue { s in
            guard s.client === client else { return nil }
            let fresh = PostgresClient(configuration: configuration, backgroundLogger: logger)
            let oldTask = s.runTask
            s.client = fresh
            s.runTask = Task { await fresh.run() }
            return oldTask
        }
        old?.cancel()
    }

    /// A bound as `statement_timeout` takes it: whole milliseconds, at least one (0 would be none).
    static func milliseconds(_ d: Duration) -> Int64 {
        max(1, d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }

    public func load(_ batches: [StoreBatch]) async throws -> [LoadOutcome] {
        try await preparedOnce()
        // One bound for every call would fail a large load on a slow server every time it is
        // retried: the bound grows with the rows (a full group of 262,144 events: 9 bounds).
        let events = batches.reduce(0) { $0 + $1.events.count }
        let bound = operationTimeout * (1 + events / Self.rowsPerInsert)
        return try await bounded("load", timeout: bound) { client in try await self.load(batches, client, bound: bound) }
    }

    /// `bound`: also the server's `statement_timeout` for each statement of the load. A load
    /// the collector gave up on would otherwise run on in the server (a backend waiting for a
    /// lock does not notice its client has gone), holding the row locks of its batch ids, and
    /// the retry would wait behind it, time out in turn and leave another one running.
    func load(_ batches: [StoreBatch], _ client: PostgresClient, bound: Duration) async throws -> [LoadOutcome] {
        let logger = self.logger
        let millis = Self.milliseconds(bound)
        let (outcomes, rollup): ([LoadOutcome], BatchRollup?) = try await client.withTransaction(logger: logger) { conn in
            try await conn.query(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(millis)"), logger: logger)
            let marked = try await conn.query("""
                INSERT INTO loaded_batches(batch_id, event_count)
                SELECT * FROM unnest(\(batches.map(\.id)), \(batches.map { Int32($0.events.count) }))
                ON CONFLICT DO NOTHING RETURNING batch_id
                """, logger: logger)
            var newIDs: Set<String> = []
            for try await id in marked.decode(String.self) { newIDs.insert(id) }
            let outcomes = batches.map { newIDs.contains($0.id) ? LoadOutcome.loaded : .alreadyLoaded }
            guard !newIDs.isEmpty else { return (outcomes, nil) }
            let filter = try await self.loadFilter(conn)
            let today = UTCDay.today
            let fresh = batches.filter { newIDs.contains($0.id) }.map { filter.kept($0, today: today) }
            let known = self.knownUsers.withLockedValue { $0 }
            // The rollup is CPU work on this side; it is made while the server inserts the rows.
            async let rollup = PostgresRollupRows(BatchRollup(fresh.flatMap(\.events), knownDay: known.day, knownSite: known.site))
            var rows = PostgresEventRows(tier: PostgresEventRows.tier(of: fresh))
            let keepsAllRows = filter.retention.keepsEverything
            for batch in fresh {
                // Rows already past the retention are counted in the rollup and not kept.
                for e in batch.events where keepsAllRows || filter.storesRawRow(e, today: today) {
                    rows.append(e, ingestedAt: batch.createdAt)
                    if rows.count == self.rowsPerInsert { try await rows.insert(conn, logger: logger) }
                }
            }
            try await rows.insert(conn, logger: logger)
            let r = await rollup
            try await r.upsert(conn, logger: logger)
            // Last: the one row every load updates is locked from here to the commit only.
            if rows.stored > 0 {
                try await conn.query("UPDATE store_counts SET raw_rows = raw_rows + \(Int64(rows.stored))", logger: logger)
            }
            return (outcomes, r.rollup)
        }
        if let rollup { knownUsers.withLockedValue { $0.remember(rollup) } }
        return outcomes
    }

    public func stats(siteID: String, day: UTCDay?, limit: Int) async throws -> SiteStats {
        try await bounded("stats") { client in try await self.stats(siteID: siteID, day: day, limit: limit, client) }
    }

    func stats(siteID: String, day: UTCDay?, limit: Int, _ client: PostgresClient) async throws -> SiteStats {
        let lim = Int64(limit)
        let siteID = PostgresName.stored(siteID)
        let logger = self.logger
        // REPEATABLE READ: the three numbers come from one snapshot.
        return try await client.withConnection { conn in
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                var views: Int64 = 0, users: Int64 = 0
                var top: [PathViews] = []
                if let day {
                    let d = Int32(day.number)
                    for try await v in try await conn.query("SELECT views FROM daily_views WHERE site_id = \(siteID) AND day = DATE '1970-01-01' + \(d)", logger: logger).decode(Int64.self) { views = v }
                    for try await u in try await conn.query("SELECT count(*) FROM daily_users WHERE site_id = \(siteID) AND day = DATE '1970-01-01' + \(d)", logger: logger).decode(Int64.self) { users = u }
                    for try await (p, v) in try await conn.query("SELECT path, views FROM daily_path_views WHERE site_id = \(siteID) AND day = DATE '1970-01-01' + \(d) ORDER BY views DESC, path COLLATE \"C\" ASC LIMIT \(lim)", logger: logger).decode((String, Int64).self) {
                        top.append(PathViews(path: PostgresName.name(p), views: v))
                    }
                } else {
                    for try await v in try await conn.query("SELECT coalesce(sum(views), 0)::bigint FROM daily_views WHERE site_id = \(siteID)", logger: logger).decode(Int64.self) { views = v }
                    for try await u in try await conn.query("SELECT count(*) FROM site_users WHERE site_id = \(siteID)", logger: logger).decode(Int64.self) { users = u }
                    for try await (p, v) in try await conn.query("SELECT path, views FROM site_path_views WHERE site_id = \(siteID) ORDER BY views DESC, path COLLATE \"C\" ASC LIMIT \(lim)", logger: logger).decode((String, Int64).self) {
                        top.append(PathViews(path: PostgresName.name(p), views: v))
                    }
                }
                try await conn.query("COMMIT", logger: logger)
                return SiteStats(totalViews: views, uniqueUsers: users, topPaths: top)
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    public func eventCount() async throws -> Int64 {
        let logger = self.logger
        return try await bounded("query") { client in
            var n: Int64 = 0
            for try await v in try await client.query("SELECT raw_rows FROM store_counts", logger: logger).decode(Int64.self) { n = v }
            return n
        }
    }

    public func visitorSalt(for day: UTCDay, proposed: [UInt8], keepFrom: UTCDay) async throws -> [UInt8] {
        let logger = self.logger
        return try await bounded("salt") { client in
            try await client.withTransaction(logger: logger) { conn in
                let d = Int32(day.number), keep = Int32(keepFrom.number)
                try await conn.query("DELETE FROM visitor_salts WHERE day < DATE '1970-01-01' + \(keep)", logger: logger)
                try await conn.query("""
                    INSERT INTO visitor_salts(day, salt) VALUES(DATE '1970-01-01' + \(d), decode(\(Self.hex(proposed)), 'hex'))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                var salt: [UInt8] = []
                for try await hex in try await conn.query("SELECT encode(salt, 'hex') FROM visitor_salts WHERE day = DATE '1970-01-01' + \(d)",
                                                          logger: logger).decode(String.self) {
                    salt = Self.bytes(hex: hex)
                }
                guard !salt.isEmpty else { throw StoreError("visitor salt neither inserted nor found") }
                return salt
            }
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    static func bytes(hex: String) -> [UInt8] {
        let u = Array(hex.utf8)
        func v(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c >= 65 ? c - 55 : c - 48 }
        return stride(from: 0, to: u.count - 1, by: 2).map { v(u[$0]) << 4 | v(u[$0 + 1]) }
    }

    public func close() async throws {
        let task = state.withLockedValue { s in
            defer { s.runTask = nil }
            return s.runTask
        }
        task?.cancel()
        await task?.value
    }

}

/// A bounded memory of committed user rows: returning visitors are most of the traffic, and a
/// row known to be stored needs no upsert. Past `limit` it starts again empty (forgetting only
/// costs an upsert that finds the row).
struct KnownUserRows: Sendable {
    static let limit = 1 << 20
    var day: Set<BatchRollup.DayUserKey> = []
    var site: Set<BatchRollup.SiteUserKey> = []

    mutating func remember(_ r: BatchRollup) {
        if day.count + r.dayUsers.count > Self.limit { day.removeAll(keepingCapacity: true) }
        if site.count + r.siteUsers.count > Self.limit { site.removeAll(keepingCapacity: true) }
        day.formUnion(r.dayUsers)
        site.formUnion(r.siteUsers)
    }
}

/// Resumes a continuation at most once; `resume` says whether this call did it.
final class OnceResult<T: Sendable>: Sendable {
    private let box = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(nil)
    func set(_ c: CheckedContinuation<T, any Error>) { box.withLockedValue { $0 = c } }
    @discardableResult
    func resume(_ r: Result<T, any Error>) -> Bool {
        let c = box.withLockedValue { v -> CheckedContinuation<T, any Error>? in
            defer { v = nil }
            return v
        }
        c?.resume(with: r)
        return c != nil
    }
}

/// A load's raw rows as arrays, one per column, each chunk unnested by one INSERT: PostgresNIO's
/// COPY can crash the process when the server ends the connection mid-copy ("Copy mode is only
/// supported for extended queries"), an outage the loader must survive.
///
/// The arrays are unnested in the select list (one ProjectSet node stepping them in lockstep;
/// they are all `count` long), not in FROM, where the server first copies the whole set into a
/// tuplestore (spilled to a temporary file past `work_mem`); values travel in binary, so the
/// server converts nothing. Measured on 8192-row inserts into PostgreSQL 15: 16.5-17.3 ms
/// against 21.6-21.8 ms for FROM unnest with integer times turned into timestamps by interval
/// arithmetic, and 18.5 ms for COPY.
struct PostgresEventRows {

    /// The narrowest statement that holds the load, as in SQLite: 0 without details (most
    /// server-side loads), 1 with only anonymous visitor ids (HTTP senders without a
    /// User-Agent), 2 with more. Seven arrays of NULLs are bytes to send and unnest for nothing.
    let tier: Int
    private var site = PostgresArray<PostgresNameElement>(), type = PostgresArray<PostgresNameElement>()
    private var path = PostgresArray<PostgresNameElement>(), user = PostgresArray<PostgresNameElement>()
    private var ts = PostgresArray<PostgresTimestampElement>(), ingested = PostgresArray<PostgresTimestampElement>()
    private var visitor = PostgresArray<PostgresInt64Element>(), bot = PostgresArray<PostgresBoolElement>()
    private var labels = Array(repeating: PostgresArray<PostgresNameElement>(), count: 7)

    init(tier: Int) { self.tier = tier }

    static func tier(of batches: [StoreBatch]) -> Int {
        var tier = 0
        for batch in batches {
            for e in batch.events where e.hasExtra {
                if !e.detailsAreOnlyVisitor { return 2 }
                tier = 1
            }
        }
        return tier
    }

    var count: Int { site.count }
    /// Rows inserted so far, in every statement.
    private(set) var stored = 0

    mutating func append(_ e: Event, ingestedAt: Int64) {
        site.append(e.siteID)
        type.append(e.eventType)
        path.append(e.path)
        user.append(e.userID)
        ts.append(e.timestamp)
        ingested.append(ingestedAt)
        guard tier > 0 else { return }
        let v = e.visit
        visitor.append(v.visitor == 0 ? nil : Int64(bitPattern: v.visitor))
        guard tier > 1 else { return }
        for (k, label) in [e.referrer, e.utmSource, e.utmMedium, e.utmCampaign, v.device?.name, v.browser, v.os].enumerated() {
            labels[k].append(label)
        }
        bot.append(v.isBot)
    }

    /// Inserts the rows gathered so far and starts again empty.
    mutating func insert(_ conn: PostgresConnection, logger: Logger) async throws {
        guard count > 0 else { return }
        stored += count
        switch tier {
        case 0:
            try await conn.query("""
                INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at)
                SELECT unnest(\(site)), unnest(\(type)), unnest(\(path)), unnest(\(user)), unnest(\(ts)), unnest(\(ingested))
                """, logger: logger)
        case 1:
            try await conn.query("""
                INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at, visitor)
                SELECT unnest(\(site)), unnest(\(type)), unnest(\(path)), unnest(\(user)), unnest(\(ts)), unnest(\(ingested)),
                       unnest(\(visitor))
                """, logger: logger)
        default:
            try await conn.query("""
                INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at, referrer, utm_source, utm_medium,
                                   utm_campaign, device, browser, os, visitor, bot)
                SELECT unnest(\(site)), unnest(\(type)), unnest(\(path)), unnest(\(user)), unnest(\(ts)), unnest(\(ingested)),
                       unnest(\(labels[0])), unnest(\(labels[1])), unnest(\(labels[2])), unnest(\(labels[3])), unnest(\(labels[4])),
                       unnest(\(labels[5])), unnest(\(labels[6])), unnest(\(visitor)), unnest(\(bot))
                """, logger: logger)
        }
        site.removeAll(); type.removeAll(); path.removeAll(); user.removeAll()
        ts.removeAll(); ingested.removeAll(); visitor.removeAll(); bot.removeAll()
        for k in labels.indices { labels[k].removeAll() }
    }
}

/// A load's rollup as the arrays its upserts send, each sorted so that concurrent collectors
/// take row locks in the same order and do not deadlock.
struct PostgresRollupRows: Sendable {
    let rollup: BatchRollup
    private var dayViews = (site: PostgresArray<PostgresNameElement>(), day: PostgresArray<PostgresDayElement>(), views: PostgresArray<PostgresInt64Element>())
    private var dayPathViews = (site: PostgresArray<PostgresNameElement>(), day: PostgresArray<PostgresDayElement>(),
                                path: PostgresArray<PostgresNameElement>(), views: PostgresArray<PostgresInt64Element>())
    private var sitePathViews = (site: PostgresArray<PostgresNameElement>(), path: PostgresArray<PostgresNameElement>(), views: PostgresArray<PostgresInt64Element>())
    private var dayUsers = (site: PostgresArray<PostgresNameElement>(), day: PostgresArray<PostgresDayElement>(), user: PostgresArray<PostgresNameElement>())
    private var dayVisitors = (site: PostgresArray<PostgresNameElement>(), day: PostgresArray<PostgresDayElement>(), visitor: PostgresArray<PostgresInt64Element>())
    private var siteUsers = (site: PostgresArray<PostgresNameElement>(), user: PostgresArray<PostgresNameElement>())

    init(_ r: BatchRollup) {
        rollup = r
        for (k, v) in r.dayViews.sorted(by: { ($0.key.site, $0.key.day) < ($1.key.site, $1.key.day) }) {
            dayViews.site.append(k.site.string); dayViews.day.append(k.day); dayViews.views.append(v)
        }
        for (k, v) in r.dayPathViews.sorted(by: { ($0.key.site, $0.key.day, $0.key.path) < ($1.key.site, $1.key.day, $1.key.path) }) {
            dayPathViews.site.append(k.site.string); dayPathViews.day.append(k.day)
            dayPathViews.path.append(k.path.string); dayPathViews.views.append(v)
        }
        for (k, v) in r.sitePathViews.sorted(by: { ($0.key.site, $0.key.path) < ($1.key.site, $1.key.path) }) {
            sitePathViews.site.append(k.site.string); sitePathViews.path.append(k.path.string); sitePathViews.views.append(v)
        }
        for k in r.dayUsers.sorted(by: { ($0.site, $0.day, $0.user) < ($1.site, $1.day, $1.user) }) {
            dayUsers.site.append(k.site.string); dayUsers.day.append(k.day); dayUsers.user.append(k.user.string)
        }
        for k in r.dayVisitors.sorted(by: { ($0.site, $0.day, $0.visitor) < ($1.site, $1.day, $1.visitor) }) {
            dayVisitors.site.append(k.site.string); dayVisitors.day.append(k.day); dayVisitors.visitor.append(Int64(bitPattern: k.visitor))
        }
        for k in r.siteUsers.sorted(by: { ($0.site, $0.user) < ($1.site, $1.user) }) {
            siteUsers.site.append(k.site.string); siteUsers.user.append(k.user.string)
        }
    }

    func upsert(_ conn: PostgresConnection, logger: Logger) async throws {
        if dayViews.site.count > 0 {
            try await conn.query("""
                INSERT INTO daily_views(site_id, day, views) SELECT unnest(\(dayViews.site)), unnest(\(dayViews.day)), unnest(\(dayViews.views))
                ON CONFLICT (site_id, day) DO UPDATE SET views = daily_views.views + excluded.views
                """, logger: logger)
        }
        if dayPathViews.site.count > 0 {
            try await conn.query("""
                INSERT INTO daily_path_views(site_id, day, path, views)
                SELECT unnest(\(dayPathViews.site)), unnest(\(dayPathViews.day)), unnest(\(dayPathViews.path)), unnest(\(dayPathViews.views))
                ON CONFLICT (site_id, day, path) DO UPDATE SET views = daily_path_views.views + excluded.views
                """, logger: logger)
        }
        if sitePathViews.site.count > 0 {
            try await conn.query("""
                INSERT INTO site_path_views(site_id, path, views)
                SELECT unnest(\(sitePathViews.site)), unnest(\(sitePathViews.path)), unnest(\(sitePathViews.views))
                ON CONFLICT (site_id, path) DO UPDATE SET views = site_path_views.views + excluded.views
                """, logger: logger)
        }
        if dayUsers.site.count > 0 {
            try await conn.query("""
                INSERT INTO daily_users(site_id, day, user_id) SELECT unnest(\(dayUsers.site)), unnest(\(dayUsers.day)), unnest(\(dayUsers.user))
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
        if dayVisitors.site.count > 0 {
            try await conn.query("""
                INSERT INTO daily_visitors(site_id, day, visitor)
                SELECT unnest(\(dayVisitors.site)), unnest(\(dayVisitors.day)), unnest(\(dayVisitors.visitor))
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
        if siteUsers.site.count > 0 {
            try await conn.query("""
                INSERT INTO site_users(site_id, user_id) SELECT unnest(\(siteUsers.site)), unnest(\(siteUsers.user))
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
    }
}
