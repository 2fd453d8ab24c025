import Foundation
import Testing
import TallyClient

/// The seed README's Scenario 2, sent as the seeds send it: one POST /event each.
let scenario2 = [
    eventJSON(path: "/home", user: "user-001", timestamp: "2025-11-14T12:00:00Z"),
    eventJSON(path: "/products", user: "user-002", timestamp: "2025-11-14T12:05:00Z"),
    eventJSON(path: "/products", user: "user-001", timestamp: "2025-11-14T12:10:00Z"),
    eventJSON(path: "/home", user: nil, timestamp: "2025-11-14T12:15:00Z"),
    eventJSON(path: "/about", user: "user-003", timestamp: "2025-11-14T12:20:00Z"),
]

let scenario2Stats = #"{"site_id":"demo-site","date":"2025-11-14","total_views":5,"unique_users":3,"top_paths":[{"path":"/home","views":2},{"path":"/products","views":2},{"path":"/about","views":1}]}"#

@Suite(.serialized) struct HTTPEndToEndTests {
    @Test func scenario2OverHTTPThenRestart() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        for body in scenario2 {
            let r = try await c.post("/event", body)
            #expect(r.status == 202)
            #expect(try json(r.body)["accepted"] as? Int == 1)
        }
        _ = try await s.waitForStats(c, "site_id=demo-site&date=2025-11-14") { $0["total_views"] as? Int == 5 }
        #expect(try await c.get("/stats?site_id=demo-site&date=2025-11-14").body == scenario2Stats)
        let allTime = try json(try await c.get("/stats?site_id=demo-site").body)
        #expect(allTime["date"] is NSNull && allTime["total_views"] as? Int == 5 && allTime["unique_users"] as? Int == 3)
        await c.close()
        try await s.stop()

        // Same data directory, new process state: same answers.
        let again = try await TestServer.start(dataDirectory: s.dataDirectory)
        let c2 = try await again.http()
        #expect(try await c2.get("/stats?site_id=demo-site&date=2025-11-14").body == scenario2Stats)
        await c2.close()
        try await again.stop()
    }

    @Test func batchEndpointArrayAndNDJSON() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let c = try await s.http()
        let array = "[" + scenario2.joined(separator: ",") + "]"
        let r = try await c.post("/events", array)
        #expect(r.status == 202)
        #expect(try json(r.body)["accepted"] as? Int == 5)
        let ndjson = [eventJSON(site: "nd", path: "/x", user: "a"), "", eventJSON(site: "nd", type: "click", path: "/x", user: "b")]
            .joined(separator: "\n") + "\n"
        let r2 = try await c.post("/events", ndjson, contentType: "application/x-ndjson")
        #expect(r2.status == 202)
        #expect(try json(r2.body)["accepted"] as? Int == 2)
        _ = try await s.waitForStats(c, "site_id=demo-site&date=2025-11-14") { $0["total_views"] as? Int == 5 }
        #expect(try await c.get("/stats?site_id=demo-site&date=2025-11-14").body == scenario2Stats)
        let nd = try await s.waitForStats(c, "site_id=nd") { $0["unique_users"] as? Int == 2 }
        // The click is a user but not a view.
        #expect(nd["total_views"] as? Int == 1)
        await c.close()
        try await s.stop()
    }

    @Test func durableAckAnswersAfterTheSpoolWrite() async throws {
        let s = try await TestServer.start { $0.flushInterval = .milliseconds(30) }
        defer { s.removeData() }
        let c = try await s.http()
        let r = try await c.post("/event?ack=durable", eventJSON(site: "dur"))
        #expect(r.status == 202)
        #expect(try json(r.body)["ack"] as? String == "durable")
        let metrics = try await c.get("/metrics").body
        #expect(metrics.contains("tally_spool_batches_written_total 1"))
        let bad = try await c.post("/event?ack=maybe", eventJSON())
        #expect(bad.status == 400)
        await c.close()
        try await s.stop()
    }

    @Test func validationNamesEveryProblemAndStoresNothing() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        var c = try await s.http()
        let cases: [(String, String, Int, [String])] = [
            ("/event", #"{"site_id":"","event_type":5,"path":[1],"user_id":true,"timestamp":"yesterday"}"#, 400, [
                "site_id must be a non-empty string", "event_type must be a string", "path must be a string",
                "user_id must be a string", "timestamp must be a valid ISO 8601 date string"]),
            ("/event", #"{}"#, 400, ["site_id is required", "event_type is required"]),
            ("/event", #"[1]"#, 400, ["body must be a JSON object"]),
            ("/events", "[" + eventJSON() + "," + #"{"site_id":"x"}"# + ",3]", 400,
             ["events[1]: event_type is required", "events[2]: must be a JSON object"]),
            ("/events", "[]", 400, ["batch must contain at least one event"]),
        ]
        for (path, body, status, details) in cases {
            let r = try await c.post(path, body)
            #expect(r.status == status, "\(body)")
            let j = try json(r.body)
            #expect(j["error"] as? String == "Invalid payload")
            #expect(j["details"] as? [String] == details, "\(body)")
        }
        let malformed = try await c.post("/event", #"{"site_id": "#)
        #expect(malformed.status == 400)
        #expect(try json(malformed.body)["error"] as? String == "Malformed JSON")
        let big = try await c.post("/event", "{\"site_id\":\"" + String(repeating: "x", count: 70_000) + "\"}")
        #expect(big.status == 413)
        #expect(try json(big.body)["error"] as? String == "Payload too large")
        #expect(big.header("connection") == "close")
        // Refused from its Content-Length alone, the connection closes after the answer.
        await c.close()
        c = try await s.http()
        let form = try await c.post("/event", eventJSON(), contentType: "application/x-www-form-urlencoded")
        #expect(form.status == 415)
        // sendBeacon posts text/plain.
        let beacon = try await c.post("/event", eventJSON(site: "beacon"), contentType: "text/plain;charset=UTF-8")
        #expect(beacon.status == 202)

        let noSite = try await c.get("/stats")
        #expect(noSite.status == 400 && noSite.body == #"{"error":"site_id query parameter is required"}"#)
        let badDate = try await c.get("/stats?site_id=demo-site&date=2025-02-30")
        #expect(badDate.status == 400 && badDate.body == #"{"error":"Invalid date format. Expected YYYY-MM-DD"}"#)
        #expect(try await c.get("/stats?site_id=demo-site&limit=0").status == 400)

        _ = try await s.waitForStats(c, "site_id=beacon") { $0["total_views"] as? Int == 1 }
        // Only the one valid event of all those requests reached the store.
        let health = try json(try await c.get("/health").body)
        #expect(health["status"] as? String == "healthy")
        #expect(health["events_stored"] as? Int == 1)
        let metrics = try await c.get("/metrics").body
        #expect(metrics.contains(#"tally_events_rejected_total{transport="http",reason="invalid_payload"} 5"#))
        await c.close()
        try await s.stop()
    }

    @Test func fullQueueAnswers503WithRetryAfter() async throws {
        // A tiny queue and a flusher that waits long before cutting a batch.
        let s = try await TestServer.start {
            $0.shards = 1
            $0.queueCapacity = 3
            $0.flushEvents = 1000
            $0.flushInterval = .milliseconds(60_000)
        }
        defer { s.removeData() }
        let c = try await s.http()
        var statuses: [Int] = []
        for _ in 0..<5 {
            let r = try await c.post("/event", eventJSON(site: "bp"))
            statuses.append(r.status)
            if r.status == 503 {
                #expect(r.header("Retry-After") == "1")
                #expect(try json(r.body)["error"] as? String == "Queue full, retry later")
            }
        }
        #expect(statuses == [202, 202, 202, 503, 503])
        await c.close()
        // Shutdown drains the three accepted events into the store.
        try await s.stop()
        let again = try await TestServer.start(dataDirectory: s.dataDirectory)
        let c2 = try await again.http()
        #expect(try json(try await c2.get("/stats?site_id=bp").body)["total_views"] as? Int == 3)
        await c2.close()
        try await again.stop()
    }

    @Test func gracefulShutdownLosesNothingAccepted() async throws {
        let s = try await TestServer.start { $0.flushInterval = .milliseconds(5_000); $0.flushEvents = 100_000 }
        defer { s.removeData() }
        let c = try await s.http()
        var accepted = 0
        for i in 0..<40 {
            let batch = "[" + (0..<50).map { j in eventJSON(site: "gs", path: "/p\((i * 50 + j) % 7)") }.joined(separator: ",") + "]"
            let r = try await c.post("/events", batch)
            if r.status == 202 { accepted += 50 }
        }
        #expect(accepted == 2000)
        await c.close()
        // Nothing has been flushed yet (5 s interval); stopping must still store all of it.
        try await s.stop()
        let again = try await TestServer.start(dataDirectory: s.dataDirectory)
        let c2 = try await again.http()
        #expect(try json(try await c2.get("/stats?site_id=gs").body)["total_views"] as? Int == 2000)
        await c2.close()
        try await again.stop()
    }
}
