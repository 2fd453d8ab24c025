import PostgresNIO
import TallyCore

extension PostgresStore {
    /// Pages by id (the primary key), so a range is one pass over the table however many
    /// pages it takes.
    public func rows(siteID: String, from: Int64, to: Int64, afterID: Int64, limit: Int) async throws -> [StoredEvent] {
        guard from < to, limit > 0 else { return [] }
        let stored = PostgresName.stored(siteID), lim = Int64(limit)
        let logger = self.logger
        return try await bounded("rows") { client in
            var out: [StoredEvent] = []
            let rows = try await client.query("""
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
                out.append(StoredEvent(id: try r[0].decode(Int64.self), ingestedAt: try r[1].decode(Int64.self), event: e))
            }
            return out
        }
    }
}
