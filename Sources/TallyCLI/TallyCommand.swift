import ArgumentParser
import Configuration
import Foundation
import Logging
import SystemPackage
import TallyServer

public struct Tally: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "A high-throughput website-analytics collector.",
        subcommands: [Serve.self, SitesCommand.self, BackupCommand.self, RestoreCommand.self, StoreCeiling.self, SettingsTable.self],
        defaultSubcommand: Serve.self)

    public init() {}
}

/// `tally settings`: every setting of `tally serve` with its variable and default, as the
/// README's configuration table (which is made with it).
public struct SettingsTable: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "settings", abstract: "Print every setting of `tally serve` as a Markdown table.")

    public init() {}

    public func run() {
        print(Settings.markdownTable())
    }
}

/// `tally serve`. Each setting is a flag, a `TALLY_*` variable and a key of the optional JSON
/// config file (``Settings``); a flag wins over a variable, which wins over the file.
public struct Serve: AsyncParsableCommand, AsyncCommandBody {
    public static let configuration = CommandConfiguration(
        abstract: "Run the collector.",
        discussion: "Every option can also be set by its TALLY_* environment variable (TALLY_DATA_DIR for --data-dir) or in the JSON file named by --config; a flag wins over a variable, a variable over the file.")

    @Option(help: help("data-dir")) var dataDir: String?
    @Option(help: help("store")) var store: String?
    @Option(help: help("http-host")) var httpHost: String?
    @Option(help: help("http-port")) var httpPort: Int?
    @Option(help: help("wire-host")) var wireHost: String?
    @Option(help: help("wire-port")) var wirePort: Int?
    @Option(help: help("shards")) var shards: Int?
    @Option(help: help("queue-capacity")) var queueCapacity: Int?
    @Option(help: help("flush-events")) var flushEvents: Int?
    @Option(help: help("flush-interval-ms")) var flushIntervalMs: Int?
    @Option(help: help("max-spool-files")) var maxSpoolFiles: Int?
    @Option(help: help("udp-rcvbuf")) var udpRcvbuf: Int?
    @Option(help: help("durable-timeout-ms")) var durableTimeoutMs: Int?
    @Option(help: help("shutdown-timeout")) var shutdownTimeout: Int?
    @Option(help: help("max-connections")) var maxConnections: Int?
    @Option(help: help("header-timeout")) var headerTimeout: Int?
    @Option(help: help("body-timeout")) var bodyTimeout: Int?
    @Option(help: help("idle-timeout")) var idleTimeout: Int?
    @Option(help: help("max-buffered-bytes")) var maxBufferedBytes: Int?
    @Option(help: help("ip-rate")) var ipRate: Int?
    @Option(help: help("raw-retention-days")) var rawRetentionDays: Int?
    @Option(help: help("rollup-retention-days")) var rollupRetentionDays: Int?
    @Option(help: help("admin-token-file")) var adminTokenFile: String?
    @Option(help: help("metrics-token-file")) var metricsTokenFile: String?
    @Option(help: help("tls-cert")) var tlsCert: String?
    @Option(help: help("tls-key")) var tlsKey: String?
    @Option(help: help("trusted-proxies")) var trustedProxies: String?
    @Flag(help: help("no-bot-filter")) var noBotFilter = false
    @Flag(help: help("closed")) var closed = false
    @Option(help: help("log-level")) var logLevel: String?
    @Option(help: help("config")) var config: String?

    public init() {}

    /// The flags given on the command line, by setting name.
    var flags: [String: ConfigContent] {
        let strings: [(String, String?)] = [("data-dir", dataDir), ("store", store), ("http-host", httpHost),
                                            ("wire-host", wireHost), ("log-level", logLevel), ("trusted-proxies", trustedProxies),
                                            ("admin-token-file", adminTokenFile), ("metrics-token-file", metricsTokenFile),
                                            ("tls-cert", tlsCert), ("tls-key", tlsKey)]
        let ints: [(String, Int?)] = [("http-port", httpPort), ("wire-port", wirePort), ("shards", shards),
                                      ("queue-capacity", queueCapacity), ("flush-events", flushEvents),
                                      ("flush-interval-ms", flushIntervalMs), ("max-spool-files", maxSpoolFiles),
                                      ("udp-rcvbuf", udpRcvbuf), ("durable-timeout-ms", durableTimeoutMs),
                                      ("shutdown-timeout", shutdownTimeout), ("max-connections", maxConnections),
                                      ("header-timeout", headerTimeout), ("body-timeout", bodyTimeout), ("idle-timeout", idleTimeout),
                                      ("max-buffered-bytes", maxBufferedBytes), ("ip-rate", ipRate),
                                      ("raw-retention-days", rawRetentionDays), ("rollup-retention-days", rollupRetentionDays)]
        var out: [String: ConfigContent] = [:]
        for (k, v) in strings { if let v { out[k] = .string(v) } }
        for (k, v) in ints { if let v { out[k] = .int(v) } }
        if noBotFilter { out["no-bot-filter"] = .bool(true) }
        if closed { out["closed"] = .bool(true) }
        return out
    }

    /// Flags over `environment` over the config file over the defaults.
    public func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> ServerConfiguration {
        try await Self.resolve(flags: flags, config: config, environment: environment)
    }

    /// The one way every command reads settings: `flags` (by setting name) over `TALLY_*`
    /// variables over the config file over the defaults.
    static func resolve(flags: [String: ConfigContent], config: String?, environment: [String: String]) async throws -> ServerConfiguration {
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "flags", values: Dictionary(uniqueKeysWithValues: flags.map {
                (AbsoluteConfigKey([$0.key]), ConfigValue($0.value, isSecret: false))
            })),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: ["tally"]),
        ]
        if let file = config ?? environment[Settings.configFile.environmentVariable] {
            do {
                providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(file)))
            } catch {
                throw ValidationError("cannot read the config file \(file): \(error)")
            }
        }
        do {
            return try await Settings.resolve(ConfigReader(providers: providers))
        } catch let e as SettingError {
            throw ValidationError(e.description)
        }
    }

    public func body() async throws {
        let config = try await resolved()
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = config.logLevel
            return h
        }
        let logger = Logger(label: "tally")
        // First SIGTERM/SIGINT: graceful drain. A second one: the process exits at once; the
        // spool and SQLite stay consistent because every write to them is atomic.
        let server = try await TallyServer(configuration: config, logger: logger, gracefulShutdownSignals: [.sigterm, .sigint])
        let sources = installSecondSignalExit()
        try await server.run()
        withExtendedLifetime(sources) {}
    }

    static func help(_ name: String) -> ArgumentHelp {
        let s = (Settings.all + [Settings.configFile]).first { $0.name == name }!
        return ArgumentHelp("\(s.help) (\(s.environmentVariable), default: \(s.describe(ServerConfiguration())))")
    }
}
