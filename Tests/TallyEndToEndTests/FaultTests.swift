import CSQLite
import Foundation
import Testing
import TallyClient
import TallyLoad

/// Disk and store failures: nothing acknowledged is lost, the server keeps answering, and it
/// recovers by itself.
@Suite(.serialized) struct FaultTests {
    @Test func spoolWriteFailureSuspendsDurableAcksThenRecovers() async throws {
        let s = try await TestServer.start { $0.flushInterval = .milliseconds(10); $0.shards = 1; $0.queueCapacity = 500 }
        defer { s.removeData() }
        let c = try await s.http()
        let pipeline = s.server.pipeline
        pipeline.injectSpoolWriteFault("No space left on device (injected)")
        // The first batch fails to write; once that is seen, durable requests are refused at once.
        _ = try await c.post("/event", eventJSON(site: "disk", path: "/a"))
        try await Task.sleep(for: .milliseconds(200))
        let durable = try await c.post("/event?ack=durable", eventJSON(site: "disk", path: "/b"))
        #expect(durable.status == 503)
        #expect(durable.header("Retry-After") == "1")
        let health = try json(try await c.get("/health").body)
        #expect(health["status"] as? String == "degraded" && health["spool_writable"] as? Bool == false)
        // Queued acks continue until the bounded queue is full, then 503: memory stays bounded.
        var queued = 1, refused = 0
        for _ in 0..<60 {
            let batch = "[" + (0..<10).map { _ in eventJSON(site: "disk", path: "/a") }.joined(separator: ",") + "]"
            let r = try await c.post("/events", batch)
            if r.status == 202 { queued += 10 } else { refused += 1; #expect(r.status == 503) }
        }
        #expect(refused > 0 && queued <= 501)
        #expect(try await c.get("/stats?site_id=disk").status == 200)
        // The disk comes back: everything that got a 202 is stored, and durable acks resume.
        pipeline.injectSpoolWriteFault(nil)
        _ = try await s.waitForStats(c, "site_id=disk") { $0["total_views"] as? Int == queued }
        #expect(try await c.post("/event?ack=durable", eventJSON(site: "disk", path: "/c")).status == 202)
        let m = try await c.get("/metrics").body
        #expect(m.contains("tally_spool_write_errors_total") && !m.contains("tally_spool_write_errors_total 0"))
        #expect(m.contains("tally_durable_ack_seconds_count 1"))
        await c.close()
        try await s.stop()
    }

    @Test func lockedSQLiteDelaysLoadingButLosesNothing() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        // Another process-like connection holds the write lock longer than the busy timeout.
        var db: OpaquePointer?
        #expect(sqlite3_open(s.dataDirectory + "/tally.sqlite", &db) == SQLITE_OK)
        #expect(sqlite3_exec(db, "BEGIN EXCLUSIVE", nil, nil, nil) == SQLITE_OK)
        let c = try await s.http()
        for i in 0..<20 { #expect(try await c.post("/event?ack=durable", eventJSON(site: "locked", path: "/p\(i % 3)")).status == 202) }
        try await Task.sleep(for: .seconds(6))
        let health = try json(try await c.get("/health").body)
        #expect((health["spool_backlog_files"] as? Int ?? 0) > 0, "\(health)")
        #expect(sqlite3_exec(db, "COMMIT", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        _ = try await s.waitForStats(c, "site_id=locked") { $0["total_views"] as? Int == 20 }
        #expect(try await c.get("/metrics").body.contains("tally_store_errors_total") )
        await c.close()
        try await s.stop()
    }

    @Test func tenfoldOverloadGets503sAndStaysResponsive() async throws {
        // A small queue in front of a spool that holds one batch for the loader at a time: the
        // flusher waits on every load, so 16 senders of 500-event batches overrun the queue.
        let s = try await TestServer.start {
            $0.queueCapacity = 1000; $0.shards = 1; $0.flushEvents = 500; $0.flushInterval = .milliseconds(20); $0.maxSpoolFiles = 1
        }
        defer { s.removeData() }
        var o = LoadOptions()
        o.mode = .httpBatch
        o.httpPort = s.endpoints.httpPort
        o.events = 60_000
        o.connections = 16
        o.batch = 500
        o.shape.runID = "overload"
        o.verifyTimeout = 60
        async let run = LoadRunner.run(o)
        // /health and /stats answer while it is flooded.
        let c = try await s.http()
        for _ in 0..<5 {
            #expect(try await c.get("/health").status < 600)
            #expect(try await c.get("/stats?site_id=load-overload-0").status == 200)
            try await Task.sleep(for: .milliseconds(50))
        }
        var r = try await run
        // Whatever was accepted is exactly what /stats shows; refusals were explicit 503s.
        #expect(Set(r.errors.keys).isSubset(of: ["HTTP 503"]), "\(r.errors)")
        #expect(r.errors["HTTP 503", default: 0] > 0, "the queue never filled: not an overload")
        r.verification = try await LoadRunner.verify(o, r)
        #expect(r.verification?.exact == true, "\(r.verification?.problems ?? [])")
        await c.close()
        try await s.stop()
    }
}
