import TallyCore

/// The registry in the SQLite file: changes on the writer connection (a CLI in another process
/// waits for the server's load transaction through the busy timeout), reads on the reader.
extension SQLiteStore: SiteRegistryStore {
    public func registryVersion() async throws -> Int64 {
        try await onReader { db in
            let s = try db.statement("SELECT version FROM registry_version")
            return try s.step() ? s.int(0) : 0
        }
    }

    public func registeredSites() async throws -> (version: Int64, sites: [SiteRecord]) {
        try await onReadTransaction { db in
            let v = try db.statement("SELECT version FROM registry_version")
            let version = try v.step() ? v.int(0) : 0
            // By bytes: two ids that differ only in Unicode normalisation are two sites.
            var keys: [ExactString: [SiteKeyRecord]] = [:]
            let k = try db.statement("SELECT site_id, id, kind, hash, created_at FROM site_keys ORDER BY site_id, created_at, id")
            while try k.step() {
                guard let kind = SiteKeyRecord.Kind(rawValue: k.text(2)) else { continue }
                keys[ExactString(k.text(0)), default: []].append(SiteKeyRecord(id: k.text(1), kind: kind, hash: k.text(3), createdAt: k.int(4)))
            }
            var sites: [SiteRecord] = []
            let s = try db.statement("SELECT id, origins, coalesce(rate, -1), created_at, updated_at, coalesce(raw_retention_days, -1) FROM registered_sites ORDER BY id")
            while try s.step() {
                let id = s.text(0)
                let origins = s.text(1).split(separator: "\n").map(String.init)
                let rate = s.int(2), days = s.int(5)
                sites.append(SiteRecord(id: id, origins: origins, rate: rate < 0 ? nil : Int(rate), rawRetentionDays: days < 0 ? nil : Int(days),
                                        keys: keys[ExactString(id)] ?? [],
                                        createdAt: s.int(3), updatedAt: s.int(4)))
            }
            return (version, sites)
        }
    }

    public func apply(_ change: SiteRegistryChange) async throws {
        try await onWriter { w in
            let db = w.db
            try db.writeTransaction {
                try Self.apply(change, db)
                try db.statement("UPDATE registry_version SET version = version + 1").run()
            }
        }
    }

    private static func exists(_ id: String, _ db: SQLiteConnection) throws -> Bool {
        let s = try db.statement("SELECT 1 FROM registered_sites WHERE id = ?1")
        s.bind(1, id)
        defer { db.resetAll() }
        return try s.step()
    }

    private static func apply(_ change: SiteRegistryChange, _ db: SQLiteConnection) throws {
        switch change {
        case .add(let site):
            if try exists(site.id, db) { throw SiteRegistryError.siteExists(site.id) }
            let s = try db.statement("""
                INSERT INTO registered_sites(id, origins, rate, created_at, updated_at, raw_retention_days)
                VALUES(?1, ?2, CAST(?3 AS INTEGER), ?4, ?5, CAST(?6 AS INTEGER))
                """)
            s.bind(1, site.id); s.bind(2, site.origins.joined(separator: "\n")); s.bind(3, site.rate.map { String($0) })
            s.bind(4, site.createdAt); s.bind(5, site.updatedAt); s.bind(6, site.rawRetentionDays.map { String($0) })
            try s.run()
            for key in site.keys { try addKey(site.id, key, db) }
        case .update(let id, let origins, let rate, let days, let at):
            guard try exists(id, db) else { throw SiteRegistryError.noSuchSite(id) }
            if let origins {
                let s = try db.statement("UPDATE registered_sites SET origins = ?2 WHERE id = ?1")
                s.bind(1, id); s.bind(2, origins.joined(separator: "\n"))
                try s.run()
            }
            if let rate {
                let s = try db.statement("UPDATE registered_sites SET rate = CAST(?2 AS INTEGER) WHERE id = ?1")
                s.bind(1, id); s.bind(2, rate.map { String($0) })
                try s.run()
            }
            if let days {
                let s = try db.statement("UPDATE registered_sites SET raw_retention_days = CAST(?2 AS INTEGER) WHERE id = ?1")
                s.bind(1, id); s.bind(2, days.map { String($0) })
                try s.run()
            }
            try touch(id, at, db)
        case .remove(let id):
            guard try exists(id, db) else { throw SiteRegistryError.noSuchSite(id) }
            for sql in ["DELETE FROM site_keys WHERE site_id = ?1", "DELETE FROM registered_sites WHERE id = ?1"] {
                let s = try db.statement(sql)
                s.bind(1, id)
                try s.run()
            }
        case .addKey(let siteID, let key):
            guard try exists(siteID, db) else { throw SiteRegistryError.noSuchSite(siteID) }
            try addKey(siteID, key, db)
            try touch(siteID, key.createdAt, db)
        case .revokeKey(let siteID, let idOrHash):
            guard try exists(siteID, db) else { throw SiteRegistryError.noSuchSite(siteID) }
            let s = try db.statement("DELETE FROM site_keys WHERE site_id = ?1 AND (id = ?2 OR hash = ?2) RETURNING id")
            s.bind(1, siteID); s.bind(2, idOrHash)
            let found = try s.step()
            db.resetAll()
            guard found else { throw SiteRegistryError.noSuchKey(site: siteID, key: idOrHash) }
        }
    }

    private static func addKey(_ siteID: String, _ key: SiteKeyRecord, _ db: SQLiteConnection) throws {
        let s = try db.statement("INSERT INTO site_keys(id, site_id, kind, hash, created_at) VALUES(?1, ?2, ?3, ?4, ?5)")
        s.bind(1, key.id); s.bind(2, siteID); s.bind(3, key.kind.rawValue); s.bind(4, key.hash); s.bind(5, key.createdAt)
        try s.run()
    }

    private static func touch(_ id: String, _ at: Int64, _ db: SQLiteConnection) throws {
        let s = try db.statement("UPDATE registered_sites SET updated_at = max(updated_at, ?2) WHERE id = ?1")
        s.bind(1, id); s.bind(2, at)
        try s.run()
    }
}
