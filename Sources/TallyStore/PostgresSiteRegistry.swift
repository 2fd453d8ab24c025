import Logging
import PostgresNIO
import TallyCore

/// The registry in the shared database: a site or key added through one collector (or the CLI)
/// reaches every collector polling `registry_version`.
extension PostgresStore: SiteRegistryStore {
    public func registryVersion() async throws -> Int64 {
        try await preparedOnce()
        let logger = self.logger
        return try await bounded("registry") { client in
            var v: Int64 = 0
            for try await x in try await client.query("SELECT version FROM registry_version", logger: logger).decode(Int64.self) { v = x }
            return v
        }
    }

    public func registeredSites() async throws -> (version: Int64, sites: [SiteRecord]) {
        try await preparedOnce()
        let logger = self.logger
        return try await bounded("registry") { client in
            try await client.withConnection { conn in
                try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                do {
                    var version: Int64 = 0
                    for try await x in try await conn.query("SELECT version FROM registry_version", logger: logger).decode(Int64.self) { version = x }
                    // By bytes: two ids that differ only in Unicode normalisation are two sites.
                    var keys: [ExactString: [SiteKeyRecord]] = [:]
                    for try await (site, id, kind, hash, created) in try await conn.query("""
                        SELECT site_id, id, kind, hash, (extract(epoch FROM created_at) * 1000000)::bigint FROM site_keys
                        ORDER BY site_id, created_at, id
                        """, logger: logger).decode((String, String, String, String, Int64).self) {
                        guard let kind = SiteKeyRecord.Kind(rawValue: kind) else { continue }
                        keys[ExactString(site), default: []].append(SiteKeyRecord(id: id, kind: kind, hash: hash, createdAt: created))
                    }
                    var sites: [SiteRecord] = []
                    for try await (id, origins, rate, created, updated, days) in try await conn.query("""
                        SELECT id, origins, rate, (extract(epoch FROM created_at) * 1000000)::bigint,
                               (extract(epoch FROM updated_at) * 1000000)::bigint, raw_retention_days
                        FROM registered_sites ORDER BY id COLLATE "C"
                        """, logger: logger).decode((String, [String], Int32?, Int64, Int64, Int32?).self) {
                        sites.append(SiteRecord(id: PostgresName.name(id), origins: origins, rate: rate.map(Int.init), rawRetentionDays: days.map(Int.init),
                                                keys: keys[ExactString(id)] ?? [], createdAt: created, updatedAt: updated))
                    }
                    try await conn.query("COMMIT", logger: logger)
                    return (version, sites)
                } catch {
                    _ = try? await conn.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    public func apply(_ change: SiteRegistryChange) async throws {
        try await preparedOnce()
        let logger = self.logger
        // A registry error is the caller's answer, not an outage: it must not retire the pool.
        let outcome: SiteRegistryError? = try await bounded("registry change") { client in
            try await client.withTransaction(logger: logger) { conn in
                do {
                    try await Self.apply(change, conn, logger)
                } catch let e as SiteRegistryError {
                    return e
                }
                try await conn.query("UPDATE registry_version SET version = version + 1", logger: logger)
                return nil
            }
        }
        if let outcome { throw outcome }
    }

    private static func exists(_ id: String, _ conn: PostgresConnection, _ logger: Logger) async throws -> Bool {
        for try await _ in try await conn.query("SELECT 1 FROM registered_sites WHERE id = \(id) FOR UPDATE", logger: logger) { return true }
        return false
    }

    private static func apply(_ change: SiteRegistryChange, _ conn: PostgresConnection, _ logger: Logger) async throws {
        switch change {
        case .add(let site):
            let id = PostgresName.stored(site.id)
            var added = false
            for try await _ in try await conn.query("""
                INSERT INTO registered_sites(id, origins, rate, created_at, updated_at, raw_retention_days)
                VALUES (\(id), \(site.origins), \(site.rate.map { Int32(clamping: $0) }), \(PostgresTimestamp(site.createdAt)), \(PostgresTimestamp(site.updatedAt)),
                        \(site.rawRetentionDays.map { Int32(clamping: $0) }))
                ON CONFLICT DO NOTHING RETURNING id
                """, logger: logger) { added = true }
            guard added else { throw SiteRegistryError.siteExists(site.id) }
            for key in site.keys { try await addKey(id, key, conn, logger) }
        case .update(let name, let origins, let rate, let days, let at):
            let id = PostgresName.stored(name)
            guard try await exists(id, conn, logger) else { throw SiteRegistryError.noSuchSite(name) }
            if let origins {
                try await conn.query("UPDATE registered_sites SET origins = \(origins) WHERE id = \(id)", logger: logger)
            }
            if let rate {
                try await conn.query("UPDATE registered_sites SET rate = \(rate.map { Int32(clamping: $0) }) WHERE id = \(id)", logger: logger)
            }
            if let days {
                try await conn.query("UPDATE registered_sites SET raw_retention_days = \(days.map { Int32(clamping: $0) }) WHERE id = \(id)", logger: logger)
            }
            try await touch(id, at, conn, logger)
        case .remove(let name):
            let id = PostgresName.stored(name)
            var removed = false
            for try await _ in try await conn.query("DELETE FROM registered_sites WHERE id = \(id) RETURNING id", logger: logger) { removed = true }
            guard removed else { throw SiteRegistryError.noSuchSite(name) }
        case .addKey(let name, let key):
            let id = PostgresName.stored(name)
            guard try await exists(id, conn, logger) else { throw SiteRegistryError.noSuchSite(name) }
            try await addKey(id, key, conn, logger)
            try await touch(id, key.createdAt, conn, logger)
        case .revokeKey(let name, let idOrHash):
            let id = PostgresName.stored(name)
            guard try await exists(id, conn, logger) else { throw SiteRegistryError.noSuchSite(name) }
            var revoked = false
            for try await _ in try await conn.query("""
                DELETE FROM site_keys WHERE site_id = \(id) AND (id = \(idOrHash) OR hash = \(idOrHash)) RETURNING id
                """, logger: logger) { revoked = true }
            guard revoked else { throw SiteRegistryError.noSuchKey(site: name, key: idOrHash) }
        }
    }

    private static func addKey(_ storedSite: String, _ key: SiteKeyRecord, _ conn: PostgresConnection, _ logger: Logger) async throws {
        try await conn.query("""
            INSERT INTO site_keys(id, site_id, kind, hash, created_at)
            VALUES (\(key.id), \(storedSite), \(key.kind.rawValue), \(key.hash), \(PostgresTimestamp(key.createdAt)))
            """, logger: logger)
    }

    private static func touch(_ storedSite: String, _ at: Int64, _ conn: PostgresConnection, _ logger: Logger) async throws {
        try await conn.query("""
            UPDATE registered_sites SET updated_at = greatest(updated_at, \(PostgresTimestamp(at)))
            WHERE id = \(storedSite)
            """, logger: logger)
    }
}
