import CSQLite
import TallyCore

extension SQLiteStore {
    /// Reads the ids the ``SQLiteSchema/spanTables`` spans of the range's hours bound, in
    /// order, skipping other sites' rows and rows outside the range as it goes. Rows a purge
    /// or the rollup retention has deleted, which a sweep has not reached yet, are left out.
    public func rows(siteID: String, from: Int64, to: Int64, afterID: Int64, limit: Int) async throws -> RowPage {
        guard from < to, limit > 0 else { return RowPage(rows: [], next: nil) }
        let retention = self.retention.withLockedValue { $0 }
        return try await onSiteReader(siteID, missing: RowPage(rows: [], next: nil)) { db, site in
            let gone = LoadFilter(purges: try SQLiteLifecycle.purges(db, unfinishedOnly: true).filter { $0.site.utf8Equals(siteID) },
                                  retention: retention)
            let today = UTCDay.today
            let merged = try SQLiteSchema.spanRanges(db, TimeSpan(from, to), ids: (afterID + 1)...Int64.max)
            let select = try db.statement(Self.rowsSQL)
            var out: [StoredEvent] = []
            var read = 0, last = afterID
            for r in merged where read < limit {
                select.bind(1, r.lowerBound); select.bind(2, r.upperBound); select.bind(3, site)
                select.bind(4, from); select.bind(5, to); select.bind(6, Int64(limit - read))
                while try select.step() {
                    let row = Self.storedEvent(select, siteID: siteID)
                    read += 1
                    last = row.id
                    if !gone.dropped(row.event, cutAt: row.ingestedAt, today: today) { out.append(row) }
                }
                sqlite3_reset(select.handle)
            }
            return RowPage(rows: out, next: read == limit ? last : nil)
        }
    }

    static let rowsSQL = """
        SELECT e.id, e.ingested_at, e.event_ts, t.name, p.name, u.name, r.name, us.name, um.name, uc.name,
               d.device, b.name, o.name, d.visitor, coalesce(d.bot, 0)
        FROM event_rows e
        \(SQLiteSchema.nameJoins)
        WHERE e.id BETWEEN ?1 AND ?2 AND e.site = ?3 AND e.event_ts >= ?4 AND e.event_ts < ?5
        ORDER BY e.id LIMIT ?6
        """

    private static func storedEvent(_ s: Statement, siteID: String) -> StoredEvent {
        func text(_ c: Int32) -> String? { sqlite3_column_type(s.handle, c) == SQLITE_NULL ? nil : s.text(c) }
        let device = sqlite3_column_type(s.handle, 10) == SQLITE_NULL ? nil : Device(rawValue: UInt8(truncatingIfNeeded: s.int(10)))
        let visit = Visit(visitor: UInt64(bitPattern: s.int(13)), device: device, browser: text(11), os: text(12), isBot: s.int(14) != 0)
        let e = Event(siteID: siteID, eventType: s.text(3), path: text(4), userID: text(5), timestamp: s.int(2),
                      referrer: text(6), utmSource: text(7), utmMedium: text(8), utmCampaign: text(9), visit: visit)
        return StoredEvent(id: s.int(0), ingestedAt: s.int(1), event: e)
    }
}

