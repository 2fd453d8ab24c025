import CSQLite
import TallyCore

extension SQLiteStore {
    /// Reads the ids the ``SQLiteSchema/spanTables`` spans of the site's hours bound (looked
    /// up on the first page, carried by the cursor after it), in order, skipping other sites'
    /// rows and rows outside the range as it goes. Rows a purge or the rollup retention has
    /// deleted, which a sweep has not reached yet, are left out.
    public func rows(siteID: String, from: Int64, to: Int64, after: RowCursor, limit: Int) async throws -> RowPage {
        guard from < to, limit > 0 else { return RowPage(rows: [], next: nil) }
        let retention = self.retention.withLockedValue { $0 }
        return try await onSiteReader(siteID, missing: RowPage(rows: [], next: nil)) { db, site in
            let gone = LoadFilter(purges: try SQLiteLifecycle.purges(db, unfinishedOnly: true).filter { $0.site.utf8Equals(siteID) },
                                  retention: retention)
            let today = UTCDay.today
            let afterID = after.afterID
            let merged = try after.ranges ?? SQLiteSchema.spanRanges(db, site: site, TimeSpan(from, to), ids: (afterID + 1)...Int64.max)
            let select = try db.statement(Self.rowsSQL)
            var names = try PageNames(db)
            var out: [StoredEvent] = []
            var read = 0, last = afterID
            for r in merged where read < limit && r.upperBound > last {
                select.bind(1, max(r.lowerBound, last + 1)); select.bind(2, r.upperBound); select.bind(3, site)
                select.bind(4, from); select.bind(5, to); select.bind(6, Int64(limit - read))
                while try select.step() {
                    let row = try Self.storedEvent(select, siteID: siteID, names: &names)
                    read += 1
                    last = row.id
                    if !gone.dropped(row.event, cutAt: row.ingestedAt, today: today) { out.append(row) }
                }
                sqlite3_reset(select.handle)
            }
            guard read == limit else { return RowPage(rows: out, next: nil) }
            return RowPage(rows: out, next: RowCursor(afterID: last, ranges: merged.filter { $0.upperBound > last }))
        }
    }

    /// Users by join (a page has thousands); event types, paths and labels (referrers, UTM
    /// values, browsers, OSes) by id, each name read once per page (``PageNames``): a
    /// dictionary lookup costs a tenth of a B-tree seek per row.
    static let rowsSQL = """
        SELECT e.id, e.ingested_at, e.event_ts, e.type, e.path, u.name, d.referrer, d.utm_source, d.utm_medium, d.utm_campaign,
               d.device, d.browser, d.os, d.visitor, coalesce(d.bot, 0)
        FROM event_rows e
        LEFT JOIN users u ON u.id = e.user
        LEFT JOIN event_details d ON d.id = e.id
        WHERE e.id BETWEEN ?1 AND ?2 AND e.site = ?3 AND e.event_ts >= ?4 AND e.event_ts < ?5
        ORDER BY e.id LIMIT ?6
        """

    private static func storedEvent(_ s: Statement, siteID: String, names: inout PageNames) throws -> StoredEvent {
        let h = s.handle
        func isNull(_ c: Int32) -> Bool { sqlite3_column_type(h, c) == SQLITE_NULL }
        func name(_ table: PageNames.Table, _ c: Int32) throws -> String? { isNull(c) ? nil : try names.name(table, sqlite3_column_int64(h, c)) }
        // Text columns give NULL for SQL NULL (an empty string is not NULL).
        let user = sqlite3_column_text(h, 5).map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(sqlite3_column_bytes(h, 5))), as: UTF8.self) }
        let visit = Visit(visitor: UInt64(bitPattern: s.int(13)), device: isNull(10) ? nil : Device(rawValue: UInt8(truncatingIfNeeded: s.int(10))),
                          browser: try name(.labels, 11), os: try name(.labels, 12), isBot: s.int(14) != 0)
        let e = Event(siteID: siteID, eventType: try names.name(.types, s.int(3)), path: try name(.paths, 4), userID: user,
                      timestamp: s.int(2), referrer: try name(.labels, 6), utmSource: try name(.labels, 7),
                      utmMedium: try name(.labels, 8), utmCampaign: try name(.labels, 9), visit: visit)
        return StoredEvent(id: s.int(0), ingestedAt: s.int(1), event: e)
    }
}

/// A page's event-type, path and label names, each read once (inside the page's read
/// transaction, so an id cannot be swept and reused between a row and its name).
struct PageNames {
    enum Table: Int, CaseIterable {
        case types, paths, labels
        var sql: String { "SELECT name FROM \(["event_types", "paths", "labels"][rawValue]) WHERE id = ?1" }
    }

    private let find: [Statement]
    private var known: [[Int64: String]] = Array(repeating: [:], count: Table.allCases.count)

    init(_ db: SQLiteConnection) throws { find = try Table.allCases.map { try db.statement($0.sql) } }

    mutating func name(_ table: Table, _ id: Int64) throws -> String {
        if let n = known[table.rawValue][id] { return n }
        let s = find[table.rawValue]
        s.bind(1, id)
        defer { sqlite3_reset(s.handle) }
        guard try s.step() else { throw StoreError("\(table): no name with id \(id)") }
        let n = s.text(0)
        known[table.rawValue][id] = n
        return n
    }
}
