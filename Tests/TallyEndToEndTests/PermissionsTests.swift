import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The data directory holds user ids and paths: 0700 directories and 0600 files, even under a
/// umask of 0 and over a directory an older version left open.
@Suite(.serialized) struct PermissionsTests {
    func mode(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : nil
    }

    func withUmask<T>(_ mask: mode_t, _ body: () async throws -> T) async rethrows -> T {
        let old = umask(mask)
        defer { umask(old) }
        return try await body()
    }

    @Test func everyDirectoryIs0700AndEveryFile0600() async throws {
        let dir = NSTemporaryDirectory() + "tally-perm-" + UUID().uuidString
        // An existing, world-readable data directory (as an older version left it).
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try await withUmask(0) {
            let s = try await TestServer.start(dataDirectory: dir)
            defer { s.removeData() }
            let c = try await s.http()
            #expect(try await c.post("/event", eventJSON(site: "perm", user: "u1")).status == 202)
            _ = try await s.waitForStats(c, "site_id=perm") { $0["total_views"] as? Int == 1 }
            for d in [dir, dir + "/spool", dir + "/spool/tmp", dir + "/spool/quarantine"] {
                #expect(mode(d) == 0o700, "\(d)")
            }
            for f in [dir + "/tally.sqlite", dir + "/tally.sqlite-wal", dir + "/tally.sqlite-shm", dir + "/instance-id"] {
                #expect(mode(f) == 0o600, "\(f): \(String(mode(f) ?? 0, radix: 8))")
            }
            await c.close()
            try await s.stop()
        }
    }

    /// Spool batch files, kept here because the store cannot be reached.
    @Test func spoolFilesAre0600() async throws {
        try await withUmask(0) {
            let s = try await TestServer.start { $0.storeURL = "postgres://nobody@127.0.0.1:1/none" }
            defer { s.removeData() }
            let c = try await s.http()
            #expect(try await c.post("/event?ack=durable", eventJSON(site: "perm")).status == 202)
            let spool = s.dataDirectory + "/spool"
            let files = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".batch") }
            #expect(!files.isEmpty)
            for f in files { #expect(mode(spool + "/" + f) == 0o600, "\(f)") }
            await c.close()
            await s.server.triggerGracefulShutdown()
            s.task.cancel()
        }
    }
}
