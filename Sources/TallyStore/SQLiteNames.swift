import CSQLite
import TallyCore

/// Interns the names of one dictionary table (`sites`, `paths`, …) as integer ids, with an
/// in-memory cache in front of it. Used only on the writer connection, inside a transaction.
///
/// Ids handed out during a transaction are staged, and join the cache only when it commits:
/// after a rollback they may not exist. Dictionary rows are never changed; a name sweep after a
/// purge deletes the ones nothing refers to and advances the store's generation, which the
/// writer reads at the start of every load and then forgets its cache (``forget()``), so a
/// cached id stays right even if another process writes the same file.
final class SQLiteNames {
    private let lookup: String
    private let insert: String
    private let limit: Int
    /// Keyed by bytes: `String` keys would give NFC and NFD spellings of a name one id.
    private var cached: [ExactString: Int64] = [:]
    private var staged: [ExactString: Int64] = [:]

    /// `limit`: entries kept in memory; past it the cache starts again empty (a miss costs
    /// one B-tree lookup, so forgetting is only slower, never wrong).
    init(table: String, limit: Int) {
        lookup = "SELECT id FROM \(table) WHERE name = ?1"
        insert = "INSERT INTO \(table)(name) VALUES(?1) ON CONFLICT DO NOTHING"
        self.limit = limit
    }

    func id(_ name: String, _ db: SQLiteConnection) throws -> Int64 {
        try id(ExactString(name), db)
    }

    func id(_ key: ExactString, _ db: SQLiteConnection) throws -> Int64 {
        if let id = cached[key] ?? staged[key] { return id }
        let name = key.string
        let add = try db.statement(insert)
        add.bind(1, name)
        try add.run()
        let id: Int64
        if sqlite3_changes(db.db) == 1 {
            id = sqlite3_last_insert_rowid(db.db)
        } else {
            let find = try db.statement(lookup)
            find.bind(1, name)
            guard try find.step() else { throw StoreError("name \(name) neither inserted nor found") }
            id = find.int(0)
            sqlite3_reset(find.handle)
        }
        staged[key] = id
        return id
    }

    func commit() {
        guard !staged.isEmpty else { return }
        if cached.count + staged.count > limit { cached.removeAll(keepingCapacity: true) }
        cached.merge(staged) { old, _ in old }
        staged.removeAll(keepingCapacity: true)
    }

    func rollback() { staged.removeAll(keepingCapacity: true) }

    func forget() {
        cached.removeAll()
        staged.removeAll()
    }
}
