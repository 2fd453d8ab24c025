import CSQLite
import Glibc
import TallyCore

/// A consistent copy of a live SQLite store, and the checks a copy must pass before it is put
/// back (`tally backup`, `tally restore`).
public enum SQLiteSnapshot {
    /// What a store file holds, as far as a backup's manifest says.
    public struct Facts: Sendable, Equatable, Codable {
        public var schemaVersion: Int
        public var events: Int64

        public init(schemaVersion: Int, events: Int64) {
            self.schemaVersion = schemaVersion
            self.events = events
        }

        enum CodingKeys: String, CodingKey {
            case schemaVersion = "schema_version"
            case events = "stored_events"
        }
    }

    /// Writes a compacted copy of the store at `source` to `destination` (a file that must not
    /// exist) with `VACUUM INTO`: one read transaction, so the copy is the store as of one
    /// commit, while the server's writer goes on (WAL readers do not block it). The copy is
    /// fsynced before this returns. Cost: one pass over the store, as large as its pages.
    public static func copy(_ source: String, to destination: String) throws {
        let db = try SQLiteConnection(path: existing(source))
        let vacuum = try db.statement("VACUUM INTO ?1")
        vacuum.bind(1, destination)
        do {
            try vacuum.run()
        } catch {
            unlink(destination)
            throw error
        }
        let fd = open(destination, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError("cannot open the copy \(destination)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError("cannot fsync the copy \(destination)") }
    }

    /// Checks a store file the way a restore must: SQLite's `integrity_check` (every page,
    /// index and constraint), then its schema version and event count. Throws naming the first
    /// problem.
    public static func check(_ path: String) throws -> Facts {
        let db = try SQLiteConnection(path: existing(path))
        let integrity = try db.statement("PRAGMA integrity_check")
        var problems: [String] = []
        while try integrity.step() { problems.append(integrity.text(0)) }
        guard problems == ["ok"] else {
            throw StoreError("\(path) is damaged: " + problems.prefix(5).joined(separator: "; "))
        }
        let version = try db.statement("PRAGMA user_version")
        let schema = try version.step() ? Int(version.int(0)) : 0
        // 0: a version-1 file, from before user_version was set.
        guard schema >= 0, schema <= SQLiteSchema.version else {
            throw StoreError("\(path) has schema version \(schema); this tally reads up to \(SQLiteSchema.version)")
        }
        let count = try db.statement("SELECT count(*) FROM event_rows")
        return Facts(schemaVersion: schema, events: try count.step() ? count.int(0) : 0)
    }

    /// `path`, if a file is there: opening a connection would create an empty store.
    static func existing(_ path: String) throws -> String {
        guard access(path, F_OK) == 0 else { throw StoreError("\(path) is missing") }
        return path
    }

    /// The batch ids a store file has loaded, among `ids`: a backup's spooled copies of these
    /// would only be skipped as duplicates when loaded, so they are left out.
    public static func loaded(_ ids: [String], in path: String) throws -> Set<String> {
        let db = try SQLiteConnection(path: existing(path))
        let find = try db.statement("SELECT 1 FROM loaded_batches WHERE batch_id = ?1")
        var out: Set<String> = []
        for id in ids {
            find.bind(1, id)
            if try find.step() { out.insert(id) }
            sqlite3_reset(find.handle)
        }
        return out
    }
}
