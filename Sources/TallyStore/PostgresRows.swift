import PostgresNIO
import TallyCore

extension PostgresStore {
    /// Pages by id (the primary key), so a range is at most one pass over the table however
    /// many pages it takes. The planner may instead read the range through
    /// `events_by_site_time` and sort it, once per page; it does so when that reads fewer rows
    /// than the page's part of the pass, and then all the pages together read fewer rows than
    /// one pass (checked with `EXPLAIN`: a wide range takes the primary key, a narrow one the
    /// index).
    public func rows(siteID: String, from: Int64, to: Int64, after: RowCursor, limit: Int) async throws -> RowPage {
        guard from < to, limit > 0 else { return RowPage(rows: [], next: nil) }
        let stored = PostgresName.stored(siteID), lim = Int64(limit)
        let retention = loadState.withLockedValue { $0.retention }
        return try await bounded("rows") { client in
            try await client.withConnection { conn in try await self.rows(conn, siteID, stored, from, to, after.afterID, lim, retention) }
        }
    }

    /// Rows a purge or the rollup retention has deleted, which a sweep has not reached yet,
    /// are left out.
    private func rows(_ conn: PostgresConnection, _ siteID: String, _ stored: String, _ from: Int64, _ to: Int64, _ afterID: Int64,
                      _ lim: Int64, _ retention: RetentionPolicy) async throws -> RowPage {
        let logger = self.logger
        let gone = LoadFilter(purges: try await Self.purges(conn, unfinishedOnly: true, logger: logger).filter { $0.site.utf8Equals(siteID) },
                              retention: retention)
        let today = UTCDay.today
        var out: [StoredEvent] = []
        var read: Int64 = 0, last = afterID
        let rows = try await conn.query("""
            SELECT id, (extract(epoch FROM ingested_at) * 1000000)::bigint, (extract(epoch FROM event_ts) * 1000000)::bigint,
                   event_type, path, user_id, referrer, utm_source, utm_medium, utm_campaign, device, browser, os, visitor, bot
            FROM events
            WHERE site_id = \(stored) AND id > \(afterID)
              AND event_ts >= 'epoch'::timestamptz + interval '1 microsecond' * \(from)
              AND event_ts < 'epoch'::timestamptz + interval '1 microsecond' * \(to)
            ORDER BY id LIMIT \(lim)
            """, logger: logger)
        for try await row in rows {
            let r = row.makeRandomAccess()
            func text(_ i: Int) throws -> String? { try r[i].decode(String?.self).map(PostgresName.name) }
            let visit = Visit(visitor: UInt64(bitPattern: try r[13].decode(Int64?.self) ?? 0),
                              device: try r[10].decode(String?.self).flatMap(Device.init(name:)),
                              browser: try text(11), os: try text(12), isBot: try r[14].decode(Bool.self))
            let e = Event(siteID: siteID, eventType: PostgresName.name(try r[3].decode(String.self)), path: try text(4),
                          userID: try text(5), timestamp: try r[2].decode(Int64.self), referrer: try text(6),
                          utmSource: try text(7), utmMedium: try text(8), utmCampaign: try text(9), visit: visit)
            let row = StoredEvent(id: try r[0].decode(Int64.self), ingestedAt: try r[1].decode(Int64.self), event: e)
            read += 1
            last = row.id
            if !gone.dropped(e, cutAt: row.ingestedAt, today: today) { out.append(row) }
        }
        return RowPage(rows: out, next: read == lim ? RowCursor(afterID: last) : nil)
    }
}
