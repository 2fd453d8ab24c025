import Foundation
import NIOCore
import Testing
import TallyClient
import TallyCore
import TallyServer
import TallySites
import TallyTestSupport
import TallyWire
import NIOHTTP1

/// `tally sites …` run as the binary against the store a running server uses, and the rules
/// it sets as senders and readers meet them over real sockets.
@Suite(.serialized) struct SitesEndToEndTests {
    /// The `tally` binary `swift build` made next to this test bundle's sources.
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/tally").path

    static func cli(_ args: [String]) throws -> ProcessOutput {
        // The test runner's own TALLY_* variables would reach the command as settings.
        try runProcess(binary, args, environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TALLY_") })
    }

    /// Runs `tally sites <args> <store>` and expects it to succeed.
    @discardableResult
    static func sites(_ args: [String], _ store: [String]) throws -> ProcessOutput {
        let r = try cli(["sites"] + args + store)
        #expect(r.status == 0, "tally sites \(args): \(r.stderr)")
        return r
    }

    /// Polls until `check` holds: a server picks a registry change up within 2 s (1 s polls);
    /// 15 s leaves room for a machine busy with the rest of the suite.
    static func eventually(_ what: String, timeout: Duration = .seconds(15), _ check: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await check() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("never happened within \(timeout): \(what)")
    }

    static func post(_ c: HTTPClientConnection, _ body: String, key: String? = nil, origin: String? = nil, path: String = "/event") async throws -> HTTPClientResponse {
        var headers: [(String, String)] = []
        if let key { headers.append(("Authorization", "Bearer " + key)) }
        if let origin { headers.append(("Origin", origin)) }
        return try await c.request(.POST, path, body: body, headers: headers)
    }

    static func stats(_ c: HTTPClientConnection, _ site: String, key: String? = nil, query: String = "") async throws -> HTTPClientResponse {
        try await c.request(.GET, "/stats?site_id=\(site)\(query)", body: nil as String?,
                            headers: key.map { [("Authorization", "Bearer " + $0)] } ?? [])
    }

    enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case sqlite, postgres
        var testDescription: String { rawValue }
        static var available: [StoreKind] {
            ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] == nil ? [.sqlite] : allCases
        }
    }

    @Test(arguments: StoreKind.available)
    func registeredSitesGetTheirRulesOverHTTPAndTheWire(_ kind: StoreKind) async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build the tally binary first (swift build)")
        let url = kind == .postgres ? try await PostgresTestDatabase.create(prefix: "sites") : nil
        let s = try await TestServer.start { $0.storeURL = url }
        defer { s.removeData() }
        let store = url.map { ["--store", $0] } ?? ["--data-dir", s.dataDirectory]
        let c = try await s.http()

        // Before any registration, the seed API's zero set-up.
        #expect(try await Self.post(c, eventJSON(site: "shop")).status == 202)

        try Self.sites(["add", "shop", "--origin", "https://shop.example", "--origin", "*.shop.example"], store)
        let write = try Self.sites(["keys", "add", "shop", "--write"], store).lastLine
        let read = try Self.sites(["keys", "add", "shop", "--read"], store).lastLine
        #expect(write.hasPrefix("tally_w_") && read.hasPrefix("tally_r_"))

        // Once the server has the change (seen without sending: a read needs a key now),
        // server-side writes need the write key.
        try await Self.eventually("a keyless read is refused") { try await Self.stats(c, "shop").status == 401 }
        var r = try await Self.post(c, eventJSON(site: "shop"))
        #expect(r.status == 401)
        #expect(r.header("WWW-Authenticate") == "Bearer" && r.header("Access-Control-Allow-Origin") == "*")
        #expect(try json(r.body)["details"] as? [String] == [#"site "shop" needs a write key: Authorization: Bearer <key>"#])
        r = try await Self.post(c, eventJSON(site: "shop"), key: read)
        #expect(r.status == 401 && r.body.contains("is not a write key"))
        #expect(try await Self.post(c, eventJSON(site: "shop", path: "/keyed"), key: write).status == 202)
        // Pages of the site need no key; other pages are refused, and cannot read the answer.
        #expect(try await Self.post(c, eventJSON(site: "shop", path: "/page"), origin: "https://shop.example").status == 202)
        #expect(try await Self.post(c, eventJSON(site: "shop", path: "/page"), origin: "https://www.shop.example").status == 202)
        r = try await Self.post(c, eventJSON(site: "shop"), origin: "https://evil.example")
        #expect(r.status == 403 && r.header("Access-Control-Allow-Origin") == nil)
        #expect(try json(r.body)["details"] as? [String] == [#"origin "https://evil.example" may not send events for site "shop""#])
        // One refused site refuses the whole batch, naming it; other sites stay open.
        r = try await Self.post(c, "[" + eventJSON(site: "open") + "," + eventJSON(site: "shop") + "]", path: "/events")
        #expect(r.status == 401 && r.body.contains(#"site \"shop\""#) && !r.body.contains(#"site \"open\""#))
        #expect(try await Self.post(c, eventJSON(site: "open")).status == 202)

        // Reads need a read key, by header or ?key=; the answer is the same whatever the site holds.
        r = try await Self.stats(c, "shop")
        #expect(r.status == 401 && r.header("WWW-Authenticate") == "Bearer")
        #expect(try await Self.stats(c, "shop", key: write).status == 401)
        try await Self.eventually("the keyed and page views are readable") {
            let r = try await Self.stats(c, "shop", key: read)
            return try r.status == 200 && json(r.body)["total_views"] as? Int == 4
        }
        #expect(try await Self.stats(c, "shop", query: "&key=" + read).status == 200)
        #expect(try await Self.stats(c, "open").status == 200)

        // The wire protocol: a keyed site's frames need an AUTH frame with its write key
        // first (PROTOCOL.md §7.1); other sites' frames need none.
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        try await tcp.send(frames(site: "open", count: 2, sequence: 1, ack: true))
        try await tcp.waitForAck(1)
        try await tcp.send(frames(site: "shop", count: 2, sequence: 2, ack: true))
        await tcp.waitForClose()
        #expect(tcp.serverError?.code == .unauthorized && tcp.serverError?.message.contains("AUTH") == true)
        // A read key is no write key: refused at AUTH, before any event.
        let readAuth = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        await #expect(throws: (any Error).self) { try await readAuth.authenticate(key: read) }
        #expect(readAuth.serverError?.code == .unauthorized)
        await readAuth.waitForClose()
        // The write key: AUTH_OK names the site and the key id that `sites show` lists.
        let authed = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        let ok = try await authed.authenticate(key: write)
        #expect(ok.siteID == "shop" && ok.keyID == AccessKey.id(ofHash: AccessKey.hash(write)))
        try await authed.send(frames(site: "shop", count: 2, sequence: 3, ack: true))
        try await authed.send(frames(site: "open", count: 1, sequence: 4, ack: true))
        try await authed.waitForAck(4)
        // UDP: the key holds for the rest of its datagram only.
        let udp = try await WireUDPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        func datagram(key: String?, _ frame: EventsFrame) -> ByteBuffer {
            var b = ByteBuffer()
            if let key { FrameEncoder.writeAuth(key: key, into: &b) }
            FrameEncoder.writeEvents(frame, into: &b)
            return b
        }
        try await udp.send(datagram(key: write, frames(site: "shop", count: 2)))
        try await udp.send(datagram(key: nil, frames(site: "shop", count: 5)))
        try await udp.send(datagram(key: read, frames(site: "shop", count: 7)))
        try await Self.eventually("the wire's keyed events are counted, and only those") {
            let r = try await Self.stats(c, "shop", key: read)
            return try r.status == 200 && json(r.body)["total_views"] as? Int == 8
        }

        // HTTP refusals count requests (three 401s above), the wire's count events, and
        // refused AUTH frames one each (on UDP a refused AUTH drops the rest of its datagram).
        try await Self.eventually("the UDP refusals are counted") {
            try await c.get("/metrics").body.contains(#"tally_events_rejected_total{transport="udp",reason="unauthorized"} 6"#)
        }
        let metrics = try await c.get("/metrics").body
        #expect(metrics.contains(#"tally_events_rejected_total{transport="http",reason="unauthorized"} 3"#))
        #expect(metrics.contains(#"tally_events_rejected_total{transport="http",reason="forbidden"} 1"#))
        #expect(metrics.contains(#"tally_events_rejected_total{transport="tcp",reason="unauthorized"} 3"#))
        #expect(metrics.contains(#"tally_reads_refused_total{route="stats"} 3"#))

        // Revoking a key, by the key itself, stops it within seconds; listing shows what is left.
        // (A second write key keeps the site one that needs a key.)
        let write2 = try Self.sites(["keys", "add", "shop", "--write"], store).lastLine
        try Self.sites(["keys", "revoke", "shop", write], store)
        try await Self.eventually("a revoked key is refused") { try await Self.post(c, eventJSON(site: "shop"), key: write).status == 401 }
        // A connection that presented it before is refused at its next frame for the site.
        try await authed.send(frames(site: "shop", count: 1, sequence: 5, ack: true))
        await authed.waitForClose()
        #expect(authed.serverError?.code == .unauthorized)
        let again = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        await #expect(throws: (any Error).self) { try await again.authenticate(key: write) }
        try Self.sites(["keys", "revoke", "shop", write2], store)
        let shown = try json(try Self.sites(["show", "shop", "--json"], store).stdout)
        #expect(shown["origins"] as? [String] == ["https://shop.example", "*.shop.example"])
        #expect((shown["keys"] as? [[String: Any]])?.map { $0["kind"] as? String } == ["read"])
        #expect(try Self.sites(["list"], store).stdout.contains("shop"))
        // Revoking the last write key says what that opens; removing the site opens it all.
        #expect(try Self.sites(["keys", "revoke", "shop", (shown["keys"] as! [[String: Any]])[0]["id"] as! String], store).stdout
            .contains("has no read key left: its numbers can be read by anyone"))
        try await Self.eventually("a site without read keys is readable") { try await Self.stats(c, "shop").status == 200 }
        #expect(try await Self.post(c, eventJSON(site: "shop"), origin: "https://evil.example").status == 403)
        try Self.sites(["remove", "shop"], store)
        try await Self.eventually("a removed site takes any origin") {
            try await Self.post(c, eventJSON(site: "shop"), origin: "https://evil.example").status == 202
        }

        await c.close()
        try await s.stop()
    }

    @Test func cliRefusesBadInputWithReasons() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build the tally binary first (swift build)")
        let dir = NSTemporaryDirectory() + "tally-sites-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ["--data-dir", dir]
        var r = try Self.cli(["sites", "add", "s", "--origin", "shop.example", "--origin", "ftp://x.example"] + store)
        #expect(r.status != 0 && r.stderr.contains("shop.example") && r.stderr.contains("ftp://x.example"))
        try Self.sites(["add", "s", "--rate", "10"], store)
        r = try Self.cli(["sites", "add", "s"] + store)
        #expect(r.status == 1 && r.stderr.contains(#"site "s" is already registered"#))
        r = try Self.cli(["sites", "keys", "add", "nope", "--write"] + store)
        #expect(r.status == 1 && r.stderr.contains(#"no registered site "nope""#))
        r = try Self.cli(["sites", "keys", "add", "s"] + store)
        #expect(r.status != 0 && r.stderr.contains("--read"))
        r = try Self.cli(["sites", "keys", "revoke", "s", "k123"] + store)
        #expect(r.status == 1 && r.stderr.contains("has no key"))
        r = try Self.cli(["sites", "update", "s", "--rate", "0"] + store)
        #expect(r.status != 0 && r.stderr.contains("--rate must be from 1"))
        try Self.sites(["update", "s", "--no-rate", "--origin", "https://s.example"], store)
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(try Self.sites(["list", "--json"], store).stdout.utf8)) as? [[String: Any]])
        #expect(listed.count == 1 && listed[0]["rate"] is NSNull && listed[0]["origins"] as? [String] == ["https://s.example"])
    }

    @Test func closedCollectorTakesOnlyRegisteredSites() async throws {
        let s = try await TestServer.start { $0.closed = true }
        defer { s.removeData() }
        let c = try await s.http()
        let r = try await Self.post(c, eventJSON(site: "stranger"))
        #expect(r.status == 403 && r.header("Access-Control-Allow-Origin") == "*")
        #expect(try json(r.body)["details"] as? [String] == [#"site "stranger" is not registered on this collector"#])
        #expect(try await Self.stats(c, "stranger").status == 401)
        let udp = try await WireUDPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        var b = ByteBuffer()
        FrameEncoder.writeEvents(frames(site: "stranger", count: 3), into: &b)
        try await udp.send(b)
        try await Self.eventually("the UDP frame is counted as refused") {
            try await c.get("/metrics").body.contains(#"tally_events_rejected_total{transport="udp",reason="unauthorized"} 3"#)
        }
        try Self.sites(["add", "stranger"], ["--data-dir", s.dataDirectory])
        try await Self.eventually("a registered site is taken") { try await Self.post(c, eventJSON(site: "stranger")).status == 202 }
        #expect(try await Self.stats(c, "stranger").status == 200)
        await udp.close()
        await c.close()
        try await s.stop()
    }

    /// Two collectors on one PostgreSQL database share the registry: a key made through the CLI
    /// works on both within seconds, and once revoked stops on both.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] != nil))
    func collectorsSharingPostgreSQLShareTheRegistry() async throws {
        let url = try await PostgresTestDatabase.create(prefix: "sites")
        let a = try await TestServer.start { $0.storeURL = url }
        let b = try await TestServer.start { $0.storeURL = url }
        defer { a.removeData(); b.removeData() }
        let store = ["--store", url]
        try Self.sites(["add", "shared"], store)
        let write = try Self.sites(["keys", "add", "shared", "--write"], store).lastLine
        let read = try Self.sites(["keys", "add", "shared", "--read"], store).lastLine
        let ca = try await a.http(), cb = try await b.http()
        for c in [ca, cb] {
            try await Self.eventually("a keyless read is refused") { try await Self.stats(c, "shared").status == 401 }
            #expect(try await Self.post(c, eventJSON(site: "shared")).status == 401)
            #expect(try await Self.post(c, eventJSON(site: "shared"), key: write).status == 202)
        }
        try await Self.eventually("both collectors' events are readable with the read key") {
            let r = try await Self.stats(cb, "shared", key: read)
            return try r.status == 200 && json(r.body)["total_views"] as? Int == 2
        }
        #expect(try await Self.stats(ca, "shared").status == 401)
        try Self.sites(["keys", "revoke", "shared", write], store)
        for c in [ca, cb] {
            try await Self.eventually("the revoked key is refused") { try await Self.post(c, eventJSON(site: "shared"), key: write).status == 401 }
        }
        await ca.close()
        await cb.close()
        try await a.stop()
        try await b.stop()

        // A collector that starts while its database is unreachable enforces the registry as it
        // last read it (saved in its data directory), not nothing.
        let started = ContinuousClock.now
        let down = try await TestServer.start(dataDirectory: a.dataDirectory) {
            $0.storeURL = "postgres://tally@127.0.0.1:1/gone"
            $0.shutdownTimeout = .seconds(1)
        }
        let cd = try await down.http()
        #expect(try await Self.post(cd, eventJSON(site: "shared"), key: write).status == 401)
        #expect(try await Self.stats(cd, "shared").status == 401)
        #expect(try await Self.stats(cd, "shared", key: read).status == 503)
        print("started without its database in \(ContinuousClock.now - started)")
        await cd.close()
        try await down.stop()
    }

    /// Refusals are made certain by debt, not by speed: a batch larger than the burst passes and
    /// leaves its bucket seconds in debt, so the next request is refused however slow the machine.
    @Test func ratesPerClientAddress() async throws {
        let s = try await TestServer.start { $0.ipRate = 2 }
        defer { s.removeData() }
        let c = try await s.http()
        let ten = "[" + Array(repeating: eventJSON(site: "open"), count: 10).joined(separator: ",") + "]"
        #expect(try await Self.post(c, ten, path: "/events").status == 202)
        let r = try await Self.post(c, eventJSON(site: "open"))
        #expect(r.status == 429 && r.header("Access-Control-Allow-Origin") == "*")
        #expect((1...5).contains(Int(r.header("Retry-After") ?? "") ?? 0))
        #expect(try json(r.body)["details"] as? [String] == ["this client may send 2 events per second"])
        #expect(try await c.get("/metrics").body.contains(#"tally_events_rejected_total{transport="http",reason="rate_limited"} 1"#))
        await c.close()
        try await s.stop()
    }

    @Test func ratesPerSite() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let store = ["--data-dir", s.dataDirectory]
        let c = try await s.http()
        // A site's own rate (a read key marks when the server has it).
        try Self.sites(["add", "slow", "--rate", "3"], store)
        try Self.sites(["keys", "add", "slow", "--read"], store)
        try await Self.eventually("the server has the site") { try await Self.stats(c, "slow").status == 401 }
        let twelve = "[" + Array(repeating: eventJSON(site: "slow"), count: 12).joined(separator: ",") + "]"
        #expect(try await Self.post(c, twelve, path: "/events").status == 202)
        let r = try await Self.post(c, eventJSON(site: "slow"))
        #expect(r.status == 429)
        #expect(try json(r.body)["details"] as? [String] == [#"site "slow" may send 3 events per second"#])
        // Other sites are not slowed.
        for _ in 0..<20 { #expect(try await Self.post(c, eventJSON(site: "open")).status == 202) }

        // TCP senders over the site's rate are slowed, not refused: after the debt is repaid,
        // three frames of 3 on a full bucket take 2 s more.
        try await Task.sleep(for: .seconds(4))
        let tcp = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        let started = ContinuousClock.now
        for k in 1...3 { try await tcp.send(frames(site: "slow", count: 3, sequence: UInt64(k), ack: true)) }
        try await tcp.waitForAck(3)
        #expect(ContinuousClock.now - started >= .milliseconds(1800))
        #expect(tcp.serverError == nil)
        await tcp.close()
        // UDP frames over it are dropped and counted: of two frames on a full bucket, the second.
        try await Task.sleep(for: .milliseconds(1100))
        let udp = try await WireUDPClient.connect(host: "127.0.0.1", port: s.endpoints.wirePort)
        var b = ByteBuffer()
        FrameEncoder.writeEvents(frames(site: "slow", count: 3), into: &b)
        FrameEncoder.writeEvents(frames(site: "slow", count: 3), into: &b)
        try await udp.send(b)
        try await Self.eventually("the second UDP frame is counted as rate limited") {
            try await c.get("/metrics").body.contains(#"tally_events_rejected_total{transport="udp",reason="rate_limited"} 3"#)
        }
        await udp.close()
        await c.close()
        try await s.stop()
    }

    @Test func adminAPIManagesTheRegistry() async throws {
        let dir = NSTemporaryDirectory() + "tally-admin-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = "admin-token-0123456789"
        try (token + "\n").write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let s = try await TestServer.start { $0.adminTokenFile = dir + "/token" }
        defer { s.removeData() }
        let c = try await s.http()
        func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil, token: String? = token) async throws -> HTTPClientResponse {
            try await c.request(method, path, body: body, headers: token.map { [("Authorization", "Bearer " + $0)] } ?? [])
        }
        var r = try await call(.GET, "/api/v1/sites", token: nil)
        #expect(r.status == 401 && r.header("WWW-Authenticate") == "Bearer")
        #expect(try await call(.GET, "/api/v1/sites", token: "admin-token-0123456780").status == 401)

        r = try await call(.POST, "/api/v1/sites", #"{"id":"api-site","origins":["HTTPS://A.example:443"],"rate":null}"#)
        #expect(r.status == 201)
        var site = try json(r.body)
        #expect(site["id"] as? String == "api-site" && site["origins"] as? [String] == ["https://a.example"] && site["rate"] is NSNull)
        #expect(try await call(.POST, "/api/v1/sites", #"{"id":"api-site"}"#).status == 409)
        r = try await call(.POST, "/api/v1/sites", #"{"id":"","origins":["ftp://x"],"rate":0}"#)
        #expect(r.status == 400)
        #expect(try json(r.body)["details"] as? [String] == ["a site id is 1 to 128 bytes",
                                                            #"origin "ftp://x": the scheme must be http or https"#,
                                                            "rate must be from 1 to 1000000000 events per second"])
        r = try await call(.POST, "/api/v1/sites", #"{"id":"x","colour":"red"}"#)
        #expect(r.status == 400 && r.body.contains("unknown field"))
        #expect(try await call(.POST, "/api/v1/sites", "[1]").status == 400)
        r = try await call(.POST, "/api/v1/sites", #"{"id":"x","rate":true}"#)
        #expect(r.status == 400 && r.body.contains("rate must be an integer or null"))

        r = try await call(.POST, "/api/v1/sites/api-site/keys", #"{"kind":"write"}"#)
        #expect(r.status == 201)
        let made = try json(r.body)
        let key = try #require(made["key"] as? String)
        #expect(key.hasPrefix("tally_w_") && made["kind"] as? String == "write")
        #expect(try await call(.POST, "/api/v1/sites/nope/keys", #"{"kind":"write"}"#).status == 404)
        #expect(try await call(.POST, "/api/v1/sites/api-site/keys", #"{"kind":"admin"}"#).status == 400)
        // The server enforces what the API registered.
        try await Self.eventually("a keyless write is refused") {
            try await Self.post(c, eventJSON(site: "api-site"), key: "tally_w_wrong").status == 401
        }
        #expect(try await Self.post(c, eventJSON(site: "api-site")).status == 401)
        #expect(try await Self.post(c, eventJSON(site: "api-site"), key: key).status == 202)

        r = try await call(.PATCH, "/api/v1/sites/api-site", #"{"rate":5,"raw_retention_days":90}"#)
        site = try json(r.body)
        #expect(r.status == 200 && site["rate"] as? Int == 5 && site["raw_retention_days"] as? Int == 90 && (site["keys"] as? [[String: Any]])?.count == 1)
        r = try await call(.PATCH, "/api/v1/sites/api-site", #"{"raw_retention_days":0}"#)
        #expect(try r.status == 400 && json(r.body)["details"] as? [String] == ["raw_retention_days must be from 1 to 36500"])
        r = try await call(.PATCH, "/api/v1/sites/api-site", #"{"raw_retention_days":null}"#)
        #expect(try r.status == 200 && json(r.body)["raw_retention_days"] is NSNull)
        #expect(try await call(.PATCH, "/api/v1/sites/api-site", "{}").status == 400)
        #expect(try await call(.PATCH, "/api/v1/sites/nope", #"{"rate":5}"#).status == 404)
        r = try await call(.GET, "/api/v1/sites")
        #expect(r.status == 200)
        #expect(try (json(r.body)["sites"] as? [[String: Any]])?.count == 1)
        #expect(try await call(.GET, "/api/v1/sites/api-site").status == 200)
        #expect(try await call(.DELETE, "/api/v1/sites/api-site/keys/" + (made["id"] as! String)).status == 204)
        #expect(try await call(.DELETE, "/api/v1/sites/api-site/keys/" + (made["id"] as! String)).status == 404)
        #expect(try await call(.DELETE, "/api/v1/sites/api-site").status == 204)
        #expect(try await call(.GET, "/api/v1/sites/api-site").status == 404)
        await c.close()
        try await s.stop()

        // Without a token file there is no admin API.
        let open = try await TestServer.start()
        defer { open.removeData() }
        let o = try await open.http()
        #expect(try await o.request(.GET, "/api/v1/sites", body: nil as String?, headers: [("Authorization", "Bearer " + token)]).status == 404)
        await o.close()
        try await open.stop()
    }

    @Test func metricsAndHealthCanNeedAToken() async throws {
        let dir = NSTemporaryDirectory() + "tally-mtoken-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "metrics-token-0123456789".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "short".write(toFile: dir + "/short", atomically: true, encoding: .utf8)
        await #expect(throws: (any Error).self) { _ = try await TestServer.start { $0.metricsTokenFile = dir + "/short" } }
        let s = try await TestServer.start { $0.metricsTokenFile = dir + "/token" }
        defer { s.removeData() }
        let c = try await s.http()
        for path in ["/metrics", "/health"] {
            let r = try await c.get(path)
            #expect(r.status == 401 && r.header("WWW-Authenticate") == "Bearer")
            #expect(try await c.request(.GET, path, body: nil as String?, headers: [("Authorization", "Bearer metrics-token-0123456789")]).status == 200)
            #expect(try await c.request(.GET, path, body: nil as String?, headers: [("Authorization", "Bearer metrics-token-0123456780")]).status == 401)
        }
        #expect(try await c.get("/stats?site_id=any").status == 200)
        #expect(try await Self.post(c, eventJSON(site: "any")).status == 202)
        await c.close()
        try await s.stop()
    }
}
