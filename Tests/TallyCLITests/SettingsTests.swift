import ArgumentParser
import Foundation
import Testing
import TallyServer
@testable import TallyCLI

/// `tally serve`'s settings: one table read through one ConfigReader from flags, `TALLY_*`
/// variables and a JSON file, documented from the same table.
@Suite struct SettingsTests {
    func resolve(_ args: [String], env: [String: String] = [:]) async throws -> ServerConfiguration {
        try await Serve.parse(args).resolved(environment: env)
    }

    @Test func defaultsComeFromServerConfiguration() async throws {
        let c = try await resolve([])
        let d = ServerConfiguration()
        #expect(c.dataDirectory == d.dataDirectory && c.httpPort == d.httpPort && c.shards == d.shards)
        #expect(c.flushInterval == .milliseconds(50) && c.shutdownTimeout == .seconds(30) && c.durableTimeout == .seconds(10))
        #expect(c.shards == ProcessInfo.processInfo.activeProcessorCount)
        #expect(c.storeURL == nil)
    }

    @Test func flagsBeatVariablesWhichBeatTheFile() async throws {
        let file = NSTemporaryDirectory() + "tally-config-\(UUID().uuidString).json"
        try #"{"http-port": 9001, "wire-port": 9002, "flush-interval-ms": 7, "data-dir": "/from/file", "log-level": "debug"}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let c = try await resolve(["--config", file, "--http-port", "9100"],
                                  env: ["TALLY_HTTP_PORT": "9200", "TALLY_WIRE_PORT": "9300", "TALLY_SHUTDOWN_TIMEOUT": "4"])
        #expect(c.httpPort == 9100)
        #expect(c.wirePort == 9300)
        #expect(c.flushInterval == .milliseconds(7))
        #expect(c.dataDirectory == "/from/file")
        #expect(c.shutdownTimeout == .seconds(4))
        #expect(c.logLevel == .debug)
        // The file can be named by its variable too.
        #expect(try await resolve([], env: ["TALLY_CONFIG": file]).httpPort == 9001)
    }

    /// Every flag reaches its field (the flags are mapped to settings by hand in `Serve`).
    @Test func everyFlagTakesEffect() async throws {
        let c = try await resolve([
            "--data-dir", "/d", "--store", "postgres://u@h/db", "--http-host", "127.0.0.2", "--http-port", "1001",
            "--wire-host", "127.0.0.3", "--wire-port", "1002", "--shards", "3", "--queue-capacity", "1003",
            "--flush-events", "1004", "--flush-interval-ms", "1005", "--max-spool-files", "1006", "--udp-rcvbuf", "1007",
            "--durable-timeout-ms", "1008", "--shutdown-timeout", "1009", "--max-connections", "1010", "--log-level", "error",
            "--header-timeout", "1011", "--body-timeout", "1012", "--idle-timeout", "1013", "--max-buffered-bytes", "1014",
            "--trusted-proxies", "10.0.0.0/8, ::1", "--no-bot-filter", "--closed", "--ip-rate", "1015", "--admin-token-file", "/t", "--metrics-token-file", "/m",
            "--tls-cert", "/c", "--tls-key", "/k", "--raw-retention-days", "1016", "--rollup-retention-days", "1017",
        ])
        #expect(c.dataDirectory == "/d" && c.storeURL == "postgres://u@h/db" && c.httpHost == "127.0.0.2" && c.httpPort == 1001)
        #expect(c.wireHost == "127.0.0.3" && c.wirePort == 1002 && c.shards == 3 && c.queueCapacity == 1003)
        #expect(c.flushEvents == 1004 && c.flushInterval == .milliseconds(1005) && c.maxSpoolFiles == 1006)
        #expect(c.udpReceiveBuffer == 1007 && c.durableTimeout == .milliseconds(1008) && c.shutdownTimeout == .seconds(1009))
        #expect(c.maxConnections == 1010 && c.logLevel == .error)
        #expect(c.headerTimeout == .seconds(1011) && c.bodyTimeout == .seconds(1012) && c.idleTimeout == .seconds(1013))
        #expect(c.maxBufferedBytes == 1014)
        #expect(c.trustedProxies.map(\.description) == ["10.0.0.0/8", "::1"] && !c.botFilter && c.closed && c.ipRate == 1015)
        #expect(c.adminTokenFile == "/t" && c.metricsTokenFile == "/m" && c.tlsCertificateFile == "/c" && c.tlsKeyFile == "/k")
        // Every setting was given above.
        #expect(c.rawRetentionDays == 1016 && c.rollupRetentionDays == 1017)
        #expect(Settings.all.count == 30)
    }

    @Test func badValuesNameTheFlagAndTheVariable() async throws {
        let cases: [([String], [String: String], String)] = [
            ([], ["TALLY_SHARDS": "many"], #"--shards (TALLY_SHARDS, or "shards" in the config file) must be an integer"#),
            (["--store", "mysql://x"], [:], "--store (TALLY_STORE) store URL must look like postgres://"),
            (["--queue-capacity", "0"], [:], "--queue-capacity (TALLY_QUEUE_CAPACITY) must be at least 1"),
            ([], ["TALLY_HTTP_PORT": "70000"], "--http-port (TALLY_HTTP_PORT) must be between 0 and 65535"),
            (["--log-level", "loud"], [:], "--log-level (TALLY_LOG_LEVEL) must be one of"),
            (["--config", "/nonexistent/tally.json"], [:], "cannot read the config file /nonexistent/tally.json"),
        ]
        for (args, env, message) in cases {
            do {
                _ = try await resolve(args, env: env)
                Issue.record("accepted \(args) \(env)")
            } catch let e as ValidationError {
                #expect(e.message.hasPrefix(message), "\(e.message)")
            }
        }
        #expect(try await resolve(["--store", "sqlite"]).storeURL == nil)
        #expect(try await resolve([], env: ["TALLY_STORE": "postgres://u@h/db"]).storeURL == "postgres://u@h/db")
    }

    /// `tally serve --help` lists exactly the settings, each with its variable.
    @Test func helpListsEverySetting() {
        let help = Serve.helpMessage(columns: 400)
        let settings = Settings.all + [Settings.configFile]
        for s in settings {
            #expect(help.contains(s.kind == .flag ? s.flag + " " : s.flag + " <"), "\(s.flag)")
            #expect(help.contains(s.environmentVariable), "\(s.environmentVariable)")
        }
        // The option lines: each starts with its flag.
        let flags = Set(help.split(separator: "\n").map { $0.drop { $0 == " " } }
            .filter { $0.hasPrefix("--") && !$0.hasPrefix("--help") }.map { String($0.prefix { $0 != " " }) })
        #expect(flags == Set(settings.map(\.flag)))
    }

    /// The README's configuration table is the one made from the settings.
    @Test func readmeTableMatchesTheSettings() throws {
        let readme = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/TallyCLITests/SettingsTests.swift", with: "README.md"),
                                encoding: .utf8)
        let table = Settings.markdownTable()
        #expect(readme.contains("<!-- settings:begin -->\n" + table + "\n<!-- settings:end -->"),
                "README.md's table between the settings markers should read:\n\(table)")
    }
}
