import CSQLite
import TallyCore

/// Distinct members (``SQLiteSchema/reportTables``) as 4096-id chunks of 64 words, members
/// added one by one (from lists and raw rows) as a plain list until they are counted, and the
/// anonymous visitors of raw rows not rolled up yet, whose hashes have no member id: such a
/// hash is in no rollup set, so it counts apart from every member.
///
/// A list's few members are spread over the whole id range, so as chunks each would cost a
/// 512-byte chunk of its own (a daily series in New York unions 24 hour lists for each of 365
/// days): they are sorted once when counted instead, and folded into chunks only past
/// ``foldAt`` (then the chunks are dense enough to pay).
struct MemberUnion {
    private var chunks: [Int64: [UInt64]] = [:]
    private var single: [Int64] = []
    private var loose: Set<Int64> = []
    static let foldAt = 1 << 18

    mutating func add(chunk: Int64, count: Int, blob: UnsafeRawBufferPointer) throws {
        var words = chunks[chunk] ?? Array(repeating: 0, count: UserChunk.span / 64)
        if count >= UserChunk.arrayLimit {
            guard blob.count == UserChunk.bitmapBytes else { throw StoreError("report set chunk: bitmap of \(blob.count) bytes") }
            for w in 0..<words.count { words[w] |= blob.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self).littleEndian }
        } else {
            guard blob.count == count * 2 else { throw StoreError("report set chunk: \(blob.count) bytes for \(count) members") }
            for k in 0..<count {
                let m = Int(blob[2 * k]) | Int(blob[2 * k + 1]) << 8
                words[m >> 6] |= 1 << UInt64(m & 63)
            }
        }
        chunks[chunk] = words
    }

    mutating func add(member: Int64) {
        single.append(member)
        if single.count >= Self.foldAt { fold() }
    }

    mutating func add(hash: Int64) { loose.insert(hash) }

    /// Moves the single members into the chunks.
    private mutating func fold() {
        for member in single {
            let chunk = member >> Int64(UserChunk.shift), m = Int(member & Int64(UserChunk.span - 1))
            chunks[chunk, default: Array(repeating: 0, count: UserChunk.span / 64)][m >> 6] |= 1 << UInt64(m & 63)
        }
        single.removeAll(keepingCapacity: true)
    }

    private func contains(_ member: Int64) -> Bool {
        guard let words = chunks[member >> Int64(UserChunk.shift)] else { return false }
        let m = Int(member & Int64(UserChunk.span - 1))
        return words[m >> 6] & 1 << UInt64(m & 63) != 0
    }

    /// Each chunk's members (offsets, ascending).
    func forEachChunk(_ body: (Int64, [UInt16]) throws -> Void) rethrows {
        var all = self
        all.fold()
        for (c, words) in all.chunks.sorted(by: { $0.key < $1.key }) {
            var offsets: [UInt16] = []
            for (w, word) in words.enumerated() where word != 0 {
                for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { offsets.append(UInt16(w * 64 + bit)) }
            }
            try body(c, offsets)
        }
    }

    /// (visitors, users): every member, and the even ones.
    var counts: (visitors: Int64, users: Int64) {
        var all = 0, even = 0
        for words in chunks.values {
            for w in words {
                all += w.nonzeroBitCount
                even += (w & 0x5555_5555_5555_5555).nonzeroBitCount
            }
        }
        var previous: Int64 = -1
        for m in single.sorted() where m != previous {
            previous = m
            guard !contains(m) else { continue }
            all += 1
            if m & 1 == 0 { even += 1 }
        }
        return (Int64(all + loose.count), Int64(even))
    }
}

/// Where a span's figures come from: rollup buckets (`level`, `first..<end`) for the whole
/// UTC months, days, hours and quarter hours in it, minutes where it is recent (realtime),
/// and raw rows for what is left (only where a zone's offset is not a whole quarter hour).
struct SpanPieces {
    var buckets: [(level: ReportLevel, first: Int64, end: Int64)] = []
    var raw: [TimeSpan] = []

    /// `minutesFrom`: minute rows cover every event from this time (µs) on.
    init(_ span: TimeSpan, minutesFrom: Int64 = .max) {
        // No event is before the epoch (validation): a span starting there starts at it.
        let start = max(0, span.start)
        guard start < span.end else { return }
        split(start, span.end, [.month, .day, .hour, .quarter] + (start >= minutesFrom ? [.minute] : []))
    }

    /// Whole buckets of the coarsest level inside `[s, e)`, the rest split finer.
    private mutating func split(_ s: Int64, _ e: Int64, _ levels: [ReportLevel]) {
        guard s < e else { return }
        guard let level = levels.first else {
            raw.append(TimeSpan(s, e))
            return
        }
        let finer = Array(levels.dropFirst())
        if level == .month {
            let d = SQLiteSchema.microsPerDay
            let ds = (s + d - 1) / d, de = e / d
            var ms = ReportLevel.month(ofDay: ds)
            if ReportLevel.firstDay(ofMonth: ms) < ds { ms += 1 }
            let me = ReportLevel.month(ofDay: de)
            guard ds < de, ms < me else { return split(s, e, finer) }
            split(s, ReportLevel.firstDay(ofMonth: ms) * d, finer)
            buckets.append((.month, ms, me))
            split(ReportLevel.firstDay(ofMonth: me) * d, e, finer)
            return
        }
        let unit = level.micros
        let first = (s + unit - 1) / unit, end = e / unit
        guard first < end else { return split(s, e, finer) }
        split(s, first * unit, finer)
        buckets.append((level, first, end))
        split(end * unit, e, finer)
    }

    /// The same span with months as days, and hours as raw rows: the pieces per-value sets
    /// (kept per day only) can answer.
    var forValueSets: (days: [(first: Int64, end: Int64)], raw: [TimeSpan]) {
        var days: [(Int64, Int64)] = [], raw = self.raw
        for b in buckets {
            switch b.level {
            case .month: days.append((ReportLevel.firstDay(ofMonth: b.first), ReportLevel.firstDay(ofMonth: b.end)))
            case .day: days.append((b.first, b.end))
            case .hour, .quarter, .minute: raw.append(TimeSpan(b.first * b.level.micros, b.end * b.level.micros))
            }
        }
        return (days, raw)
    }
}

/// Reads for the reporting API: rollups up to the `rolled_up` mark, raw rows above it and in
/// the pieces rollups cannot answer; all in one read transaction, so they describe the same
/// rows. Cost: a few rollup rows per bucket, set chunks for distinct counts over more than
/// one bucket, and the raw rows of at most an hour at either end of a span (zones with
/// half-hour offsets) plus those loaded since the last rollup.
struct SQLiteReports {
    let db: SQLiteConnection
    let site: Int64
    let mark: Int64
    let ids: ReportIDs
    let purges: ReportPurges
    /// The site's name and the retention, for ``ReportNeedsDeletedRows``.
    let name: String
    let retention: RetentionPolicy

    init(_ db: SQLiteConnection, site: Int64, name: String, retention: RetentionPolicy) throws {
        self.db = db
        self.site = site
        self.name = name
        self.retention = retention
        mark = try SQLiteWriter.rolledUp(db)
        ids = try ReportIDs(db)
        purges = try ReportPurges(db, retention: retention)
    }

    /// The raw rows of `span` with ids in `ids`, counted and with their hashes unresolved;
    /// bots and rows the purges or retention deleted left out.
    func raw(_ span: TimeSpan, ids range: ClosedRange<Int64>, _ body: (SQLiteReportRollup.Row) throws -> Void) throws {
        guard span.start < span.end, !range.isEmpty else { return }
        let s = try db.statement("""
            SELECT \(SQLiteReportRollup.Row.columns) FROM event_rows e LEFT JOIN event_details d ON d.id = e.id
            WHERE e.id BETWEEN ?1 AND ?2 AND e.site = ?3 AND e.event_ts >= ?4 AND e.event_ts < ?5
            """)
        s.bind(1, range.lowerBound); s.bind(2, range.upperBound); s.bind(3, site); s.bind(4, span.start); s.bind(5, span.end)
        defer { sqlite3_reset(s.handle) }
        while try s.step() {
            if let row = SQLiteReportRollup.Row(s, ids: ids, purges: purges) { try body(row) }
        }
    }

    /// The rows of `span` in the rollups, read through the spans of its hours (ids up to the mark).
    func rolledRaw(_ span: TimeSpan, _ body: (SQLiteReportRollup.Row) throws -> Void) throws {
        guard span.start < span.end, mark > 0 else { return }
        for ids in try SQLiteSchema.spanRanges(db, site: site, span, ids: 1...mark) { try raw(span, ids: ids, body) }
    }

    /// Rows loaded since the last rollup, in `span`.
    func tail(_ span: TimeSpan, _ body: (SQLiteReportRollup.Row) throws -> Void) throws {
        try raw(span, ids: (mark + 1)...Int64.max, body)
    }

    /// A raw row's member into `u`: its member id, or its hash when it has no id yet.
    func add(_ r: SQLiteReportRollup.Row, to u: inout MemberUnion, find: Statement) throws {
        if r.member >= 0 {
            u.add(member: r.member)
        } else if r.hash != 0 {
            find.bind(1, r.hash)
            if try find.step() { u.add(member: 2 * find.int(0) + 1) } else { u.add(hash: r.hash) }
            sqlite3_reset(find.handle)
        }
    }

    func findAnonymous() throws -> Statement { try db.statement("SELECT id FROM anon_visitors WHERE hash = ?1") }

    /// Adds the members of `prop`/`value` at `level` for buckets `first..<end` to `u`.
    func addSets(prop: Int64, value: Int64, level: ReportLevel, first: Int64, end: Int64, to u: inout MemberUnion) throws {
        if SQLiteReportRollup.isList(prop: prop, level: level.rawValue) {
            let lists = try db.statement("""
                SELECT members, list FROM report_lists WHERE site = ?1 AND prop = ?2 AND level = ?3 AND value = ?4 AND bucket >= ?5 AND bucket < ?6
                """)
            lists.bind(1, site); lists.bind(2, prop); lists.bind(3, level.rawValue); lists.bind(4, value); lists.bind(5, first); lists.bind(6, end)
            defer { sqlite3_reset(lists.handle) }
            while try lists.step() {
                for m in try MemberList.decode(lists.blob(1), count: Int(lists.int(0))) { u.add(member: m) }
            }
            return
        }
        let s = try db.statement("""
            SELECT chunk, members, bits FROM report_sets WHERE site = ?1 AND prop = ?2 AND level = ?3 AND value = ?4 AND bucket >= ?5 AND bucket < ?6
            """)
        s.bind(1, site); s.bind(2, prop); s.bind(3, level.rawValue); s.bind(4, value); s.bind(5, first); s.bind(6, end)
        defer { sqlite3_reset(s.handle) }
        while try s.step() { try u.add(chunk: s.int(0), count: Int(s.int(1)), blob: s.blob(2)) }
    }

    func figures(_ spans: [TimeSpan]) throws -> [ReportFigures] {
        let find = try findAnonymous()
        // The rows loaded since the last rollup, once for the whole range, each in its span.
        var tails = Array(repeating: (views: Int64(0), events: Int64(0), members: MemberUnion(), any: false), count: spans.count)
        if let first = spans.first, let last = spans.last {
            let starts = spans.map(\.start)
            try tail(TimeSpan(first.start, last.end)) { r in
                guard let k = TimeSpan.index(of: r.micros, in: spans, starts: starts) else { return }
                tails[k].any = true
                tails[k].events += 1
                if r.isView { tails[k].views += 1 }
                try add(r, to: &tails[k].members, find: find)
            }
        }
        let counts = try db.statement("""
            SELECT coalesce(sum(views), 0), coalesce(sum(events), 0), coalesce(sum(visitors), 0), coalesce(sum(users), 0), count(*)
            FROM report_counts WHERE site = ?1 AND prop = 0 AND level = ?2 AND bucket >= ?3 AND bucket < ?4 AND value = 0
            """)
        var out: [ReportFigures] = []
        let minutesFrom = Timestamp.now() - ReportLevel.minuteWindow
        for (k, span) in spans.enumerated() {
            let pieces = SpanPieces(span, minutesFrom: minutesFrom)
            var f = ReportFigures(views: tails[k].views, events: tails[k].events)
            var single: (visitors: Int64, users: Int64)?
            for b in pieces.buckets {
                counts.bind(1, site); counts.bind(2, b.level.rawValue); counts.bind(3, b.first); counts.bind(4, b.end)
                guard try counts.step() else { continue }
                f.views += counts.int(0)
                f.events += counts.int(1)
                if pieces.buckets.count == 1, b.end - b.first == 1, !SQLiteReportRollup.isList(prop: ReportProp.all, level: b.level.rawValue) {
                    single = (counts.int(2), counts.int(3))
                }
                sqlite3_reset(counts.handle)
            }
            var members = tails[k].members
            for piece in pieces.raw {
                try ReportNeedsDeletedRows.check(piece, site: name, retention: retention, why: "a span that does not start on a quarter hour")
                try rolledRaw(piece) { r in
                    f.events += 1
                    if r.isView { f.views += 1 }
                    try add(r, to: &members, find: find)
                }
            }
            // One day or month and nothing else: its row has the distinct counts.
            if let single, pieces.raw.isEmpty, !tails[k].any {
                (f.visitors, f.users) = single
            } else {
                for b in pieces.buckets {
                    try addSets(prop: ReportProp.all, value: 0, level: b.level, first: b.first, end: b.end, to: &members)
                }
                (f.visitors, f.users) = members.counts
            }
            out.append(f)
        }
        return out
    }

    func breakdown(_ span: TimeSpan, _ property: BreakdownProperty, limit: Int) throws -> [BreakdownRow] {
        let prop = ReportProp.of(property)
        // Values have day rows only: the hours at the ends are read from the raw rows.
        let (days, raw) = SpanPieces(span).forValueSets
        let find = try findAnonymous()
        var byValue: [Int64: (views: Int64, events: Int64)] = [:]
        var extra: [Int64: MemberUnion] = [:]
        // One row per day and value, added up here: a GROUP BY in SQL sorted them all in a
        // temporary B-tree first, for the dictionary to add them up again.
        let counts = try db.statement("""
            SELECT value, views, events FROM report_counts
            WHERE site = ?1 AND prop = ?2 AND level = 1 AND bucket >= ?3 AND bucket < ?4
            """)
        for d in days {
            counts.bind(1, site); counts.bind(2, prop); counts.bind(3, d.first); counts.bind(4, d.end)
            while try counts.step() {
                let v = counts.int(0)
                byValue[v, default: (0, 0)].views += counts.int(1)
                byValue[v, default: (0, 0)].events += counts.int(2)
            }
            sqlite3_reset(counts.handle)
        }
        let index = Int(prop)
        func count(_ r: SQLiteReportRollup.Row) throws {
            let v = r.values[index]
            byValue[v, default: (0, 0)].events += 1
            if r.isView { byValue[v, default: (0, 0)].views += 1 }
            try add(r, to: &extra[v, default: MemberUnion()], find: find)
        }
        for piece in raw {
            try ReportNeedsDeletedRows.check(piece, site: name, retention: retention,
                                             why: "a breakdown whose first or last day is not a whole UTC day (a zone other than UTC)")
        }
        try tail(span, count)
        for piece in raw { try rolledRaw(piece, count) }
        // The first `limit` by counts; names only where they break a tie at the cut.
        let ranked = byValue.sorted { ($0.value.views, $0.value.events) > ($1.value.views, $1.value.events) }
        guard !ranked.isEmpty else { return [] }
        let cut = ranked[min(limit, ranked.count) - 1].value
        let candidates = ranked.prefix { ($0.value.views, $0.value.events) >= (cut.views, cut.events) }
        let names = try self.names(property, candidates.map(\.key))
        let rows = candidates.map { BreakdownRow(value: names[$0.key] ?? nil, views: $0.value.views, visitors: 0, events: $0.value.events) }
        var chosen = Array(zip(candidates.map(\.key), rows).sorted { BreakdownRow.ordered($0.1, $1.1) }.prefix(limit))
        for k in chosen.indices {
            var u = extra[chosen[k].0] ?? MemberUnion()
            for d in days { try addSets(prop: prop, value: chosen[k].0, level: .day, first: d.first, end: d.end, to: &u) }
            chosen[k].1.visitors = u.counts.visitors
        }
        return chosen.map(\.1)
    }

    /// The names of a property's value ids (0: none).
    func names(_ property: BreakdownProperty, _ values: [Int64]) throws -> [Int64: String?] {
        var out: [Int64: String?] = [:]
        let table: String? = switch property {
        case .path: "paths"
        case .eventType: "event_types"
        case .device: nil
        default: "labels"
        }
        let s = try table.map { try db.statement("SELECT name FROM \($0) WHERE id = ?1") }
        for v in values {
            guard v != 0 else {
                out[v] = .some(nil)
                continue
            }
            guard let s else {
                out[v] = Device(rawValue: UInt8(truncatingIfNeeded: v))?.name
                continue
            }
            s.bind(1, v)
            guard try s.step() else { throw StoreError("report: no name for \(property.rawValue) id \(v)") }
            out[v] = s.text(0)
            sqlite3_reset(s.handle)
        }
        return out
    }
}

extension SQLiteReportRollup.Row {
    /// What ``init(_:ids:purges:)`` reads, in its order, from `event_rows e` joined to
    /// `event_details d`.
    static let columns = """
        e.id, e.site, e.type, e.path, e.user, e.event_ts, e.ingested_at, d.referrer, d.utm_source, d.utm_medium,
        d.utm_campaign, d.device, d.browser, d.os, d.visitor, coalesce(d.bot, 0)
        """

    /// A row of ``columns``; nil for a bot or a row the purges or retention deleted.
    init?(_ s: Statement, ids: ReportIDs, purges: ReportPurges) {
        func id(_ c: Int32) -> Int64 { sqlite3_column_type(s.handle, c) == SQLITE_NULL ? 0 : s.int(c) }
        let site = s.int(1), micros = s.int(5)
        guard id(15) == 0, !purges.drops(site: site, micros: micros, cutAt: s.int(6)) else { return nil }
        let type = s.int(2), user = id(4)
        let isUser = user != 0 && user != ids.emptyUser
        self.init(site: site, micros: micros, isView: type == ids.pageView,
                  values: PropValues(id(3), type, id(7), id(11), id(12), id(13), id(8), id(9), id(10)),
                  member: isUser ? 2 * user : -1, hash: isUser ? 0 : id(14))
    }
}

extension SQLiteStore {
    public func figures(siteID: String, spans: [TimeSpan]) async throws -> [ReportFigures] {
        try await onReports(siteID, empty: spans.map { _ in ReportFigures() }) { r in try r.figures(spans) }
    }

    public func breakdown(siteID: String, span: TimeSpan, property: BreakdownProperty, limit: Int) async throws -> [BreakdownRow] {
        try await onReports(siteID, empty: []) { r in try r.breakdown(span, property, limit: limit) }
    }

    private func onReports<T: Sendable>(_ siteID: String, empty: T, _ body: @escaping @Sendable (SQLiteReports) throws -> T) async throws -> T {
        let retention = self.retention.withLockedValue { $0 }
        return try await onSiteReader(siteID, missing: empty) { db, site in
            try body(try SQLiteReports(db, site: site, name: siteID, retention: retention))
        }
    }
}

extension SQLiteReports {
    /// Deletes a site's report rollups: all of them, or those of the days before `before`.
    /// A month `before` cuts is made again from its days left: its counts the sums of theirs,
    /// its members their union.
    static func drop(_ db: SQLiteConnection, site: Int64, before: UTCDay?) throws {
        guard let before else {
            for table in ["report_counts", "report_sets", "report_lists"] {
                let d = try db.statement("DELETE FROM \(table) WHERE site = ?1")
                d.bind(1, site)
                try d.run()
            }
            return
        }
        let day = Int64(before.number), month = ReportLevel.month(ofDay: day)
        for table in ["report_counts", "report_sets"] {
            let d = try db.statement("""
                DELETE FROM \(table) WHERE site = ?1 AND (level = 0 AND bucket < ?2 OR level = 1 AND bucket < ?3 OR level = 2 AND bucket <= ?4
                    OR level = 3 AND bucket < ?5 OR level = 4 AND bucket < ?6)
                """)
            d.bind(1, site); d.bind(2, day * 24); d.bind(3, day); d.bind(4, month); d.bind(5, day * 96); d.bind(6, day * 1440)
            try d.run()
        }
        let lists = try db.statement("""
            DELETE FROM report_lists WHERE site = ?1 AND (level = 0 AND bucket < ?2 OR level = 1 AND bucket < ?3 OR level = 3 AND bucket < ?4 OR level = 4 AND bucket < ?5)
            """)
        lists.bind(1, site); lists.bind(2, day * 24); lists.bind(3, day); lists.bind(4, day * 96); lists.bind(5, day * 1440)
        try lists.run()
        let end = ReportLevel.firstDay(ofMonth: month + 1)
        let sums = try db.statement("""
            INSERT INTO report_counts(site, prop, level, bucket, value, views, events, visitors, users)
            SELECT site, 0, 2, ?4, 0, sum(views), sum(events), 0, 0 FROM report_counts
            WHERE site = ?1 AND prop = 0 AND level = 1 AND bucket >= ?2 AND bucket < ?3 AND value = 0 GROUP BY site HAVING count(*) > 0
            """)
        sums.bind(1, site); sums.bind(2, day); sums.bind(3, end); sums.bind(4, month)
        try sums.run()
        var u = MemberUnion()
        let days = try db.statement("SELECT chunk, members, bits FROM report_sets WHERE site = ?1 AND prop = 0 AND level = 1 AND value = 0 AND bucket >= ?2 AND bucket < ?3")
        days.bind(1, site); days.bind(2, day); days.bind(3, end)
        while try days.step() { try u.add(chunk: days.int(0), count: Int(days.int(1)), blob: days.blob(2)) }
        sqlite3_reset(days.handle)
        let write = try db.statement("INSERT INTO report_sets(site, prop, level, value, bucket, chunk, members, bits) VALUES(?1, 0, 2, 0, ?2, ?3, ?4, ?5)")
        try u.forEachChunk { chunk, offsets in
            write.bind(1, site); write.bind(2, month); write.bind(3, chunk); write.bind(4, Int64(offsets.count))
            write.bind(5, blob: UserChunk.encode(offsets))
            try write.run()
        }
        let (visitors, users) = u.counts
        let distinct = try db.statement("UPDATE report_counts SET visitors = ?3, users = ?4 WHERE site = ?1 AND prop = 0 AND level = 2 AND bucket = ?2 AND value = 0")
        distinct.bind(1, site); distinct.bind(2, month); distinct.bind(3, visitors); distinct.bind(4, users)
        try distinct.run()
    }
}
