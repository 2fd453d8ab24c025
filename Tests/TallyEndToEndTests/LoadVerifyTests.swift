import Testing
import TallyLoad

/// A short tally-load run with --verify in every mode against a real server.
@Suite(.serialized) struct LoadVerifyTests {
    @Test(arguments: LoadMode.allCases)
    func verifiesExactly(_ mode: LoadMode) async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        var o = LoadOptions()
        o.mode = mode
        o.httpPort = s.endpoints.httpPort
        o.wirePort = s.endpoints.wirePort
        o.events = mode == .http ? 1500 : 6000
        o.connections = 3
        o.batch = 50
        o.verify = true
        o.verifyTimeout = 30
        o.shape.runID = "e2e-\(mode.rawValue)"
        o.shape.sites = 4
        o.shape.paths = 30
        o.shape.users = 300
        let r = try await LoadRunner.run(o)
        #expect(r.errors.isEmpty, "\(r.errors)")
        #expect(r.acceptedEvents == o.events)
        // Loopback UDP at this rate is not expected to drop, so every mode must be exact here.
        #expect(r.verification?.exact == true, "\(r.verification?.problems ?? [])")
        #expect(r.latency.totalCount > 0)
        try await s.stop()
    }
}
