import Foundation
import Testing
import TallyCore
@testable import TallyCLI

@Suite struct StoreCeilingTests {
    @Test func appendCeilingMeasuresARate() throws {
        let dir = NSTemporaryDirectory() + "tally-ceiling-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let events = (0..<6).map { Event(siteID: "s", eventType: "page_view", path: "/\($0 % 2)", userID: "u\($0)", timestamp: Int64($0)) }
        let rate = try AppendCeiling.measure(path: dir + "/c.sqlite", events: events, batch: 4)
        #expect(rate > 0)
        // Every row went in.
        #expect(try sqliteCount(dir + "/c.sqlite") == 6)
    }
}

import CSQLite

func sqliteCount(_ path: String) throws -> Int64 {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw CancellationError() }
    defer { sqlite3_close_v2(db) }
    var s: OpaquePointer?
    guard sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &s, nil) == SQLITE_OK else { throw CancellationError() }
    defer { sqlite3_finalize(s) }
    guard sqlite3_step(s) == SQLITE_ROW else { throw CancellationError() }
    return sqlite3_column_int64(s, 0)
}
