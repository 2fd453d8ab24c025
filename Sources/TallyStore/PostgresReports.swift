import PostgresNIO
import TallyCore

/// The reporting API on PostgreSQL: aggregated by the server over the raw rows of the range,
/// which the index `events_by_site_time` finds without reading other sites' rows (the heap
/// pages they share are read). The cost of a question grows with the site's events in the
/// range (a sort of them for each distinct count), not with the table; only the figures travel
/// to the collector. Times go in as µs since the epoch times `interval '1 microsecond'`, a
/// float8 product: exact up to 2^53 µs (the year 2255), past the last event time (2100).
///
/// Same figures as ``FiguresCounter`` (the definition): bot rows are not counted; users are
/// distinct non-empty user ids (compared by bytes: a deterministic collation's equality);
/// visitors are those users plus the distinct anonymous ids of events without one. While a
/// purge of the site is unfinished, rows it covers may still be there, and the rule that
/// tells which (``SitePurge/covers(timestamp:cutAt:)``) lives in Swift only: those reports are
/// answered from ``EventStore/rows(siteID:from:to:after:limit:)`` instead.
extension PostgresStore {
    /// A range the raw-row retention has cut is refused rather than counted short.
    public func figures(siteID: String, spans: [TimeSpan]) async throws -> [ReportFigures] {
        let retention = loadState.withLockedValue { $0.retention }
        guard let first = spans.first, let last = spans.last else { return [] }
        try ReportNeedsDeletedRows.check(first, site: siteID, retention: retention, why: "a PostgreSQL report")
        let (from, to) = Self.counted(first.start, last.end, retention)
        let stored = PostgresName.stored(siteID), starts = spans.map(\.start), ends = spans.map(\.end)
        let rows: [(Int32, ReportFigures)]? = try await report(stored) { conn, logger in
            var out: [(Int32, ReportFigures)] = []
            // width_bucket finds each row's span among the starts; the spans need not touch,
            // so a row past its span's end (in a gap) is left out. MATERIALIZED: inlined, the
            // arrays were built again for every row (8.5 s instead of 0.14 s for 365 days).
            let query: PostgresQuery = """
                WITH b AS MATERIALIZED (SELECT array_agg('epoch'::timestamptz + interval '1 microsecond' * s ORDER BY i) AS starts,
                                  array_agg('epoch'::timestamptz + interval '1 microsecond' * e ORDER BY i) AS ends
                           FROM unnest(\(starts)::int8[], \(ends)::int8[]) WITH ORDINALITY AS t(s, e, i))
                SELECT k, \(unescaped: Self.figureColumns)
                FROM (SELECT width_bucket(e.event_ts, b.starts) AS k, e.event_ts, b.ends, e.event_type, e.user_id, e.visitor
                      FROM events e, b
                      WHERE e.site_id = \(stored) AND NOT e.bot
                        AND e.event_ts >= 'epoch'::timestamptz + interval '1 microsecond' * \(from)
                        AND e.event_ts < 'epoch'::timestamptz + interval '1 microsecond' * \(to)) r
                WHERE event_ts < ends[k]
                GROUP BY k
                """
            for try await (k, views, events, users, anonymous) in try await conn.query(query, logger: logger).decode((Int32, Int64, Int64, Int64, Int64).self) {
                out.append((k, ReportFigures(views: views, events: events, users: users, visitors: users + anonymous)))
            }
            return out
        }
        guard let rows else { return try await rawFigures(siteID: siteID, spans: spans) }
        var figures = Array(repeating: ReportFigures(), count: spans.count)
        for (k, f) in rows { figures[Int(k) - 1] = f }
        return figures
    }

    /// The stored spelling of a value (``PostgresName``) sorts like its bytes unless it holds
    /// the escape U+FFFF (for U+0000 or U+FFFF). So the server returns the first `limit` of the
    /// values without it, in the final order, and of the values with it the first `limit` by
    /// views and events with every row tied with the last; the first `limit` of both together,
    /// by ``BreakdownRow/ordered(_:_:)`` here, are the answer.
    public func breakdown(siteID: String, span: TimeSpan, property: BreakdownProperty, limit: Int) async throws -> [BreakdownRow] {
        let retention = loadState.withLockedValue { $0.retention }
        try ReportNeedsDeletedRows.check(span, site: siteID, retention: retention, why: "a PostgreSQL report")
        guard limit > 0 else { return [] }
        let (from, to) = Self.counted(span.start, span.end, retention)
        let stored = PostgresName.stored(siteID), column = Self.column(property), lim = Int64(limit)
        let rows: [BreakdownRow]? = try await report(stored) { conn, logger in
            var out: [BreakdownRow] = []
            let escape = String(PostgresName.escape)
            let query: PostgresQuery = """
                WITH g AS MATERIALIZED (
                    SELECT \(unescaped: column) COLLATE "C" AS value, \(unescaped: Self.figureColumns)
                    FROM events
                    WHERE site_id = \(stored) AND NOT bot
                      AND event_ts >= 'epoch'::timestamptz + interval '1 microsecond' * \(from)
                      AND event_ts < 'epoch'::timestamptz + interval '1 microsecond' * \(to)
                    GROUP BY 1)
                (SELECT * FROM g WHERE value IS NULL OR strpos(value, \(escape)) = 0
                 ORDER BY views DESC, events DESC, value NULLS FIRST LIMIT \(lim))
                UNION ALL
                (SELECT * FROM g WHERE strpos(value, \(escape)) > 0
                 ORDER BY views DESC, events DESC FETCH FIRST (\(lim)) ROWS WITH TIES)
                """
            for try await (value, views, events, users, anonymous) in try await conn.query(query, logger: logger).decode((String?, Int64, Int64, Int64, Int64).self) {
                out.append(BreakdownRow(value: value.map(PostgresName.name), views: views, visitors: users + anonymous, events: events))
            }
            return out
        }
        guard let rows else { return try await rawBreakdown(siteID: siteID, span: span, property: property, limit: limit) }
        return Array(rows.sorted(by: BreakdownRow.ordered).prefix(limit))
    }

    /// Views, events, users and anonymous visitors (without a user id) of the rows grouped.
    private static let figureColumns = """
        count(*) FILTER (WHERE event_type = '\(Event.pageView)') AS views, count(*) AS events,
        count(DISTINCT user_id COLLATE "C") FILTER (WHERE user_id <> '') AS users,
        count(DISTINCT visitor) FILTER (WHERE coalesce(user_id, '') = '' AND visitor <> 0) AS anonymous
        """

    /// The stored column of each property (a fixed name: it is spliced into the query).
    private static func column(_ p: BreakdownProperty) -> String {
        switch p {
        case .path: "path"
        case .eventType: "event_type"
        case .referrer: "referrer"
        case .device: "device"
        case .browser: "browser"
        case .os: "os"
        case .utmSource: "utm_source"
        case .utmMedium: "utm_medium"
        case .utmCampaign: "utm_campaign"
        }
    }

    /// A report reads every row of the site's range, about 1 µs each on a small server (2
    /// cores, measured on 455,000 rows): six bounds (30 s by default, of which the server
    /// allows 27) is some 20M rows. It is also the longest a report waits for a server that
    /// cannot be reached (measured: 5 s, when the collector's other calls replace the pool).
    static func reportBound(_ operationTimeout: Duration) -> Duration { operationTimeout * 6 }

    /// `[from, to)` without the days the rollup retention no longer counts (rows of them are
    /// left out until a sweep deletes them, as ``LoadFilter/dropped(_:cutAt:today:)`` does).
    private static func counted(_ from: Int64, _ to: Int64, _ retention: RetentionPolicy) -> (Int64, Int64) {
        guard let first = retention.firstCountedDay(today: .today) else { return (from, to) }
        return (max(from, UTCDay(number: first).start), to)
    }

    /// Runs `body` in one read-only snapshot, after checking in it that no purge of the site
    /// is unfinished; nil when one is. The server stops a question that runs too long itself
    /// (a tenth before the collector would give up), and that is the question's failure, not
    /// the connection's: the pool the loads share is kept (the collector gives up on a pool,
    /// and makes a new one, when it times out waiting or loses the connection).
    private func report<T: Sendable>(_ storedSite: String,
                                     _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T) async throws -> T? {
        let logger = self.logger, bound = Self.reportBound(operationTimeout), server = bound / 10 * 9
        let millis = Self.milliseconds(server)
        return try await bounded("report", timeout: bound) { client in
            do {
                return try await client.withTransaction(logger: logger) { conn -> T? in
                    try await conn.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
                    try await conn.query(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(millis)"), logger: logger)
                    var purging = false
                    for try await p in try await conn.query("SELECT EXISTS (SELECT 1 FROM site_purges WHERE site_id = \(storedSite) AND NOT done)",
                                                            logger: logger).decode(Bool.self) { purging = p }
                    return purging ? nil : try await body(conn, logger)
                }
            } catch let error as PostgresTransactionError where (error.closureError as? PSQLError)?.serverInfo?[.sqlState] == "57014" {
                throw ReportTookTooLong(limit: server)
            }
        }
    }
}

/// A question PostgreSQL stopped at its `statement_timeout`: a range with more rows than the
/// server reads in that time.
public struct ReportTookTooLong: Error, Sendable, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "PostgreSQL stopped the question after \(limit): too many rows in the range for one question" }
}

extension PostgresStore {
    /// Reports read the raw rows here: nothing to roll up.
    public func rollUpReports() async throws -> Int { 0 }
}
