import Configuration
import Foundation
import Logging
import TallyCore
import TallyStore
import TallyEnrich

/// Everything `tally serve` can be told. The values written here are the defaults, the only
/// place they are defined: ``Settings`` reads each from flags, `TALLY_*` variables or a config
/// file over them, and the help text and README table print them from here.
public struct ServerConfiguration: Sendable {
    /// Holds the spool (`spool/`), the SQLite file (`tally.sqlite`) and `instance-id`.
    public var dataDirectory = "./data"
    /// Where loaded events live: nil for the embedded SQLite file in the data directory, or a
    /// `postgres://user@host:port/database` URL shared by several collectors.
    public var storeURL: String?
    public var httpHost = "0.0.0.0"
    public var httpPort = 8080
    public var wireHost = "0.0.0.0"
    public var wirePort = 7070
    /// One queue shard (and flusher thread) per core.
    public var shards = ProcessInfo.processInfo.activeProcessorCount
    public var queueCapacity = 65_536
    public var flushEvents = 8192
    public var flushInterval = Duration.milliseconds(50)
    public var maxSpoolFiles = 512
    public var udpReceiveBuffer = 8 << 20
    /// How long `?ack=durable` waits before answering 503.
    public var durableTimeout = Duration.seconds(10)
    /// After a stop signal, how long the listeners and the drain into the store may take;
    /// batches not loaded by then stay in the spool for the next start.
    public var shutdownTimeout = Duration.seconds(30)
    public var logLevel = Logger.Level.info
    /// Open connections per listener (HTTP, wire TCP); nil: from the open-file limit.
    public var maxConnections: Int?
    /// From a request's first byte to the end of its head (slowloris).
    public var headerTimeout = Duration.seconds(10)
    /// From the end of a request's head to the end of its body; a wire frame's whole time.
    public var bodyTimeout = Duration.seconds(30)
    /// A connection with nothing to read or answer is closed after this.
    public var idleTimeout = Duration.seconds(120)
    /// Bytes of partly received requests and frames, all connections together.
    public var maxBufferedBytes = 64 << 20
    /// Proxies whose `X-Forwarded-For` names the client (none: the socket peer is the client).
    public var trustedProxies: [AddressRange] = []
    /// Events from crawlers and automated browsers are stored flagged and counted nowhere.
    public var botFilter = true
    /// Only registered sites may send events and be read (`tally sites add`).
    public var closed = false
    /// Events per second (burst as many) each client address may send over HTTP; 0: no limit.
    public var ipRate = 0
    /// Whole UTC days of raw rows kept besides today (by event time); nil: forever.
    public var rawRetentionDays: Int?
    /// Whole UTC days of rollups (the reports) kept besides today; nil: forever.
    public var rollupRetentionDays: Int?
    /// A file holding the admin API's token; nil: no admin API.
    public var adminTokenFile: String?
    /// A file holding the token `/metrics` and `/health` need; nil: they are open.
    public var metricsTokenFile: String?
    /// PEM files of the HTTPS listener's certificate chain and private key; nil: plain HTTP.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// How often the certificate files are checked for a renewal.
    public var tlsReloadInterval = Duration.seconds(60)

    public init() {}
}

/// One setting of `tally serve`: its flag `--name`, its variable `TALLY_NAME` and its key
/// `name` in a JSON config file are the same name, read through one ``ConfigReader``.
public struct Setting: Sendable {
    public enum Kind: Sendable {
        case string, integer, port
        /// A flag without a value (`--name`); `true`/`false` as a variable or in the file.
        case flag
        /// An integer count of this unit, stored as a `Duration`.
        case milliseconds, seconds
    }

    public let name: String
    public let kind: Kind
    public let help: String
    /// Reads the value (nil when no source sets it) into the configuration, after checking it.
    let apply: @Sendable (inout ServerConfiguration, ConfigContent) throws(SettingError) -> Void
    /// The default, as the docs show it.
    public let describe: @Sendable (ServerConfiguration) -> String

    public var flag: String { "--" + name }
    public var environmentVariable: String { "TALLY_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }

    var configType: ConfigType { kind == .string ? .string : kind == .flag ? .bool : .int }
}

/// A setting that was given a value it cannot take.
public struct SettingError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// The settings of `tally serve`, in the order the help and the README list them.
public enum Settings {
    public static let all: [Setting] = [
        string("data-dir", \.dataDirectory, "Holds the spool, `instance-id` and, with SQLite, `tally.sqlite`; created if missing. One per collector."),
        Setting(name: "store", kind: .string,
                help: "`postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]` to share one PostgreSQL between collectors; `sqlite` or empty for SQLite.",
                apply: { c, v throws(SettingError) in
                    guard case .string(let s) = v else { throw SettingError(description: "must be text") }
                    c.storeURL = s == "sqlite" || s.isEmpty ? nil : s
                    if let url = c.storeURL {
                        do {
                            _ = try PostgresStore.Location(url: url)
                        } catch {
                            throw SettingError(description: "\(error)")
                        }
                    }
                },
                describe: { $0.storeURL ?? "SQLite in the data directory" }),
        string("http-host", \.httpHost, "HTTP bind address."),
        port("http-port", \.httpPort, "HTTP port, 0 to 65535 (0 picks a free port)."),
        string("wire-host", \.wireHost, "Wire protocol bind address (TCP and UDP)."),
        port("wire-port", \.wirePort, "Wire protocol port (TCP and UDP), 0 to 65535."),
        Setting(name: "shards", kind: .integer, help: "Queue shards, each with its own flusher thread; a site always maps to the same shard.",
                apply: positive(\.shards), describe: { _ in "the number of cores" }),
        integer("queue-capacity", \.queueCapacity, "Events each shard holds in memory before it refuses more."),
        integer("flush-events", \.flushEvents, "Cut a batch once this many events wait in a shard ..."),
        duration("flush-interval-ms", .milliseconds, \.flushInterval, "... or once the oldest waiting event is this many milliseconds old."),
        integer("max-spool-files", \.maxSpoolFiles, "Unloaded spool files allowed before the flushers pause (the queue then fills and senders get backpressure)."),
        integer("udp-rcvbuf", \.udpReceiveBuffer, "Requested `SO_RCVBUF` of the UDP socket in bytes (capped by `net.core.rmem_max`)."),
        duration("durable-timeout-ms", .milliseconds, \.durableTimeout, "Milliseconds `?ack=durable` waits for the spool before a 503."),
        duration("shutdown-timeout", .seconds, \.shutdownTimeout,
                 "Seconds a graceful shutdown (SIGTERM) may take: listeners finish, the queue drains into the store; what is not loaded by then stays spooled for the next start."),
        Setting(name: "max-connections", kind: .integer,
                help: "Open connections per listener (HTTP, wire TCP); past it new connections wait in the kernel's backlog. 0: half the open-file limit (raised to its hard limit at start) less 128.",
                apply: { c, v throws(SettingError) in
                    guard case .int(let n) = v, n >= 0 else { throw SettingError(description: "must be at least 0") }
                    c.maxConnections = n == 0 ? nil : n
                },
                describe: { $0.maxConnections.map(String.init) ?? "0" }),
        duration("header-timeout", .seconds, \.headerTimeout,
                 "Seconds from an HTTP request's first byte to the end of its head; past it, 408 and the connection closes."),
        duration("body-timeout", .seconds, \.bodyTimeout,
                 "Seconds for an HTTP request's body after its head, and for a whole wire frame; past it, 408 (HTTP) or an ERROR frame, and the connection closes."),
        duration("idle-timeout", .seconds, \.idleTimeout, "Seconds a connection may read nothing (between requests or frames) before it is closed."),
        integer("max-buffered-bytes", \.maxBufferedBytes,
                "Bytes of partly received requests and frames held by all connections together; a read past it is answered 503 (HTTP) or `overloaded` (wire) and the connection closes."),
        Setting(name: "ip-rate", kind: .integer,
                help: "Events per second each client address may send over HTTP, with a burst of as many (the address behind `--trusted-proxies`); over it, 429 with `Retry-After`. 0: no limit.",
                apply: { c, v throws(SettingError) in
                    guard case .int(let n) = v, n >= 0 else { throw SettingError(description: "must be 0 or more") }
                    c.ipRate = n
                },
                describe: { String($0.ipRate) }),
        days("raw-retention-days", \.rawRetentionDays,
             "Days of raw rows kept besides today, by event time: rows of earlier UTC days are deleted in the background, and rows already older are counted in the reports but never stored. Reports (rollups and unique counts) keep every day. 0 or unset: forever."),
        days("rollup-retention-days", \.rollupRetentionDays,
             "Days of reports (daily rollups and unique counts) kept besides today: earlier days are deleted each UTC midnight, and all-time numbers become those of the days left. At least `--raw-retention-days`. 0 or unset: forever."),
        tokenFile("admin-token-file", \.adminTokenFile, "none (admin API off)",
                  "A file holding the token (16 characters or more) of the admin API under `/api/v1/sites`, sent as `Authorization: Bearer`; without it the admin API is off."),
        tokenFile("metrics-token-file", \.metricsTokenFile, "none (open)",
                  "A file holding a token (16 characters or more) that `/metrics` and `/health` then need as `Authorization: Bearer`; without it they are open."),
        tokenFile("tls-cert", \.tlsCertificateFile, "none (plain HTTP)",
                  "A PEM file with the certificate chain (the server's certificate first) for HTTPS on the HTTP port, with `--tls-key`; read again within a minute when it changes."),
        tokenFile("tls-key", \.tlsKeyFile, "none",
                  "The PEM file with `--tls-cert`'s private key."),
        Setting(name: "trusted-proxies", kind: .string,
                help: "Comma-separated addresses or CIDR ranges (`10.0.0.0/8,::1`) of reverse proxies whose `X-Forwarded-For` names the visitor's address; empty: the socket peer is the visitor.",
                apply: { c, v throws(SettingError) in
                    guard case .string(let s) = v else { throw SettingError(description: "must be text") }
                    var ranges: [AddressRange] = []
                    for part in s.split(separator: ",") {
                        let text = part.trimmingCharacters(in: .whitespaces)
                        guard let r = AddressRange(text) else { throw SettingError(description: "\(text) is not an address or CIDR range") }
                        ranges.append(r)
                    }
                    c.trustedProxies = ranges
                },
                describe: { $0.trustedProxies.isEmpty ? "none" : $0.trustedProxies.map(\.description).joined(separator: ",") }),
        Setting(name: "no-bot-filter", kind: .flag,
                help: "Count events from crawlers, preview fetchers and automated browsers like any other (by default they are stored, flagged, and counted in `tally_events_filtered_total{reason=\"bot\"}` only).",
                apply: { c, v throws(SettingError) in
                    guard case .bool(let on) = v else { throw SettingError(description: "must be true or false") }
                    c.botFilter = !on
                },
                describe: { $0.botFilter ? "off" : "on" }),
        Setting(name: "closed", kind: .flag,
                help: "Take events only for registered sites (`tally sites add`): others get 403, on the wire an ERROR `unauthorized`, and their `/stats` 401. Without it, an unregistered `site_id` works with no set-up.",
                apply: { c, v throws(SettingError) in
                    guard case .bool(let on) = v else { throw SettingError(description: "must be true or false") }
                    c.closed = on
                },
                describe: { $0.closed ? "on" : "off" }),
        Setting(name: "log-level", kind: .string, help: "`trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`; logs go to stderr.",
                apply: { c, v throws(SettingError) in
                    guard case .string(let s) = v, let level = Logger.Level(rawValue: s) else {
                        throw SettingError(description: "must be one of trace, debug, info, notice, warning, error, critical")
                    }
                    c.logLevel = level
                },
                describe: { $0.logLevel.rawValue }),
    ]

    /// The config file's own setting (it cannot come from the file it names).
    public static let configFile = Setting(
        name: "config", kind: .string, help: "A JSON file of these settings, keyed by the flag names without `--` (e.g. `{\"http-port\": 8080}`); flags and variables override it.",
        apply: { _, _ throws(SettingError) in }, describe: { _ in "none" })

    /// Resolves every setting from `reader` (flags, then variables, then the file) over the
    /// defaults; throws naming the flag and variable of the first bad value.
    public static func resolve(_ reader: ConfigReader) async throws -> ServerConfiguration {
        var c = ServerConfiguration()
        for s in all {
            let key = ConfigKey([s.name])
            let value: ConfigContent?
            do {
                switch s.configType {
                case .int: value = try await reader.fetchInt(forKey: key).map(ConfigContent.int)
                case .bool: value = try await reader.fetchBool(forKey: key).map(ConfigContent.bool)
                default: value = try await reader.fetchString(forKey: key).map(ConfigContent.string)
                }
            } catch {
                throw SettingError(description: "\(s.flag) (\(s.environmentVariable), or \"\(s.name)\" in the config file) must be \(s.kind == .string ? "text" : s.kind == .flag ? "true or false" : "an integer")")
            }
            guard let value else { continue }
            do {
                try s.apply(&c, value)
            } catch {
                throw SettingError(description: "\(s.flag) (\(s.environmentVariable)) \(error.description)")
            }
        }
        return c
    }

    /// The README's configuration table, made from the settings and their defaults.
    public static func markdownTable() -> String {
        let defaults = ServerConfiguration()
        var lines = ["| Flag | Variable | Default | Meaning |", "|---|---|---|---|"]
        for s in all + [configFile] {
            let d = s.describe(defaults)
            lines.append("| `\(s.flag)` | `\(s.environmentVariable)` | \(d.contains(" ") ? d : "`\(d)`") | \(s.help.replacingOccurrences(of: "|", with: "\\|")) |")
        }
        return lines.joined(separator: "\n")
    }

    // MARK: Kinds

    private static func string(_ name: String, _ kp: any WritableKeyPath<ServerConfiguration, String> & Sendable, _ help: String) -> Setting {
        Setting(name: name, kind: .string, help: help,
                apply: { c, v throws(SettingError) in
                    guard case .string(let s) = v, !s.isEmpty else { throw SettingError(description: "must not be empty") }
                    c[keyPath: kp] = s
                },
                describe: { $0[keyPath: kp] })
    }

    /// A file naming setting whose absence turns a feature off (`off` says what that means).
    private static func tokenFile(_ name: String, _ kp: any WritableKeyPath<ServerConfiguration, String?> & Sendable, _ off: String,
                                  _ help: String) -> Setting {
        Setting(name: name, kind: .string, help: help,
                apply: { c, v throws(SettingError) in
                    guard case .string(let s) = v else { throw SettingError(description: "must be text") }
                    c[keyPath: kp] = s.isEmpty ? nil : s
                },
                describe: { $0[keyPath: kp] ?? off })
    }

    /// A number of days kept, 0 (nil) for forever.
    private static func days(_ name: String, _ kp: any WritableKeyPath<ServerConfiguration, Int?> & Sendable, _ help: String) -> Setting {
        Setting(name: name, kind: .integer, help: help,
                apply: { c, v throws(SettingError) in
                    guard case .int(let n) = v, (0...SiteRecord.maxRetentionDays).contains(n) else {
                        throw SettingError(description: "must be 0 (forever) or a number of days up to \(SiteRecord.maxRetentionDays)")
                    }
                    c[keyPath: kp] = n == 0 ? nil : n
                },
                describe: { $0[keyPath: kp].map(String.init) ?? "0" })
    }

    private static func integer(_ name: String, _ kp: any WritableKeyPath<ServerConfiguration, Int> & Sendable, _ help: String) -> Setting {
        Setting(name: name, kind: .integer, help: help, apply: positive(kp), describe: { String($0[keyPath: kp]) })
    }

    private static func positive(_ kp: any WritableKeyPath<ServerConfiguration, Int> & Sendable)
        -> @Sendable (inout ServerConfiguration, ConfigContent) throws(SettingError) -> Void {
        { c, v throws(SettingError) in
            guard case .int(let n) = v, n >= 1 else { throw SettingError(description: "must be at least 1") }
            c[keyPath: kp] = n
        }
    }

    private static func port(_ name: String, _ kp: any WritableKeyPath<ServerConfiguration, Int> & Sendable, _ help: String) -> Setting {
        Setting(name: name, kind: .port, help: help,
                apply: { c, v throws(SettingError) in
                    guard case .int(let n) = v, (0...65535).contains(n) else {
                        throw SettingError(description: "must be between 0 and 65535")
                    }
                    c[keyPath: kp] = n
                },
                describe: { String($0[keyPath: kp]) })
    }

    private static func duration(_ name: String, _ unit: Setting.Kind, _ kp: any WritableKeyPath<ServerConfiguration, Duration> & Sendable,
                                 _ help: String) -> Setting {
        Setting(name: name, kind: unit, help: help,
                apply: { c, v throws(SettingError) in
                    guard case .int(let n) = v, n >= 1 else { throw SettingError(description: "must be at least 1") }
                    c[keyPath: kp] = unit == .seconds ? .seconds(n) : .milliseconds(n)
                },
                describe: { c in
                    let (s, a) = c[keyPath: kp].components
                    return String(unit == .seconds ? s : s * 1000 + a / 1_000_000_000_000_000)
                })
    }
}
