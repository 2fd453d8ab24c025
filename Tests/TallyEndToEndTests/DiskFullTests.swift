import Foundation
import Testing
import TallyClient

/// The store's disk fills up under a running collector: events are still accepted into the
/// spool (on its own filesystem here), loading pauses with the reason in `/health`, and
/// resumes by itself once space is freed, losing nothing. Real filesystems of a fixed size
/// (tmpfs mounts), so this runs as root, as CI does.
@Suite(.serialized, .enabled(if: getuid() == 0)) struct DiskFullTests {
    static func mount(_ dir: String, megabytes: Int) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try runProcess("/usr/bin/env", ["mount", "-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", dir])
        #expect(r.status == 0, "mount: \(r.stderr)")
    }

    static func unmount(_ dir: String) {
        _ = try? runProcess("/usr/bin/env", ["umount", "-l", dir])
    }

    static func freeBytes(_ dir: String) -> Int {
        var s = statvfs()
        guard statvfs(dir, &s) == 0 else { return 0 }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    @Test func aFullStoreDiskPausesLoadingAndResumesWhenFreed() async throws {
        let base = NSTemporaryDirectory() + "tally-full-" + UUID().uuidString
        try Self.mount(base, megabytes: 8)
        defer {
            Self.unmount(base + "/spool")
            Self.unmount(base)
            try? FileManager.default.removeItem(atPath: base)
        }
        try Self.mount(base + "/spool", megabytes: 256)
        let s = try await TestServer.start(dataDirectory: base)
        let c = try await s.http()
        // The store's filesystem left with about 256 KiB.
        let filler = base + "/filler"
        try Data(count: max(0, Self.freeBytes(base) - 256 << 10)).write(to: URL(fileURLWithPath: filler))

        var sent = 0
        for i in 0..<100 {
            let body = "[" + (0..<200).map { j in eventJSON(site: "full", path: "/a-rather-long-path/to-fill-pages/\(i)/\(j)", user: "u\(j)") }
                .joined(separator: ",") + "]"
            let r = try await c.request(.POST, "/events?ack=durable", body: body, headers: [])
            #expect(r.status == 202, "\(r.status) \(r.body)")
            sent += 200
        }
        // Everything was acknowledged (durable in the spool); loading stopped, and says why.
        try await SitesEndToEndTests.eventually("health names the full disk", timeout: .seconds(20)) {
            let h = try json(try await c.get("/health").body)
            return (h["store_error"] as? String)?.contains("full") == true && h["status"] as? String == "degraded"
        }
        let stored = try json(try await c.get("/stats?site_id=full").body)["total_views"] as? Int ?? -1
        #expect(stored < sent)

        try FileManager.default.removeItem(atPath: filler)
        _ = try await s.waitForStats(c, "site_id=full", timeout: .seconds(30)) { $0["total_views"] as? Int == sent }
        try await SitesEndToEndTests.eventually("health is clear again", timeout: .seconds(10)) {
            try json(try await c.get("/health").body)["store_error"] is NSNull
        }
        await c.close()
        try await s.stop()
    }
}
