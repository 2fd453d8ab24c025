import CSQLite
import TallyCore

/// The granularity of a report rollup row: UTC hours, days and months since the epoch.
/// Quarter hours answer the ends of local days in zones with half-hour and 45-minute offsets;
/// minutes, kept for the last hour only, the realtime figures.
enum ReportLevel: Int64, CaseIterable {
    case hour = 0, day = 1, month = 2, quarter = 3, minute = 4

    static let microsPerQuarter: Int64 = 900_000_000
    static let microsPerMinute: Int64 = 60_000_000
    /// Minute rows are made for events at most this old when rolled up, and deleted when
    /// twice as old; a span that starts later than this before now can use them.
    static let minuteWindow: Int64 = 3_600_000_000

    /// The bucket of an event time (µs) at this level.
    func bucket(_ micros: Int64) -> Int64 {
        switch self {
        case .hour: return micros / SQLiteSchema.microsPerHour
        case .day: return micros / SQLiteSchema.microsPerDay
        case .month: return Self.month(ofDay: micros / SQLiteSchema.microsPerDay)
        case .quarter: return micros / Self.microsPerQuarter
        case .minute: return micros / Self.microsPerMinute
        }
    }

    /// µs in a bucket (days and shorter).
    var micros: Int64 {
        switch self {
        case .hour: SQLiteSchema.microsPerHour
        case .day: SQLiteSchema.microsPerDay
        case .quarter: Self.microsPerQuarter
        case .minute: Self.microsPerMinute
        case .month: 0
        }
    }

    /// Months since 1970-01 of a day number.
    static func month(ofDay day: Int64) -> Int64 {
        let (y, m, _) = UTCDay(number: Int32(day)).civil
        return Int64(y - 1970) * 12 + Int64(m - 1)
    }

    /// The first day number of a month since 1970-01.
    static func firstDay(ofMonth month: Int64) -> Int64 {
        Int64(UTCDay(year: 1970 + Int(month / 12), month: Int(month % 12) + 1, day: 1).number)
    }
}

/// The properties a report rollup groups by, as stored: 0 is every event (value 0); the
/// others are ``BreakdownProperty``'s, their values interned ids (0: the event has none).
enum ReportProp {
    static let all: Int64 = 0
    static func of(_ p: BreakdownProperty) -> Int64 { Int64(BreakdownProperty.allCases.firstIndex(of: p)!) + 1 }
    static let count = BreakdownProperty.allCases.count + 1
}

/// A row's value id of each ``ReportProp``, inline: an array per row would be an allocation
/// per row on the load path.
struct PropValues {
    private var v: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64)

    init(_ path: Int64, _ type: Int64, _ referrer: Int64, _ device: Int64, _ browser: Int64, _ os: Int64,
         _ utmSource: Int64, _ utmMedium: Int64, _ utmCampaign: Int64) {
        v = (path, type, referrer, device, browser, os, utmSource, utmMedium, utmCampaign)
    }

    /// Index 0 (every event) is 0.
    subscript(_ prop: Int) -> Int64 {
        guard prop > 0 else { return 0 }
        return withUnsafeBytes(of: v) { $0.load(fromByteOffset: (prop - 1) * 8, as: Int64.self) }
    }
}

/// Rolls raw rows up into `report_counts` and `report_sets` (``SQLiteSchema/reportTables``).
///
/// It runs after loads, in a write transaction of its own, on up to ``batchRows`` rows above
/// the `rolled_up` mark: the load's transaction stays an append, and a set chunk touched by
/// many loads is rewritten once per rollup instead of once per load. The work per row is a
/// few hash-table additions (every event's count and member per hour; each property value's
/// per day); the day and month rows of every event are added up from the hours, so the
/// writes grow with the distinct keys of a rollup, not with its rows. Property values have
/// day rows only: hours would multiply the rows of a site with many paths by up to 24.
struct SQLiteReportRollup {
    /// Rows read back per rollup (memory: about 20 hash-table entries each).
    static let batchRows = 65_536

    /// One counted row, as the rollup needs it.
    struct Row {
        var site: Int64
        var micros: Int64
        var isView: Bool
        /// Per ``ReportProp``: the value id, 0 for none (index 0 is always 0).
        var values: PropValues
        /// The member id (``SQLiteSchema/reportTables``) of a user, -1 for none.
        var member: Int64
        /// The anonymous visitor's hash (no user), 0 for none: its member id is looked up.
        var hash: Int64
    }

    /// Per key: views in the high 32 bits, events in the low ones.
    private var counts = IDPairTable(capacity: 4096)
    /// Key interning for the sets: key → index + 1; and each index's key.
    private var setKeys = IDPairTable(capacity: 4096)
    private var keyList: [(a: UInt64, b: UInt64)] = []
    /// (key index, member).
    private var members = IDPairTable(capacity: 16_384)
    /// (key index, anonymous visitor hash): their member ids are looked up (or added) when
    /// the rollup is written, in the writing transaction.
    private var anonymous = IDPairTable(capacity: 1024)

    /// `a`: the site and the value; `b`: the property, the level and the bucket.
    static func key(site: Int64, prop: Int64, level: ReportLevel, bucket: Int64, value: Int64) -> (UInt64, UInt64) {
        (UInt64(site) << 32 | UInt64(UInt32(truncatingIfNeeded: value)), UInt64(prop) << 56 | UInt64(level.rawValue) << 48 | UInt64(bucket))
    }

    static func fields(_ a: UInt64, _ b: UInt64) -> (site: Int64, prop: Int64, level: Int64, bucket: Int64, value: Int64) {
        (Int64(a >> 32), Int64(b >> 56), Int64((b >> 48) & 0xFF), Int64(b & 0xFFFF_FFFF_FFFF), Int64(a & 0xFFFF_FFFF))
    }

    private mutating func keyIndex(_ a: UInt64, _ b: UInt64) -> UInt64 {
        if let index = setKeys.value(a, b) { return UInt64(index - 1) }
        keyList.append((a, b))
        setKeys.add(a, b, Int64(keyList.count))
        return UInt64(keyList.count - 1)
    }

    private mutating func addMember(_ a: UInt64, _ b: UInt64, _ r: Row) {
        if r.member >= 0 {
            members.add(keyIndex(a, b), UInt64(r.member))
        } else if r.hash != 0 {
            anonymous.add(keyIndex(a, b), UInt64(bitPattern: r.hash))
        }
    }

    /// Every event per hour (days and months are added up from the hours at the flush);
    /// property values per day.
    mutating func add(_ r: Row, now: Int64) throws {
        let delta: Int64 = r.isView ? 1 << 32 | 1 : 1
        for level in [ReportLevel.hour, .quarter] + (r.micros >= now - ReportLevel.minuteWindow ? [.minute] : []) {
            let k = Self.key(site: r.site, prop: ReportProp.all, level: level, bucket: level.bucket(r.micros), value: 0)
            counts.add(k.0, k.1, delta)
            addMember(k.0, k.1, r)
        }
        let day = ReportLevel.day.bucket(r.micros)
        for prop in 1..<Int64(ReportProp.count) {
            let v = r.values[Int(prop)]
            guard v >= 0, v <= Int64(UInt32.max) else { throw StoreError("report rollup: value id \(v) does not fit") }
            let k = Self.key(site: r.site, prop: prop, level: .day, bucket: day, value: v)
            counts.add(k.0, k.1, delta)
            addMember(k.0, k.1, r)
        }
    }

    /// Writes everything added, then empties itself. `anonymousIDs` gives the member number
    /// of each hash (``SQLiteWriter/anonymousIDs(_:)``).
    mutating func flush(_ db: SQLiteConnection, anonymousIDs: (Set<Int64>) throws -> [Int64: Int64]) throws {
        if anonymous.count > 0 {
            var hashes = Set<Int64>()
            anonymous.forEach { _, h, _ in hashes.insert(Int64(bitPattern: h)) }
            let ids = try anonymousIDs(hashes)
            anonymous.forEach { index, h, _ in members.add(index, UInt64(2 * ids[Int64(bitPattern: h)]! + 1)) }
        }
        // Days and months of every event from its hours.
        for (a, b, v) in counts.sorted() {
            let f = Self.fields(a, b)
            guard f.prop == ReportProp.all, f.level == ReportLevel.hour.rawValue else { continue }
            let micros = f.bucket * SQLiteSchema.microsPerHour
            for level in [ReportLevel.day, .month] {
                let k = Self.key(site: f.site, prop: f.prop, level: level, bucket: level.bucket(micros), value: f.value)
                counts.add(k.0, k.1, v)
            }
        }
        var derived: [(UInt64, UInt64, Int64)] = []
        members.forEach { index, member, _ in
            let (a, b) = keyList[Int(index)]
            let f = Self.fields(a, b)
            guard f.prop == ReportProp.all, f.level == ReportLevel.hour.rawValue else { return }
            let micros = f.bucket * SQLiteSchema.microsPerHour
            for level in [ReportLevel.day, .month] {
                let k = Self.key(site: f.site, prop: f.prop, level: level, bucket: level.bucket(micros), value: f.value)
                derived.append((k.0, k.1, Int64(member)))
            }
        }
        for (a, b, m) in derived { members.add(keyIndex(a, b), UInt64(m)) }

        // Sets first: what they gain is what the counts rows' visitors and users gain (day
        // and month rows; list keys' rows keep no distinct counts).
        var gained = IDPairTable(capacity: keyList.count)
        try writeSets(db, gained: &gained)
        let upsert = try db.statement("""
            INSERT INTO report_counts(site, prop, level, bucket, value, views, events, visitors, users) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            ON CONFLICT DO UPDATE SET views = views + excluded.views, events = events + excluded.events,
                visitors = visitors + excluded.visitors, users = users + excluded.users
            """)
        let ordered = counts.sorted().map { ($0, Self.fields($0.a, $0.b)) }
            .sorted { ($0.1.site, $0.1.prop, $0.1.level, $0.1.bucket, $0.1.value) < ($1.1.site, $1.1.prop, $1.1.level, $1.1.bucket, $1.1.value) }
        for (e, f) in ordered {
            let g = gained.value(e.a, e.b) ?? 0
            upsert.bind(1, f.site); upsert.bind(2, f.prop); upsert.bind(3, f.level); upsert.bind(4, f.bucket); upsert.bind(5, f.value)
            upsert.bind(6, e.value >> 32); upsert.bind(7, e.value & 0xFFFF_FFFF)
            upsert.bind(8, g & 0xFFFF_FFFF); upsert.bind(9, g >> 32)
            try upsert.run()
        }
        self = SQLiteReportRollup()
    }

    /// Whether a key's members are a `report_lists` list (else `report_sets` chunks).
    static func isList(prop: Int64, level: Int64) -> Bool {
        prop != ReportProp.all || level != ReportLevel.day.rawValue && level != ReportLevel.month.rawValue
    }

    /// Merges the members into `report_sets`, chunk by chunk, in primary-key order; `gained`
    /// gets per key the members new to it (low 32 bits) and how many of them are users. List
    /// keys get a new part instead (``ListParts``), and no distinct counts.
    private func writeSets(_ db: SQLiteConnection, gained: inout IDPairTable) throws {
        let entries = members.sortedPairs()
        // Each key's entries: a run of `entries` (sorted by key index, then member).
        var runs: [(index: Int, start: Int, end: Int)] = []
        var i = 0
        while i < entries.count {
            var j = i
            while j < entries.count, entries[j].a == entries[i].a { j += 1 }
            runs.append((Int(entries[i].a), i, j))
            i = j
        }
        let fields = keyList.map { Self.fields($0.a, $0.b) }
        runs.sort {
            let x = fields[$0.index], y = fields[$1.index]
            return (x.site, x.prop, x.level, x.value, x.bucket) < (y.site, y.prop, y.level, y.value, y.bucket)
        }
        let find = try db.statement("SELECT members, bits FROM report_sets WHERE site = ?1 AND prop = ?2 AND level = ?3 AND value = ?4 AND bucket = ?5 AND chunk = ?6")
        let write = try db.statement("""
            INSERT INTO report_sets(site, prop, level, value, bucket, chunk, members, bits) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            ON CONFLICT DO UPDATE SET members = excluded.members, bits = excluded.bits
            """)
        let lists = try ListParts(db)
        var offsets: [UInt16] = []
        for run in runs {
            let f = fields[run.index]
            var k = run.start
            var added: Int64 = 0, users: Int64 = 0
            if Self.isList(prop: f.prop, level: f.level) {
                try lists.add(entries[run.start..<run.end].map { Int64($0.b) }, key: [f.site, f.prop, f.level, f.value, f.bucket])
                continue
            }
            while k < run.end {
                let chunk = entries[k].b >> UInt64(UserChunk.shift)
                offsets.removeAll(keepingCapacity: true)
                while k < run.end, entries[k].b >> UInt64(UserChunk.shift) == chunk {
                    offsets.append(UInt16(truncatingIfNeeded: entries[k].b & UInt64(UserChunk.span - 1)))
                    k += 1
                }
                for (n, v) in [f.site, f.prop, f.level, f.value, f.bucket, Int64(chunk)].enumerated() { find.bind(Int32(n + 1), v) }
                let previous = try find.step() ? Int(find.int(0)) : 0
                let merged = try UserChunk.merge(previous > 0 ? find.blob(1) : nil, count: previous, adding: offsets[...])
                sqlite3_reset(find.handle)
                guard let merged else { continue }
                for (n, v) in [f.site, f.prop, f.level, f.value, f.bucket, Int64(chunk), Int64(merged.count)].enumerated() { write.bind(Int32(n + 1), v) }
                write.bind(8, blob: merged.blob)
                try write.run()
                added += Int64(merged.count - previous)
                users += Int64(merged.addedEven)
            }
            let (a, b) = keyList[run.index]
            gained.add(a, b, users << 32 | added)
        }
    }
}

/// Writes a list key's members as parts (`report_lists.part`), so a rollup writes what it
/// adds, not the whole list again: a day's list of a busy site (every visitor without a
/// referrer, say) is touched by every rollup, and rewriting it each time made a day's
/// rollups quadratic in its visitors. A new part is merged into the part before it while it
/// is at least half that one's size (the carries of a binary counter), so a key has
/// O(log members) parts and each member is rewritten O(log members) times. Readers union the
/// parts; a member may be in more than one until they merge.
struct ListParts {
    private let parts: Statement, read: Statement, write: Statement, drop: Statement

    init(_ db: SQLiteConnection) throws {
        let key = "site = ?1 AND prop = ?2 AND level = ?3 AND value = ?4 AND bucket = ?5"
        parts = try db.statement("SELECT part, members FROM report_lists WHERE \(key) ORDER BY part")
        read = try db.statement("SELECT members, list FROM report_lists WHERE \(key) AND part = ?6")
        write = try db.statement("""
            INSERT INTO report_lists(site, prop, level, value, bucket, part, members, list) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            ON CONFLICT DO UPDATE SET members = excluded.members, list = excluded.list
            """)
        drop = try db.statement("DELETE FROM report_lists WHERE \(key) AND part > ?6")
    }

    private func bind(_ s: Statement, _ key: [Int64]) {
        for (n, v) in key.enumerated() { s.bind(Int32(n + 1), v) }
    }

    /// Adds ascending, distinct `members` to the list of `key` (site, prop, level, value, bucket).
    func add(_ members: [Int64], key: [Int64]) throws {
        bind(parts, key)
        var existing: [(part: Int64, members: Int64)] = []
        while try parts.step() { existing.append((parts.int(0), parts.int(1))) }
        sqlite3_reset(parts.handle)
        var top = (part: (existing.last?.part ?? -1) + 1, list: members)
        var merged = false
        while let last = existing.last, Int64(top.list.count) * 2 >= last.members {
            bind(read, key)
            read.bind(6, last.part)
            guard try read.step() else { throw StoreError("report list part \(last.part) vanished") }
            let old = try MemberList.decode(read.blob(1), count: Int(read.int(0)))
            sqlite3_reset(read.handle)
            top = (last.part, MemberList.merge(old, top.list).list)
            existing.removeLast()
            merged = true
        }
        bind(write, key)
        write.bind(6, top.part)
        write.bind(7, Int64(top.list.count))
        write.bind(8, blob: MemberList.encode(top.list))
        try write.run()
        if merged {
            bind(drop, key)
            drop.bind(6, top.part)
            try drop.run()
        }
    }
}

extension SQLiteWriter {
    /// The `rolled_up` mark: every row with an id up to it is in the report rollups.
    static func rolledUp(_ db: SQLiteConnection) throws -> Int64 {
        let s = try db.statement("SELECT rolled_up FROM report_state")
        defer { sqlite3_reset(s.handle) }
        return try s.step() ? s.int(0) : 0
    }

    /// Rolls up to ``SQLiteReportRollup/batchRows`` rows above the mark, read from
    /// `event_rows`, in one write transaction; returns how many rows it read (0: up to date).
    /// Rows a purge covers or older than the rollup retention are left out, as loads leave
    /// them out.
    func rollUpReports(retention: RetentionPolicy) throws -> Int {
        try db.writeTransaction {
            let mark = try Self.rolledUp(db)
            let read = try db.statement("""
                SELECT \(SQLiteReportRollup.Row.columns) FROM event_rows e LEFT JOIN event_details d ON d.id = e.id WHERE e.id > ?1 ORDER BY e.id LIMIT ?2
                """)
            read.bind(1, mark)
            read.bind(2, Int64(SQLiteReportRollup.batchRows))
            let ids = try ReportIDs(db)
            let purges = try ReportPurges(db, retention: retention)
            var rollup = SQLiteReportRollup()
            var n = 0, last = mark
            var rows: [SQLiteReportRollup.Row] = []
            while try read.step() {
                n += 1
                last = read.int(0)
                if let row = SQLiteReportRollup.Row(read, ids: ids, purges: purges) { rows.append(row) }
            }
            sqlite3_reset(read.handle)
            guard n > 0 else { return 0 }
            let now = Timestamp.now()
            for r in rows { try rollup.add(r, now: now) }
            try rollup.flush(db, anonymousIDs: anonymousIDs)
            try dropOldMinutes(now: now)
            let set = try db.statement("UPDATE report_state SET rolled_up = ?1")
            set.bind(1, last)
            try set.run()
            return n
        }
    }

    /// Deletes minute rows twice ``ReportLevel/minuteWindow`` old, site by site (their rows
    /// are found by primary key).
    private func dropOldMinutes(now: Int64) throws {
        let before = ReportLevel.minute.bucket(now - 2 * ReportLevel.minuteWindow)
        let sites = try db.statement("SELECT id FROM sites")
        var ids: [Int64] = []
        while try sites.step() { ids.append(sites.int(0)) }
        sqlite3_reset(sites.handle)
        let counts = try db.statement("DELETE FROM report_counts WHERE site = ?1 AND prop = 0 AND level = 4 AND bucket < ?2")
        let lists = try db.statement("DELETE FROM report_lists WHERE site = ?1 AND prop = 0 AND level = 4 AND value = 0 AND bucket < ?2")
        for id in ids {
            for s in [counts, lists] {
                s.bind(1, id)
                s.bind(2, before)
                try s.run()
            }
        }
    }

    /// The `anon_visitors` id of each hash, added when new.
    func anonymousIDs(_ hashes: Set<Int64>) throws -> [Int64: Int64] {
        let add = try db.statement("INSERT INTO anon_visitors(hash) VALUES(?1) ON CONFLICT DO NOTHING")
        let find = try db.statement("SELECT id FROM anon_visitors WHERE hash = ?1")
        var out: [Int64: Int64] = [:]
        for h in hashes {
            add.bind(1, h)
            try add.run()
            find.bind(1, h)
            guard try find.step() else { throw StoreError("anonymous visitor neither added nor found") }
            out[h] = find.int(0)
            sqlite3_reset(find.handle)
        }
        return out
    }
}

/// Interned ids a report needs to tell rows apart: the `page_view` type, the empty user id.
struct ReportIDs {
    var pageView: Int64 = -1
    var emptyUser: Int64 = -1

    init(_ db: SQLiteConnection) throws {
        let t = try db.statement("SELECT id FROM event_types WHERE name = 'page_view'")
        if try t.step() { pageView = t.int(0) }
        sqlite3_reset(t.handle)
        let u = try db.statement("SELECT id FROM users WHERE name = ''")
        if try u.step() { emptyUser = u.int(0) }
        sqlite3_reset(u.handle)
    }
}

/// ``LoadFilter/dropped(_:cutAt:today:)`` for rows read by site id: the unfinished purges
/// (finished ones left no rows behind) and the rollup retention.
struct ReportPurges {
    private var bySite: [Int64: [SitePurge]] = [:]
    private let firstDay: Int64?

    init(_ db: SQLiteConnection, retention: RetentionPolicy) throws {
        let find = try db.statement("SELECT id FROM sites WHERE name = ?1")
        for p in try SQLiteLifecycle.purges(db, unfinishedOnly: true) {
            find.bind(1, p.site)
            if try find.step() { bySite[find.int(0), default: []].append(p) }
            sqlite3_reset(find.handle)
        }
        firstDay = retention.firstCountedDay(today: .today).map(Int64.init)
    }

    func drops(site: Int64, micros: Int64, cutAt: Int64) -> Bool {
        if let firstDay, micros / SQLiteSchema.microsPerDay < firstDay { return true }
        guard !bySite.isEmpty, let purges = bySite[site] else { return false }
        return purges.contains { $0.covers(timestamp: micros, cutAt: cutAt) }
    }
}

extension SQLiteReportRollup.Row {
    /// A row as a load appends it; nil for a bot.
    init?(_ r: SQLiteRow, _ extras: [SQLiteRowExtra]) {
        let x = r.extra >= 0 ? extras[Int(r.extra)] : nil
        if x?.bot == true { return nil }
        func v(_ id: Int64?) -> Int64 { max(id ?? 0, 0) }
        self.init(site: r.site, micros: r.timestamp, isView: r.isView,
                  values: PropValues(v(r.path), r.type, v(x?.referrer), v(x?.device), v(x?.browser), v(x?.os), v(x?.utmSource), v(x?.utmMedium), v(x?.utmCampaign)),
                  member: r.countsAsUser ? 2 * r.user : -1,
                  hash: r.countsAsUser ? 0 : Int64(bitPattern: x?.visitor ?? 0))
    }
}

/// A sorted list of member ids as a blob: each id's difference from the one before, as a
/// LEB128 varint (ids of one set are a few bytes apart on average).
enum MemberList {
    static func encode(_ ids: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 3)
        var previous: Int64 = 0
        for id in ids {
            var d = UInt64(id - previous)
            previous = id
            while d >= 0x80 {
                out.append(UInt8(d & 0x7F) | 0x80)
                d >>= 7
            }
            out.append(UInt8(d))
        }
        return out
    }

    static func decode(_ blob: UnsafeRawBufferPointer, count: Int) throws -> [Int64] {
        var out: [Int64] = []
        out.reserveCapacity(count)
        var previous: Int64 = 0, d: UInt64 = 0, shift: UInt64 = 0
        for byte in blob {
            d |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 != 0 {
                shift += 7
                guard shift < 64 else { throw StoreError("member list: varint too long") }
                continue
            }
            previous += Int64(bitPattern: d)
            out.append(previous)
            (d, shift) = (0, 0)
        }
        guard out.count == count, shift == 0 else { throw StoreError("member list: \(out.count) members, row says \(count)") }
        return out
    }

    /// The union of a sorted list and ascending ids; how many ids were new, and how many of
    /// those even.
    static func merge(_ old: [Int64], _ adding: some Sequence<Int64>) -> (list: [Int64], added: Int, addedEven: Int) {
        var out: [Int64] = []
        out.reserveCapacity(old.count + 16)
        var i = 0, added = 0, even = 0
        for id in adding {
            while i < old.count, old[i] < id {
                out.append(old[i])
                i += 1
            }
            if i < old.count, old[i] == id { continue }
            out.append(id)
            added += 1
            if id & 1 == 0 { even += 1 }
        }
        out.append(contentsOf: old[i...])
        return (out, added, even)
    }
}
