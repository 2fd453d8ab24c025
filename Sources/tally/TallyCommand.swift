import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TallyServer
import TallyStore

struct Tally: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "A high-throughput website-analytics collector.",
        subcommands: [Serve.self, StoreCeiling.self],
        defaultSubcommand: Serve.self)
}

/// `tally serve`: every option also reads a `TALLY_*` environment variable; a flag wins.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the collector.")

    @Option(help: "Directory for the spool and the SQLite file (TALLY_DATA_DIR, default ./data).")
    var dataDir: String?
    @Option(help: "Store: postgres://user@host:port/db to share one PostgreSQL between collectors (TALLY_STORE, default: SQLite in the data dir).")
    var store: String?
    @Option(help: "HTTP bind host (TALLY_HTTP_HOST, default 0.0.0.0).")
    var httpHost: String?
    @Option(help: "HTTP port (TALLY_HTTP_PORT, default 8080).")
    var httpPort: Int?
    @Option(help: "Wire protocol bind host, TCP and UDP (TALLY_WIRE_HOST, default 0.0.0.0).")
    var wireHost: String?
    @Option(help: "Wire protocol port, TCP and UDP (TALLY_WIRE_PORT, default 7070).")
    var wirePort: Int?
    @Option(help: "Queue shards (TALLY_SHARDS, default: active processor count).")
    var shards: Int?
    @Option(help: "Events each shard holds in memory before refusing (TALLY_QUEUE_CAPACITY, default 65536).")
    var queueCapacity: Int?
    @Option(help: "Cut a batch at this many events (TALLY_FLUSH_EVENTS, default 8192).")
    var flushEvents: Int?
    @Option(help: "... or when its oldest event is this old (TALLY_FLUSH_INTERVAL_MS, default 50).")
    var flushIntervalMs: Int?
    @Option(help: "Spool files awaiting the loader before intake pauses (TALLY_MAX_SPOOL_FILES, default 512).")
    var maxSpoolFiles: Int?
    @Option(help: "UDP receive buffer in bytes (TALLY_UDP_RCVBUF, default 8388608).")
    var udpRcvbuf: Int?
    @Option(help: "How long ?ack=durable waits, ms (TALLY_DURABLE_TIMEOUT_MS, default 10000).")
    var durableTimeoutMs: Int?
    @Option(help: "Drain deadline after SIGTERM, seconds (TALLY_SHUTDOWN_TIMEOUT, default 30).")
    var shutdownTimeout: Int?
    @Option(help: "trace, debug, info, notice, warning, error (TALLY_LOG_LEVEL, default info).")
    var logLevel: String?

    func validate() throws {
        let c = try resolved()
        for (name, v) in [("--shards", c.shards), ("--queue-capacity", c.queueCapacity), ("--flush-events", c.flushEvents),
                          ("--flush-interval-ms", c.flushIntervalMilliseconds), ("--max-spool-files", c.maxSpoolFiles),
                          ("--udp-rcvbuf", c.udpReceiveBuffer), ("--durable-timeout-ms", c.durableTimeoutMilliseconds),
                          ("--shutdown-timeout", c.shutdownTimeoutSeconds)] where v < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        for (name, v) in [("--http-port", c.httpPort), ("--wire-port", c.wirePort)] where !(0...65535).contains(v) {
            throw ValidationError("\(name) must be between 0 and 65535")
        }
    }

    func resolved() throws -> ServerConfiguration {
        let env = ProcessInfo.processInfo.environment
        func int(_ flag: Int?, _ key: String, _ fallback: Int) throws -> Int {
            if let flag { return flag }
            guard let raw = env[key] else { return fallback }
            guard let v = Int(raw) else { throw ValidationError("\(key) must be an integer, got \(raw)") }
            return v
        }
        var c = ServerConfiguration()
        c.dataDirectory = dataDir ?? env["TALLY_DATA_DIR"] ?? c.dataDirectory
        c.storeURL = store ?? env["TALLY_STORE"]
        if c.storeURL == "sqlite" || c.storeURL == "" { c.storeURL = nil }
        if let url = c.storeURL { _ = try PostgresStore.Location(url: url) }
        c.httpHost = httpHost ?? env["TALLY_HTTP_HOST"] ?? c.httpHost
        c.httpPort = try int(httpPort, "TALLY_HTTP_PORT", c.httpPort)
        c.wireHost = wireHost ?? env["TALLY_WIRE_HOST"] ?? c.wireHost
        c.wirePort = try int(wirePort, "TALLY_WIRE_PORT", c.wirePort)
        c.shards = try int(shards, "TALLY_SHARDS", ProcessInfo.processInfo.activeProcessorCount)
        c.queueCapacity = try int(queueCapacity, "TALLY_QUEUE_CAPACITY", c.queueCapacity)
        c.flushEvents = try int(flushEvents, "TALLY_FLUSH_EVENTS", c.flushEvents)
        c.flushIntervalMilliseconds = try int(flushIntervalMs, "TALLY_FLUSH_INTERVAL_MS", c.flushIntervalMilliseconds)
        c.maxSpoolFiles = try int(maxSpoolFiles, "TALLY_MAX_SPOOL_FILES", c.maxSpoolFiles)
        c.udpReceiveBuffer = try int(udpRcvbuf, "TALLY_UDP_RCVBUF", c.udpReceiveBuffer)
        c.durableTimeoutMilliseconds = try int(durableTimeoutMs, "TALLY_DURABLE_TIMEOUT_MS", c.durableTimeoutMilliseconds)
        c.shutdownTimeoutSeconds = try int(shutdownTimeout, "TALLY_SHUTDOWN_TIMEOUT", c.shutdownTimeoutSeconds)
        return c
    }

    func run() async throws {
        try await serve()
    }

    /// The command's body, under a name that overload resolution cannot confuse with
    /// ParsableCommand's synchronous `run()` (see main.swift).
    func serve() async throws {
        let config = try resolved()
        let levelName = logLevel ?? ProcessInfo.processInfo.environment["TALLY_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else { throw ValidationError("unknown log level \(levelName)") }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "tally")
        let server = TallyServer(configuration: config, logger: logger)
        // First SIGTERM/SIGINT: graceful drain. A second one: the process exits at once; the
        // spool and SQLite stay consistent because every write to them is atomic.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger))
        installSecondSignalExit()
        try await group.run()
    }
}
