import CSQLite
import TallyCore

/// The bare SQLite append rate of this machine for Tally's event rows: prepared inserts into
/// an index-free `events` table, one transaction per batch, the same pragmas as the store.
/// `make bench` prints every ingest mode as a fraction of it.
public enum AppendCeiling {
    /// Returns events per second for appending `events` rows in batches of `batch`.
    public static func measure(path: String, events: [Event], batch: Int) throws -> Double {
        let db = try SQLiteConnection(path: path)
        try db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        try db.exec("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, site_id TEXT NOT NULL, event_type TEXT NOT NULL, path TEXT, user_id TEXT, event_ts INTEGER NOT NULL, ingested_at INTEGER NOT NULL)")
        let start = Timestamp.now()
        var i = 0
        while i < events.count {
            try db.exec("BEGIN IMMEDIATE")
            let insert = try db.statement("INSERT INTO events(site_id, event_type, path, user_id, event_ts, ingested_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
            for e in events[i..<min(events.count, i + batch)] {
                insert.bind(1, e.siteID)
                insert.bind(2, e.eventType)
                insert.bind(3, e.path)
                insert.bind(4, e.userID)
                insert.bind(5, e.timestamp)
                insert.bind(6, start)
                try insert.run()
            }
            try db.exec("COMMIT")
            i += batch
        }
        let elapsed = Double(Timestamp.now() - start) / 1e6
        return Double(events.count) / elapsed
    }
}
