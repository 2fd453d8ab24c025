import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO
import TallyCore

/// PostgreSQL behind the same ``EventStore`` contract, for several collectors sharing one
/// database. Each batch is one transaction: its id in `loaded_batches` (the primary key makes a
/// second load of the same batch, from any collector, a no-op), its rows via COPY, and its
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
    private let knownUsers = NIOLockedValueBox(KnownUserRows())

    public init(location: Location, operationTimeout: Duration = .seconds(5), logger: Logger = Logger(label: "tally.postgres")) {
        self.operationTimeout = operationTimeout
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

    public convenience init(url: String, logger: Logger = Logger(label: "tally.postgres")) throws {
        self.init(location: try Location(url: url), logger: logger)
    }

    /// Idempotent, and safe when several collectors start at once: DDL runs under a
    /// transaction-scoped advisory lock.
    public func prepare() async throws {
        let logger = self.logger
        try await bounded("migration") { client in try await Self.migrate(client, logger) }
        prepared.withLockedValue { $0 = true }
    }

    /// Whether the schema is known to exist; a collector that started while the database was
    /// down creates it before its first load.
    private let prepared = NIOLockedValueBox(false)

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
    ]

    /// Bounds every database call: while the server is unreachable the pool would otherwise
    /// wait for a connection indefinitely, and the loader could neither report nor retry.
    public let operationTimeout: Duration

    /// Runs `body` on the current client, giving up after `operationTimeout`. A call that
    /// times out or loses its connection retires the client: a fresh pool is made for the next
    /// call, so an outage of the server never leaves the collector with a wedged pool.
    func bounded<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = currentClient()
        let timeout = operationTimeout
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

    public func load(_ batches: [StoreBatch]) async throws -> [LoadOutcome] {
        if !prepared.withLockedValue({ $0 }) { try await prepare() }
        return try await bounded("load") { client in try await self.load(batches, client) }
    }

    func load(_ batches: [StoreBatch], _ client: PostgresClient) async throws -> [LoadOutcome] {
        let known = knownUsers.withLockedValue { $0 }
        let logger = self.logger
        let (outcomes, rollup): ([LoadOutcome], BatchRollup?) = try await client.withTransaction(logger: logger) { conn in
            let marked = try await conn.query("""
                INSERT INTO loaded_batches(batch_id, event_count)
                SELECT * FROM unnest(\(batches.map(\.id)), \(batches.map { Int32($0.events.count) }))
                ON CONFLICT DO NOTHING RETURNING batch_id
                """, logger: logger)
            var newIDs: Set<String> = []
            for try await id in marked.decode(String.self) { newIDs.insert(id) }
            let outcomes = batches.map { newIDs.contains($0.id) ? LoadOutcome.loaded : .alreadyLoaded }
            let fresh = batches.filter { newIDs.contains($0.id) }
            guard !fresh.isEmpty else { return (outcomes, nil) }
            let r = BatchRollup(fresh.flatMap(\.events), knownDay: known.day, knownSite: known.site)

            var rows = PostgresEventRows(tier: PostgresEventRows.tier(of: fresh))
            for batch in fresh {
                for e in batch.events {
                    rows.append(e, ingestedAt: batch.createdAt)
                    if rows.count == PostgresEventRows.rowsPerInsert { try await rows.insert(conn, logger: logger) }
                }
            }
            try await rows.insert(conn, logger: logger)

            let dv = r.dayViews.sorted { ($0.key.site, $0.key.day) < ($1.key.site, $1.key.day) }
            if !dv.isEmpty {
                try await conn.query("""
                    INSERT INTO daily_views(site_id, day, views)
                    SELECT s, DATE '1970-01-01' + d, v FROM unnest(\(dv.map { PostgresName.stored($0.key.site.string) }), \(dv.map { Int32($0.key.day) }), \(dv.map(\.value))) AS t(s, d, v)
                    ON CONFLICT (site_id, day) DO UPDATE SET views = daily_views.views + excluded.views
                    """, logger: logger)
            }
            let dpv = r.dayPathViews.sorted { ($0.key.site, $0.key.day, $0.key.path) < ($1.key.site, $1.key.day, $1.key.path) }
            if !dpv.isEmpty {
                try await conn.query("""
                    INSERT INTO daily_path_views(site_id, day, path, views)
                    SELECT s, DATE '1970-01-01' + d, p, v FROM unnest(\(dpv.map { PostgresName.stored($0.key.site.string) }), \(dpv.map { Int32($0.key.day) }), \(dpv.map { PostgresName.stored($0.key.path.string) }), \(dpv.map(\.value))) AS t(s, d, p, v)
                    ON CONFLICT (site_id, day, path) DO UPDATE SET views = daily_path_views.views + excluded.views
                    """, logger: logger)
            }
            let spv = r.sitePathViews.sorted { ($0.key.site, $0.key.path) < ($1.key.site, $1.key.path) }
            if !spv.isEmpty {
                try await conn.query("""
                    INSERT INTO site_path_views(site_id, path, views)
                    SELECT * FROM unnest(\(spv.map { PostgresName.stored($0.key.site.string) }), \(spv.map { PostgresName.stored($0.key.path.string) }), \(spv.map(\.value)))
                    ON CONFLICT (site_id, path) DO UPDATE SET views = site_path_views.views + excluded.views
                    """, logger: logger)
            }
            let du = r.dayUsers.sorted { ($0.site, $0.day, $0.user) < ($1.site, $1.day, $1.user) }
            if !du.isEmpty {
                try await conn.query("""
                    INSERT INTO daily_users(site_id, day, user_id)
                    SELECT s, DATE '1970-01-01' + d, u FROM unnest(\(du.map { PostgresName.stored($0.site.string) }), \(du.map { Int32($0.day) }), \(du.map { PostgresName.stored($0.user.string) })) AS t(s, d, u)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            let dvis = r.dayVisitors.sorted { ($0.site, $0.day, $0.visitor) < ($1.site, $1.day, $1.visitor) }
            if !dvis.isEmpty {
                try await conn.query("""
                    INSERT INTO daily_visitors(site_id, day, visitor)
                    SELECT s, DATE '1970-01-01' + d, v FROM unnest(\(dvis.map { PostgresName.stored($0.site.string) }), \(dvis.map { Int32($0.day) }), \(dvis.map { Int64(bitPattern: $0.visitor) })) AS t(s, d, v)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            let su = r.siteUsers.sorted { ($0.site, $0.user) < ($1.site, $1.user) }
            if !su.isEmpty {
                try await conn.query("""
                    INSERT INTO site_users(site_id, user_id) SELECT * FROM unnest(\(su.map { PostgresName.stored($0.site.string) }), \(su.map { PostgresName.stored($0.user.string) }))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            return (outcomes, r)
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
            for try await v in try await client.query("SELECT coalesce(max(id), 0)::bigint FROM events", logger: logger).decode(Int64.self) { n = v }
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
/// supported for extended queries"), an outage the loader must survive. Arrays cannot hold NULL
/// here: "" and 0 stand for it (no stored name is empty).
struct PostgresEventRows {
    /// The server materialises an unnested set before inserting it; past `work_mem` (4 MB by
    /// default) it spills to a temporary file, which made a 131k-row load write every row to
    /// disk once more. 8192 rows of 15 columns stay in memory.
    static let rowsPerInsert = 8192

    /// The narrowest statement that holds the load, as in SQLite: 0 without details (most
    /// server-side loads), 1 with only anonymous visitor ids (HTTP senders without a
    /// User-Agent), 2 with more. Seven arrays of empty labels are bytes to send and unnest for
    /// nothing.
    let tier: Int
    private var site: [String] = [], type: [String] = [], path: [String] = [], user: [String] = []
    private var ts: [Int64] = [], ingested: [Int64] = [], visitor: [Int64] = [], bot: [Bool] = []
    private var labels: [[String]] = Array(repeating: [], count: 7)

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

    mutating func append(_ e: Event, ingestedAt: Int64) {
        site.append(PostgresName.stored(e.siteID))
        type.append(PostgresName.stored(e.eventType))
        path.append(e.path.map(PostgresName.stored) ?? "")
        user.append(e.userID.map(PostgresName.stored) ?? "")
        ts.append(e.timestamp)
        ingested.append(ingestedAt)
        guard tier > 0 else { return }
        let v = e.visit
        visitor.append(Int64(bitPattern: v.visitor))
        guard tier > 1 else { return }
        for (k, label) in [e.referrer, e.utmSource, e.utmMedium, e.utmCampaign, v.device?.name, v.browser, v.os].enumerated() {
            labels[k].append(label.map(PostgresName.stored) ?? "")
        }
        bot.append(v.isBot)
    }

    /// Inserts the rows gathered so far and starts again empty.
    mutating func insert(_ conn: PostgresConnection, logger: Logger) async throws {
        guard count > 0 else { return }
        let common = "TIMESTAMPTZ 'epoch' + e * INTERVAL '1 microsecond', TIMESTAMPTZ 'epoch' + i * INTERVAL '1 microsecond'"
        switch tier {
        case 0:
            try await conn.query("""
                INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at)
                SELECT s, t, NULLIF(p, ''), NULLIF(u, ''), \(unescaped: common)
                FROM unnest(\(site), \(type), \(path), \(user), \(ts), \(ingested)) AS t(s, t, p, u, e, i)
                """, logger: logger)
        case 1:
            try await conn.query("""
                INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at, visitor)
                SELECT s, t, NULLIF(p, ''), NULLIF(u, ''), \(unescaped: common), NULLIF(v, 0)
                FROM unnest(\(site), \(type), \(path), \(user), \(ts), \(ingested), \(visitor)) AS t(s, t, p, u, e, i, v)
                """, logger: logger)
        default:
            try await conn.query("""
                INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at, referrer, utm_source, utm_medium,
                                   utm_campaign, device, browser, os, visitor, bot)
                SELECT s, t, NULLIF(p, ''), NULLIF(u, ''), \(unescaped: common), NULLIF(r, ''), NULLIF(us, ''), NULLIF(um, ''),
                       NULLIF(uc, ''), NULLIF(d, ''), NULLIF(b, ''), NULLIF(o, ''), NULLIF(v, 0), x
                FROM unnest(\(site), \(type), \(path), \(user), \(ts), \(ingested), \(labels[0]), \(labels[1]), \(labels[2]),
                            \(labels[3]), \(labels[4]), \(labels[5]), \(labels[6]), \(visitor), \(bot))
                    AS t(s, t, p, u, e, i, r, us, um, uc, d, b, o, v, x)
                """, logger: logger)
        }
        site.removeAll(keepingCapacity: true); type.removeAll(keepingCapacity: true)
        path.removeAll(keepingCapacity: true); user.removeAll(keepingCapacity: true)
        ts.removeAll(keepingCapacity: true); ingested.removeAll(keepingCapacity: true)
        visitor.removeAll(keepingCapacity: true); bot.removeAll(keepingCapacity: true)
        for k in labels.indices { labels[k].removeAll(keepingCapacity: true) }
    }
}
