import CSQLite
import Foundation
import NIOCore
import Testing
import TallyClient
import TallyCore
import TallyTestSupport
import TallyWire

/// `tally backup` and `tally restore`, run as the binary against a running collector's data
/// directory; a PostgreSQL store dumped and restored with pg_dump.
@Suite(.serialized) struct BackupEndToEndTests {
    static let sites = (0..<12).map { "backup-\($0)" }

    /// Every site's numbers, all time and for the day the events fall on.
    static func numbers(_ s: TestServer, _ sites: [String]) async throws -> [String: String] {
        let c = try await s.http()
        var out: [String: String] = [:]
        for site in sites {
            out[site] = try await c.get("/stats?site_id=\(site)").body
            out[site + "@day"] = try await c.get("/stats?site_id=\(site)&date=2025-11-14").body
        }
        await c.close()
        return out
    }

    /// Waits until every site's all-time views reach `views` (loading is done).
    static func loaded(_ s: TestServer, views: [String: Int]) async throws {
        let c = try await s.http()
        let deadline = ContinuousClock.now + .seconds(60)
        for (site, n) in views.sorted(by: { $0.key < $1.key }) {
            let left = max(deadline - ContinuousClock.now, .milliseconds(100))
            _ = try await s.waitForStats(c, "site_id=\(site)", timeout: left) { $0["total_views"] as? Int == n }
        }
        await c.close()
    }

    /// Sends `rounds` acknowledged frames of 800 events to every site; returns once all are durable.
    static func send(_ s: TestServer, rounds: Range<Int>, _ views: inout [String: Int]) async throws {
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        var seq: UInt64 = 0
        for round in rounds {
            for site in Self.sites {
                seq += 1
                try await tcp.send(frames(site: site, count: 800, pathMod: 7 + round % 5, sequence: seq, ack: true))
                views[site, default: 0] += 800
            }
        }
        try await tcp.waitForAck(seq, timeout: .seconds(60))
        await tcp.close()
    }

    @Test func aBackupTakenUnderLoadRestoresTheSameNumbers() async throws {
        let a = try await TestServer.start()
        defer { a.removeData() }
        var views: [String: Int] = [:]
        try await Self.send(a, rounds: 0..<10, &views)
        try await Self.loaded(a, views: views)
        let stored = views.values.reduce(0, +)
        // Another connection holds SQLite's write lock: what comes now is acknowledged (in the
        // spool) but cannot be loaded, so the backup must take it from the spool. Readers, and
        // the backup's copy of the store, are not blocked by it.
        var db: OpaquePointer?
        #expect(sqlite3_open(a.dataDirectory + "/tally.sqlite", &db) == SQLITE_OK)
        // The server's loader or rollups may be mid-transaction: wait for them as they would.
        sqlite3_busy_timeout(db, 30_000)
        #expect(sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        try await Self.send(a, rounds: 10..<15, &views)
        // More events keep arriving while the backup runs (for a site of their own).
        let late = Task {
            let c = try await WireTCPClient.connect(host: "127.0.0.1", port: a.endpoints.wirePort)
            for i in 0..<100 {
                try await c.send(frames(site: "backup-late", count: 500, sequence: UInt64(i + 1)))
                try await Task.sleep(for: .milliseconds(2))
            }
            await c.close()
        }
        let dest = NSTemporaryDirectory() + "tally-backup-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dest) }
        let backup = try SitesEndToEndTests.cli(["backup", dest, "--data-dir", a.dataDirectory])
        #expect(backup.status == 0, "\(backup.stderr)")
        try await late.value
        #expect(sqlite3_exec(db, "COMMIT", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        let manifest = try json(String(decoding: FileManager.default.contents(atPath: dest + "/manifest.json") ?? Data(), as: UTF8.self))
        #expect((manifest["store"] as? [String: Any])?["stored_events"] as? Int == stored, "\(manifest)")
        #expect(manifest["spooled_events"] as? Int ?? 0 >= views.values.reduce(0, +) - stored, "\(manifest)")

        let restoredDir = NSTemporaryDirectory() + "tally-restored-" + UUID().uuidString
        let restore = try SitesEndToEndTests.cli(["restore", dest, "--data-dir", restoredDir])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("\(stored) stored events"))
        let b = try await TestServer.start(dataDirectory: restoredDir)
        defer { b.removeData() }
        try await Self.loaded(a, views: views)
        try await Self.loaded(b, views: views)
        let before = try await Self.numbers(a, Self.sites)
        let after = try await Self.numbers(b, Self.sites)
        #expect(before == after)
        try await a.stop()
        try await b.stop()
    }

    @Test func restoreRefusesWhatDoesNotCheckOut() async throws {
        let a = try await TestServer.start()
        defer { a.removeData() }
        let c = try await a.http()
        #expect(try await c.request(.POST, "/event?ack=durable", body: eventJSON(site: "small"), headers: []).status == 202)
        _ = try await a.waitForStats(c, "site_id=small") { $0["total_views"] as? Int == 1 }
        await c.close()
        let root = NSTemporaryDirectory() + "tally-backup-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dest = root + "/b"
        #expect(try SitesEndToEndTests.cli(["backup", dest, "--data-dir", a.dataDirectory]).status == 0)
        let again = try SitesEndToEndTests.cli(["backup", dest, "--data-dir", a.dataDirectory])
        #expect(again.status != 0 && again.stderr.contains("exists"))
        try await a.stop()
        for command in ["backup", "restore"] {
            let postgres = try SitesEndToEndTests.cli([command, root + "/pg", "--store", "postgres://u@127.0.0.1:1/db"])
            #expect(postgres.status != 0 && postgres.stderr.contains("pg_dump"), "\(command): \(postgres.stderr)")
        }
        let nowhere = try SitesEndToEndTests.cli(["backup", root + "/nowhere", "--data-dir", root + "/no-such-data"])
        #expect(nowhere.status != 0 && nowhere.stderr.contains("no store at"))
        #expect(!FileManager.default.fileExists(atPath: root + "/no-such-data"))
        // A spool file the loader would set aside is left out, and counted.
        try Data("TLSP garbage".utf8).write(to: URL(fileURLWithPath: a.dataDirectory + "/spool/bad.batch"))
        let withBad = try SitesEndToEndTests.cli(["backup", root + "/with-bad", "--data-dir", a.dataDirectory])
        #expect(withBad.status == 0, "\(withBad.stderr)")
        let badManifest = try json(try String(contentsOfFile: root + "/with-bad/manifest.json", encoding: .utf8))
        #expect(badManifest["unreadable_batches"] as? Int == 1 && badManifest["spooled_batches"] as? Int == 0)
        #expect(SpoolListing.batches(root + "/with-bad/spool").isEmpty)

        /// A copy of the good backup, spoiled by `spoil`; restore must refuse it with `reason`.
        func refused(_ name: String, _ reason: String, target: String? = nil, _ spoil: (String) throws -> Void) throws {
            let copy = root + "/" + name
            try FileManager.default.copyItem(atPath: dest, toPath: copy)
            try spoil(copy)
            let into = target ?? root + "/into-" + name
            let r = try SitesEndToEndTests.cli(["restore", copy, "--data-dir", into])
            #expect(r.status != 0 && r.stderr.contains(reason), "\(name): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: into + "/tally.sqlite") || target != nil, "\(name) wrote a store")
        }
        try refused("no-manifest", "is not a finished backup") { try FileManager.default.removeItem(atPath: $0 + "/manifest.json") }
        try refused("damaged-store", "does not check out") { dir in
            let h = try #require(FileHandle(forUpdatingAtPath: dir + "/tally.sqlite"))
            let size = try h.seekToEnd()
            try h.seek(toOffset: size / 2)
            try h.write(contentsOf: Data(repeating: 0xA5, count: 4096))
            try h.close()
        }
        try refused("wrong-count", "its manifest says") { dir in
            let text = try String(contentsOfFile: dir + "/manifest.json", encoding: .utf8)
            try text.replacingOccurrences(of: "\"stored_events\" : 1", with: "\"stored_events\" : 2")
                .write(toFile: dir + "/manifest.json", atomically: true, encoding: .utf8)
        }
        try refused("bad-spool", "does not check out") { dir in
            try FileManager.default.createDirectory(atPath: dir + "/spool", withIntermediateDirectories: true)
            try Data("TLSP garbage".utf8).write(to: URL(fileURLWithPath: dir + "/spool/x.batch"))
        }
        // A data directory in use (it has a store) is never overwritten.
        let used = root + "/used"
        try FileManager.default.createDirectory(atPath: used, withIntermediateDirectories: true)
        try Data("in use".utf8).write(to: URL(fileURLWithPath: used + "/tally.sqlite"))
        try refused("in-use", "restore into a new or empty data directory", target: used) { _ in }
        #expect(try String(contentsOfFile: used + "/tally.sqlite", encoding: .utf8) == "in use")
        // The good backup restores.
        #expect(try SitesEndToEndTests.cli(["restore", dest, "--data-dir", root + "/good"]).status == 0)
        // A restore cut short (its marker still there, a partial store) is refused by `serve`,
        // and a second restore starts it over.
        let cut = root + "/cut"
        try FileManager.default.createDirectory(atPath: cut + "/spool", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: cut + "/restore-incomplete"))
        try Data("half a store".utf8).write(to: URL(fileURLWithPath: cut + "/tally.sqlite"))
        await #expect(throws: (any Error).self) { _ = try await TestServer.start(dataDirectory: cut) }
        let redo = try SitesEndToEndTests.cli(["restore", dest, "--data-dir", cut])
        #expect(redo.status == 0, "\(redo.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cut + "/restore-incomplete"))
        let restarted = try await TestServer.start(dataDirectory: cut)
        let rc = try await restarted.http()
        _ = try await restarted.waitForStats(rc, "site_id=small") { $0["total_views"] as? Int == 1 }
        await rc.close()
        try await restarted.stop()
    }

    /// PostgreSQL has its own tools: a dump restored into another database serves the same numbers.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] != nil))
    func aPostgreSQLDumpRestoresTheSameNumbers() async throws {
        let source = try await PostgresTestDatabase.create(prefix: "dump")
        let a = try await TestServer.start { $0.storeURL = source }
        defer { a.removeData() }
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: a.endpoints.wirePort)
        var views: [String: Int] = [:]
        for (i, site) in Self.sites.prefix(4).enumerated() {
            try await tcp.send(frames(site: site, count: 300 + i, sequence: UInt64(i + 1), ack: true))
            views[site] = 300 + i
        }
        try await tcp.waitForAck(4)
        await tcp.close()
        try await Self.loaded(a, views: views)
        let before = try await Self.numbers(a, Array(Self.sites.prefix(4)))
        try await a.stop()

        let file = NSTemporaryDirectory() + "tally-dump-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: file) }
        let dump = try runProcess("/usr/bin/env", ["pg_dump", "--format=custom", "--file", file, source])
        #expect(dump.status == 0, "\(dump.stderr)")
        let target = try await PostgresTestDatabase.create(prefix: "restored")
        let restore = try runProcess("/usr/bin/env", ["pg_restore", "--no-owner", "--dbname", target, file])
        #expect(restore.status == 0, "\(restore.stderr)")
        let b = try await TestServer.start { $0.storeURL = target }
        defer { b.removeData() }
        #expect(try await Self.numbers(b, Array(Self.sites.prefix(4))) == before)
        try await b.stop()
    }
}

enum SpoolListing {
    static func batches(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".batch") }
    }
}

/// One collector per data directory (`DataDirectoryLock`).
@Suite struct DataDirectoryLockTests {
    @Test func aSecondCollectorOnTheSameDirectoryIsRefusedUntilTheFirstStops() async throws {
        let a = try await TestServer.start()
        defer { a.removeData() }
        do {
            let b = try await TestServer.start(dataDirectory: a.dataDirectory)
            Issue.record("a second collector started on \(a.dataDirectory)")
            try await b.stop()
        } catch {
            #expect("\(error)".contains("in use by another tally process (pid \(getpid()))"), "\(error)")
        }
        // A restore into it is refused while the collector runs, whatever else it finds there.
        let dest = NSTemporaryDirectory() + "tally-backup-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dest) }
        #expect(try SitesEndToEndTests.cli(["backup", dest, "--data-dir", a.dataDirectory]).status == 0)
        let restore = try SitesEndToEndTests.cli(["restore", dest, "--data-dir", a.dataDirectory])
        #expect(restore.status != 0 && restore.stderr.contains("in use by another tally process"), "\(restore.stderr)")
        try await a.stop()
        // Stopped (the object still alive), the directory is free again.
        let c = try await TestServer.start(dataDirectory: a.dataDirectory)
        try await c.stop()
    }
}
