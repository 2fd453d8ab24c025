import CSQLite

/// Exact distinct-user sets, stored in chunks (the idea of Roaring bitmaps).
///
/// User ids are interned integers, so the users of a site on a day form a set of small
/// integers. Each set is split into chunks of 4096 ids (`user >> 12`); a chunk is one row with
/// its member count and its members: a sorted array of 16-bit offsets while it has fewer than
/// 256 (2 bytes a member), a 4096-bit bitmap (512 bytes) from 256 on. A load then rewrites one
/// row per (site, day, chunk) it touches, instead of inserting one B-tree row per user and day,
/// and `unique_users` is a sum of member counts.
enum UserChunk {
    static let shift = 12
    static let span = 1 << shift
    static let bitmapBytes = span / 8
    /// Below this many members a chunk is an array; from it on, a bitmap.
    static let arrayLimit = 256

    /// The members of a stored chunk, ascending. Throws on a blob that does not fit its count.
    static func members(_ blob: UnsafeRawBufferPointer, count: Int) throws -> [UInt16] {
        if count < arrayLimit {
            guard blob.count == count * 2 else { throw StoreError("user set chunk: \(blob.count) bytes for \(count) members") }
            return (0..<count).map { UInt16(blob[2 * $0]) | UInt16(blob[2 * $0 + 1]) << 8 }
        }
        guard blob.count == bitmapBytes else { throw StoreError("user set chunk: bitmap of \(blob.count) bytes") }
        var out: [UInt16] = []
        out.reserveCapacity(count)
        for byte in 0..<bitmapBytes where blob[byte] != 0 {
            for bit in 0..<8 where blob[byte] & (1 << bit) != 0 { out.append(UInt16(byte * 8 + bit)) }
        }
        guard out.count == count else { throw StoreError("user set chunk: bitmap has \(out.count) members, row says \(count)") }
        return out
    }

    /// The stored chunk with `adding` (ascending, distinct offsets) merged in, and how many
    /// of the offsets added are even; nil when every one of them was already a member.
    static func merge(_ stored: UnsafeRawBufferPointer?, count: Int, adding: ArraySlice<UInt16>) throws -> (blob: [UInt8], count: Int, addedEven: Int)? {
        if let stored, count >= arrayLimit {
            guard stored.count == bitmapBytes else { throw StoreError("user set chunk: bitmap of \(stored.count) bytes") }
            var bitmap = [UInt8](stored)
            var added = 0, even = 0
            for o in adding {
                let (byte, bit) = (Int(o) >> 3, UInt8(1) << (o & 7))
                if bitmap[byte] & bit == 0 {
                    bitmap[byte] |= bit
                    added += 1
                    if o & 1 == 0 { even += 1 }
                }
            }
            return added == 0 ? nil : (bitmap, count + added, even)
        }
        let old = try stored.map { try members($0, count: count) } ?? []
        // Union of two ascending lists.
        var union: [UInt16] = []
        union.reserveCapacity(old.count + adding.count)
        var i = old.startIndex, j = adding.startIndex
        var even = 0
        while i < old.endIndex || j < adding.endIndex {
            if j == adding.endIndex || (i < old.endIndex && old[i] < adding[j]) {
                union.append(old[i]); i += 1
            } else if i == old.endIndex || adding[j] < old[i] {
                if adding[j] & 1 == 0 { even += 1 }
                union.append(adding[j]); j += 1
            } else {
                union.append(old[i]); i += 1; j += 1
            }
        }
        if union.count == old.count { return nil }
        return (encode(union), union.count, even)
    }

    /// Ascending, distinct offsets as a chunk blob.
    static func encode(_ members: [UInt16]) -> [UInt8] {
        if members.count < arrayLimit {
            var blob = [UInt8](repeating: 0, count: members.count * 2)
            for (k, m) in members.enumerated() {
                blob[2 * k] = UInt8(truncatingIfNeeded: m)
                blob[2 * k + 1] = UInt8(truncatingIfNeeded: m >> 8)
            }
            return blob
        }
        var bitmap = [UInt8](repeating: 0, count: bitmapBytes)
        for m in members { bitmap[Int(m) >> 3] |= 1 << (m & 7) }
        return bitmap
    }
}

/// Writes user sets: `daily_user_sets` (site, day, chunk) and `site_user_sets` (site, chunk).
struct SQLiteUserSets {
    let db: SQLiteConnection

    /// Adds users to the sets. `entries` are ascending by (a, b): `a` is the key word (site and
    /// day packed, or the site), `b` the user id; `daily` picks the table.
    func add(_ entries: SQLiteRollup.Entries, daily: Bool) throws {
        let find = daily
            ? "SELECT members, bits FROM daily_user_sets WHERE site = ?1 AND day = ?2 AND chunk = ?3"
            : "SELECT members, bits FROM site_user_sets WHERE site = ?1 AND chunk = ?3"
        let write = daily
            ? "INSERT INTO daily_user_sets(site, day, chunk, members, bits) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET members = excluded.members, bits = excluded.bits"
            : "INSERT INTO site_user_sets(site, chunk, members, bits) VALUES(?1, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET members = excluded.members, bits = excluded.bits"
        // Prepared once: a load touches tens of thousands of chunks, and each statement(_:)
        // lookup hashes the SQL text.
        let s = try db.statement(find), w = try db.statement(write)
        var offsets: [UInt16] = []
        var k = 0
        while k < entries.count {
            let a = entries[k].a, chunk = entries[k].b >> UInt64(UserChunk.shift)
            offsets.removeAll(keepingCapacity: true)
            while k < entries.count, entries[k].a == a, entries[k].b >> UInt64(UserChunk.shift) == chunk {
                offsets.append(UInt16(truncatingIfNeeded: entries[k].b & UInt64(UserChunk.span - 1)))
                k += 1
            }
            let site = daily ? SQLiteRollup.site(a) : Int64(a)
            s.bind(1, site)
            if daily { s.bind(2, SQLiteRollup.day(a)) }
            s.bind(3, Int64(chunk))
            let merged: (blob: [UInt8], count: Int, addedEven: Int)?
            if try s.step() {
                let count = Int(s.int(0))
                merged = try UserChunk.merge(s.blob(1), count: count, adding: offsets[...])
            } else {
                merged = try UserChunk.merge(nil, count: 0, adding: offsets[...])
            }
            sqlite3_reset(s.handle)
            guard let merged else { continue }
            w.bind(1, site)
            if daily { w.bind(2, SQLiteRollup.day(a)) }
            w.bind(3, Int64(chunk))
            w.bind(4, Int64(merged.count))
            w.bind(5, blob: merged.blob)
            try w.run()
        }
    }

    /// Rebuilds both tables from `event_rows` (schema upgrades), a bounded slice at a time.
    func rebuild() throws {
        try db.exec("DELETE FROM daily_user_sets; DELETE FROM site_user_sets;")
        let scan = try db.statement("""
            SELECT site, event_ts / \(SQLiteSchema.microsPerDay), user FROM event_rows e
            WHERE user IS NOT NULL AND \(SQLiteSchema.counts) AND user <> coalesce((SELECT id FROM users WHERE name = ''), -1)
            """)
        var day = IDPairTable(), site = IDPairTable()
        func flush() throws {
            try add(day.sorted(), daily: true)
            try add(site.sorted(), daily: false)
            day.removeAll()
            site.removeAll()
        }
        while try scan.step() {
            let s = scan.int(0), u = UInt64(scan.int(2))
            day.add(IDPairTable.word(s, Int32(scan.int(1))), u)
            site.add(UInt64(s), u)
            if day.count >= 1 << 20 { try flush() }
        }
        sqlite3_reset(scan.handle)
        try flush()
    }

    /// Makes `site`'s all-time set the union of its daily sets again, after days were deleted.
    func rebuildSiteSet(_ site: Int64) throws {
        let drop = try db.statement("DELETE FROM site_user_sets WHERE site = ?1")
        drop.bind(1, site)
        try drop.run()
        let scan = try db.statement("SELECT chunk, members, bits FROM daily_user_sets WHERE site = ?1")
        scan.bind(1, site)
        var users = IDPairTable()
        while try scan.step() {
            let base = UInt64(scan.int(0)) << UInt64(UserChunk.shift)
            for m in try UserChunk.members(scan.blob(2), count: Int(scan.int(1))) { users.add(UInt64(site), base | UInt64(m)) }
        }
        sqlite3_reset(scan.handle)
        try add(users.sorted(), daily: false)
    }
}
