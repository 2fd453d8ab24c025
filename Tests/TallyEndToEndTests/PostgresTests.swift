import Foundation
import PostgresNIO
import Testing
import TallyLoad
import TallyTestSupport
@testable import TallyStore

/// Collectors on PostgreSQL; runs when `TALLY_TEST_POSTGRES` names a server (`make test`).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] != nil))
struct PostgresEndToEndTests {
    /// A fresh database on the server at `admin`.
    static func database(admin: String) async throws -> String {
        try await PostgresTestDatabase.create(prefix: "e2e")
    }

    func options(_ s: TestServer, _ mode: LoadMode, runID: String, seed: UInt64, events: Int) -> LoadOptions {
        var o = LoadOptions()
        o.mode = mode
        o.httpPort = s.endpoints.httpPort
        o.wirePort = s.endpoints.wirePort
        o.events = events
        o.connections = 3
        o.batch = 100
        o.seed = seed
        o.verifyTimeout = 60
        o.shape.runID = runID
        o.shape.sites = 3
        o.shape.paths = 40
        o.shape.users = 500
        return o
    }

    @Test func twoCollectorsShareOneDatabase() async throws {
        let url = try await Self.database(admin: ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"]!)
        let a = try await TestServer.start { $0.storeURL = url }
        let b = try await TestServer.start { $0.storeURL = url }
        defer { a.removeData(); b.removeData() }
        // Both collectors load the same sites concurrently, over different transports.
        async let ra = LoadRunner.run(options(a, .httpBatch, runID: "shared", seed: 1, events: 8000))
        async let rb = LoadRunner.run(options(b, .tcpAck, runID: "shared", seed: 2, events: 8000))
        var total = try await ra
        total.merge(try await rb)
        #expect(total.acceptedEvents == 16_000)
        // Either collector answers /stats for everything both loaded.
        for s in [a, b] {
            let v = try await LoadRunner.verify(options(s, .http, runID: "shared", seed: 0, events: 0), total)
            #expect(v.exact, "\(v.problems)")
        }
        try await a.stop()
        try await b.stop()
    }

    /// The database goes away mid-load (every connection killed, new ones refused for 1.5 s)
    /// and comes back: batches wait in the spool, ingestion and acks carry on, loading resumes.
    @Test func databaseOutageMidLoadLosesAndDuplicatesNothing() async throws {
        let admin = ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"]!
        let url = try await Self.database(admin: admin)
        let name = String(URLComponents(string: url)!.path.dropFirst())
        let s = try await TestServer.start {
            $0.storeURL = url
            $0.flushInterval = .milliseconds(20)
        }
        defer { s.removeData() }
        var o = options(s, .tcpAck, runID: "outage", seed: 5, events: 30_000)
        o.rate = 10_000  // three seconds of load, across the outage
        let load = Task { try await LoadRunner.run(o) }
        try await Task.sleep(for: .milliseconds(800))
        let control = try PostgresStore(url: admin)
        try await control.client.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(name) ALLOW_CONNECTIONS false"))
        try await control.client.query(PostgresQuery(unsafeSQL: "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'"))
        try await Task.sleep(for: .milliseconds(1500))
        let health = try await s.http()
        let during = try await health.get("/health").body
        try await control.client.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(name) ALLOW_CONNECTIONS true"))
        try await control.close()
        // While the store was down, /health said so, and batches waited in the spool.
        let h = try json(during)
        #expect(h["status"] as? String == "degraded", "\(during)")
        #expect(h["events_stored"] is NSNull)
        #expect((h["spool_backlog_files"] as? Int ?? 0) > 0)
        var result = try await load.value
        #expect(result.errors.isEmpty, "\(result.errors)")
        #expect(result.acceptedEvents == 30_000)
        result.verification = try await LoadRunner.verify(o, result)
        #expect(result.verification?.exact == true, "\(result.verification?.problems ?? [])")
        await health.close()
        try await s.stop()
    }
}
