import CSQLite
import TallyCore

extension SQLiteStore {
    /// Reads the ids the ``SQLiteSchema/spanTables`` spans of the range's hours bound, in
    /// order, skipping other sites' rows and rows outside the range as it goes. Rows a purge
    /// or the rollup retention has deleted, which a sweep has not reached yet, are left out.
    public func rows(siteID: String, from: Int64, to: Int64, afterID: Int64, limit: Int) async throws -> RowPage {
        guard from < to, limit > 0 else { return RowPage(rows: [], next: nil) }
        let retention = self.retention.withLockedValue { $0 }
        return try await onReader { db in
            try db.exec("BEGIN")
            defer {
                db.resetAll()
                try? db.exec("COMMIT")
            }
            let find = try db.statement("SELECT id FROM sites WHERE name = ?1")
            find.bind(1, siteID)
            guard try find.step() else { return RowPage(rows: [], next: nil) }
            let site = find.int(0)
            let gone = LoadFilter(purges: try SQLiteLifecycle.purges(db, unfinishedOnly: true).filter { $0.site.utf8Equals(siteID) },
                                  retention: retention)
            let today = UTCDay.today
            let spans = try db.statement("SELECT first, last FROM row_spans WHERE hour BETWEEN ?1 AND ?2 AND last > ?3")
            spans.bind(1, from / SQLiteSchema.microsPerHour)
            spans.bind(2, (to - 1) / SQLiteSchema.microsPerHour)
            spans.bind(3, afterID)
            var ranges: [(first: Int64, last: Int64)] = []
            while try spans.step() { ranges.append((max(spans.int(0), afterID + 1), spans.int(1))) }
            ranges.sort { $0.first < $1.first }
            var merged: [(first: Int64, last: Int64)] = []
            for r in ranges {
                if let m = merged.last, r.first <= m.last + 1 { merged[merged.count - 1].last = max(m.last, r.last) } else { merged.append(r) }
            }
            let select = try db.statement(Self.rowsSQL)
            var out: [StoredEvent] = []
            var read = 0, last = afterID
            for r in merged where read < limit {
                select.bind(1, r.first); select.bind(2, r.last); select.bind(3, site)
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

