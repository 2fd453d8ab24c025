import Foundation
import NIOCore
import Testing
import TallyClient
import TallyServer

/// `--tls-cert` / `--tls-key`: HTTPS on the HTTP port, checked with curl (a client that knows
/// nothing of Tally) against certificates openssl makes for the test; the certificate is
/// reloaded when its files change.
@Suite(.serialized) struct TLSEndToEndTests {
    static func run(_ tool: String, _ args: [String]) throws -> ProcessOutput {
        try runProcess("/usr/bin/env", [tool] + args)
    }

    /// A self-signed P-256 certificate for 127.0.0.1, written to `<dir>/<name>.crt` and `.key`.
    static func certificate(_ dir: String, _ name: String) throws -> (cert: String, key: String) {
        let cert = dir + "/" + name + ".crt", key = dir + "/" + name + ".key"
        let r = try run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                    "-keyout", key, "-out", cert, "-subj", "/CN=tally-test-\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
                                    "-days", "2"])
        #expect(r.status == 0, "openssl: \(r.stderr)")
        return (cert, key)
    }

    /// `curl` trusting only `ca`; the HTTP status, or 0 when no HTTPS answer came (curl's code in `error`).
    static func curl(_ url: String, ca: String, body: String? = nil) throws -> (status: Int, body: String, error: Int32) {
        var args = ["-s", "--max-time", "5", "--cacert", ca, "-w", "\n%{http_code}", url]
        if let body { args += ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body] }
        let r = try run("curl", args)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"), r.status)
    }

    @Test func servesHTTPSAndReloadsARenewedCertificate() async throws {
        let dir = NSTemporaryDirectory() + "tally-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try Self.certificate(dir, "first")
        let live = (cert: dir + "/live.crt", key: dir + "/live.key")
        try FileManager.default.copyItem(atPath: first.cert, toPath: live.cert)
        try FileManager.default.copyItem(atPath: first.key, toPath: live.key)
        let s = try await TestServer.start {
            $0.tlsCertificateFile = live.cert
            $0.tlsKeyFile = live.key
            $0.tlsReloadInterval = .milliseconds(50)
        }
        defer { s.removeData() }
        let base = "https://127.0.0.1:\(s.endpoints.httpPort)"

        // The seed API over HTTPS, as any client sends it.
        #expect(try Self.curl(base + "/event", ca: first.cert, body: eventJSON(site: "tls")).status == 202)
        try await SitesEndToEndTests.eventually("the event is readable over HTTPS", timeout: .seconds(20)) {
            let r = try Self.curl(base + "/stats?site_id=tls", ca: first.cert)
            return try r.status == 200 && json(r.body)["total_views"] as? Int == 1
        }
        #expect(try Self.curl(base + "/tally.js", ca: first.cert).status == 200)
        // Plain HTTP on the HTTPS port gets no HTTP answer; a client not trusting the
        // certificate refuses it (curl 60).
        let plain = try Self.curl("http://127.0.0.1:\(s.endpoints.httpPort)/health", ca: first.cert)
        #expect(plain.status == 0 && plain.error != 0)
        let second = try Self.certificate(dir, "second")
        let untrusted = try Self.curl(base + "/health", ca: second.cert)
        #expect(untrusted.status == 0 && untrusted.error == 60)

        // Renewal: the new certificate is served without a restart, the old one no longer.
        // The files change one after the other, so the server may see a key that does not
        // match for a moment: it keeps the old pair until they match again.
        try FileManager.default.removeItem(atPath: live.cert)
        try FileManager.default.copyItem(atPath: second.cert, toPath: live.cert)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try Self.curl(base + "/health", ca: first.cert).status == 200)
        try FileManager.default.removeItem(atPath: live.key)
        try FileManager.default.copyItem(atPath: second.key, toPath: live.key)
        try await SitesEndToEndTests.eventually("the renewed certificate is served", timeout: .seconds(20)) {
            try Self.curl(base + "/health", ca: second.cert).status == 200
        }
        #expect(try Self.curl(base + "/health", ca: first.cert).error == 60)
        // A broken file keeps the certificate in force.
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: live.cert))
        try await Task.sleep(for: .milliseconds(200))
        #expect(try Self.curl(base + "/event", ca: second.cert, body: eventJSON(site: "tls")).status == 202)
        try await s.stop()
    }

    /// A Kubernetes secret volume: `tls.crt` → `..data/tls.crt`, `..data` → a directory of the
    /// current files; a renewal swaps `..data` and changes nothing of the links it is read by.
    @Test func reloadsWhenTheLinkedDirectoryIsSwapped() async throws {
        let dir = NSTemporaryDirectory() + "tally-tls-" + UUID().uuidString
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/vol", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let first = try Self.certificate(dir, "first"), second = try Self.certificate(dir, "second")
        for (name, pair) in [("v1", first), ("v2", second)] {
            try fm.createDirectory(atPath: dir + "/vol/" + name, withIntermediateDirectories: true)
            try fm.copyItem(atPath: pair.cert, toPath: dir + "/vol/\(name)/tls.crt")
            try fm.copyItem(atPath: pair.key, toPath: dir + "/vol/\(name)/tls.key")
        }
        try fm.createSymbolicLink(atPath: dir + "/vol/..data", withDestinationPath: "v1")
        try fm.createSymbolicLink(atPath: dir + "/vol/tls.crt", withDestinationPath: "..data/tls.crt")
        try fm.createSymbolicLink(atPath: dir + "/vol/tls.key", withDestinationPath: "..data/tls.key")
        let s = try await TestServer.start {
            $0.tlsCertificateFile = dir + "/vol/tls.crt"
            $0.tlsKeyFile = dir + "/vol/tls.key"
            $0.tlsReloadInterval = .milliseconds(50)
        }
        defer { s.removeData() }
        let base = "https://127.0.0.1:\(s.endpoints.httpPort)"
        #expect(try Self.curl(base + "/health", ca: first.cert).status == 200)
        try fm.createSymbolicLink(atPath: dir + "/vol/..data_tmp", withDestinationPath: "v2")
        #expect(rename(dir + "/vol/..data_tmp", dir + "/vol/..data") == 0)
        try await SitesEndToEndTests.eventually("the swapped certificate is served", timeout: .seconds(20)) {
            try Self.curl(base + "/health", ca: second.cert).status == 200
        }
        try await s.stop()
    }

    /// TLS sits behind the ReadGuard: a handshake that stalls after its first bytes is closed
    /// at the header timeout, not left to the idle timeout.
    @Test func aStalledHandshakeMeetsTheHeaderTimeout() async throws {
        let dir = NSTemporaryDirectory() + "tally-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pair = try Self.certificate(dir, "stall")
        let s = try await TestServer.start {
            $0.tlsCertificateFile = pair.cert
            $0.tlsKeyFile = pair.key
            $0.headerTimeout = .seconds(1)
        }
        defer { s.removeData() }
        let c = try await WireTCPClient.connect(host: "127.0.0.1", port: s.endpoints.httpPort)
        // A TLS record header announcing a 512-byte handshake message, and no more.
        try await c.send(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00]))
        let clock = ContinuousClock()
        let start = clock.now
        await c.waitForClose(timeout: .seconds(30))
        // Measured 5 s: the 1 s header timeout, the guard's grace for an answer (which cannot
        // leave before the handshake), then TLS's close. Without the guard in front of TLS, the
        // 120 s idle timeout would be the first to close it.
        #expect(clock.now - start < .seconds(10))
        try await s.stop()
    }

    @Test func badTLSSettingsStopTheStartWithAReason() async throws {
        let dir = NSTemporaryDirectory() + "tally-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.certificate(dir, "a"), b = try Self.certificate(dir, "b")
        try Data("nonsense".utf8).write(to: URL(fileURLWithPath: dir + "/junk.pem"))
        let cases: [(String?, String?, String)] = [
            (a.cert, nil, "go together"),
            (nil, a.key, "go together"),
            (dir + "/missing.crt", a.key, "--tls-cert \(dir)/missing.crt"),
            (dir + "/junk.pem", a.key, "--tls-cert \(dir)/junk.pem"),
            (a.cert, dir + "/junk.pem", "--tls-key \(dir)/junk.pem"),
            (a.cert, b.key, "is the key the certificate's?"),
        ]
        for (cert, key, reason) in cases {
            let data = NSTemporaryDirectory() + "tally-e2e-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: data) }
            do {
                let s = try await TestServer.start(dataDirectory: data) {
                    $0.tlsCertificateFile = cert
                    $0.tlsKeyFile = key
                }
                Issue.record("started with cert \(cert ?? "-") key \(key ?? "-")")
                try await s.stop()
            } catch {
                #expect("\(error)".contains(reason), "\(error)")
            }
        }
    }
}
