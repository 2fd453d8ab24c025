import ArgumentParser
import Foundation
import TallyCore
import TallyStore

/// `tally store-ceiling`: how fast this machine appends Tally's rows to SQLite with nothing
/// else running, and how fast the real store loads the same rows (rollups included). The
/// baseline `make bench` compares every ingest mode with.
public struct StoreCeiling: AsyncParsableCommand, AsyncCommandBody {
    public static let configuration = CommandConfiguration(
        commandName: "store-ceiling",
        abstract: "Measure plain SQLite appends and the store's batch load rate on this machine.")

    @Option(help: "Rows to insert.") var events: Int = 1_000_000
    @Option(help: "Rows per transaction.") var batch: Int = 8192
    @Option(help: "Spread the rows' timestamps over this many UTC days (more distinct user-day rows).") var days: Int = 1
    @Flag(help: "Measure only the store's batch loads.") var storeOnly = false
    @Option(help: "Directory for the scratch databases (removed afterwards).") var dir: String = NSTemporaryDirectory()
    @Flag(help: "Print JSON.") var json = false

    public init() {}

    public func body() async throws {
        var rng = SystemRandomNumberGenerator()
        let now = Timestamp.now()
        var rows: [Event] = []
        rows.reserveCapacity(events)
        for i in 0..<events {
            let type: String = i % 10 == 0 ? "click" : "page_view"
            let path = "/page/\(Int.random(in: 0..<200, using: &rng))"
            let user: String? = i % 5 == 0 ? nil : "user-\(Int.random(in: 0..<10_000, using: &rng))"
            let ts = days > 1 ? now - Int64.random(in: 0..<Int64(days) * 86_400_000_000, using: &rng) : now - Int64(i)
            rows.append(Event(siteID: "site-\(i % 10)", eventType: type, path: path, userID: user, timestamp: ts))
        }
        let base = dir + "/tally-ceiling-\(UUID().uuidString)"
        defer {
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: base + "-raw.sqlite" + suffix)
                try? FileManager.default.removeItem(atPath: base + "-store.sqlite" + suffix)
            }
        }
        let raw = storeOnly ? nil : try AppendCeiling.measure(path: base + "-raw.sqlite", events: rows, batch: batch)
        let store = try await StoreLoadRate.measure(path: base + "-store.sqlite", events: rows, batch: batch)
        if json {
            print("{" + (raw.map { "\"append_rows_per_s\":\(Int($0))," } ?? "") + "\"store_load_rows_per_s\":\(Int(store))}")
        } else if let raw {
            print("plain SQLite appends   \(Int(raw)) rows/s")
            print("store batch loads      \(Int(store)) rows/s (rollups included, \(String(format: "%.2f", store / raw)) of plain)")
        } else {
            print("store batch loads      \(Int(store)) rows/s (rollups included)")
        }
    }
}

/// Loads the rows through ``SQLiteStore`` in batches.
enum StoreLoadRate {
    static func measure(path: String, events: [Event], batch: Int) async throws -> Double {
        let store = SQLiteStore(path: path)
        try await store.prepare()
        let start = Timestamp.now()
        var i = 0, n = 0
        while i < events.count {
            n += 1
            _ = try await store.load(StoreBatch(id: "ceiling-\(n)", createdAt: start, events: Array(events[i..<min(events.count, i + batch)])))
            i += batch
        }
        let rate = Double(events.count) / (Double(Timestamp.now() - start) / 1e6)
        try await store.close()
        return rate
    }
}

/// The bare SQLite append rate of this machine for Tally's event rows: prepared inserts into
/// an index-free `events` table, one transaction per batch, the same pragmas as the store.
/// `make bench` prints every ingest mode as a fraction of it.
enum AppendCeiling {
    /// Returns events per second for appending `events` rows in batches of `batch`.
    static func measure(path: String, events: [Event], batch: Int) throws -> Double {
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
        return Double(events.count) / (Double(Timestamp.now() - start) / 1e6)
    }
}
