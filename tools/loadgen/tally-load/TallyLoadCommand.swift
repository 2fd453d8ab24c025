import ArgumentParser
import Foundation
import TallyLoad

struct TallyLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally-load",
        abstract: "Drive a Tally server over HTTP, UDP or TCP; report throughput and latency; verify nothing was lost.")

    @Option(help: "http, http-batch, udp, tcp or tcp-ack.")
    var mode: String = "http"
    @Option(help: "HTTP base URL.")
    var target: String = "http://127.0.0.1:8080"
    @Option(help: "Wire protocol HOST:PORT (udp, tcp, tcp-ack).")
    var wire: String = "127.0.0.1:7070"
    @Option(help: "Events to send (ignored with --duration).")
    var events: Int = 100_000
    @Option(help: "Send for this many seconds instead.")
    var duration: Double?
    @Option(help: "Target events/s, 0 = as fast as possible (fixed-rate latency counts from the intended send time).")
    var rate: Double = 0
    @Option(help: "Concurrent connections.")
    var connections: Int = 8
    @Option(help: "Events per request/datagram in batch modes.")
    var batch: Int = 100
    @Option(help: "Unacknowledged frame batches per connection (tcp-ack).")
    var window: Int = 16
    @Option(help: "Distinct sites.") var sites: Int = 10
    @Option(help: "Distinct paths per site (Zipf-skewed).") var paths: Int = 200
    @Option(help: "Distinct users.") var users: Int = 10_000
    @Option(help: "Share of anonymous events (0...1).") var anonymous: Double = 0.2
    @Option(help: "Spread timestamps over this many days.") var days: Int = 7
    @Flag(help: "Draw sites Zipf-skewed (a few big sites, a long tail) instead of evenly.") var zipfSites = false
    @Option(help: "Seed for reproducible data.") var seed: UInt64 = 1
    @Option(help: "Run id used in site names (default: random), so runs do not mix in /stats.")
    var runID: String?
    @Flag(help: "After the run, compare GET /stats of every site with what was accepted.")
    var verify = false
    @Option(help: "Seconds to wait for /stats to match.") var verifyTimeout: Double = 60
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "http modes: send as a browser does (a desktop Chrome User-Agent, an Origin, and a referrer in each event).")
    var browser = false
    @Option(help: "A file of `SITE_ID KEY` lines (from `tally sites keys add`): HTTP requests carry their site's write key; TCP connections send an AUTH frame per key first; UDP datagrams start with their site's AUTH frame.")
    var siteKeys: String?

    func run() async throws {
        try await drive()
    }

    /// The command's body under a name overload resolution cannot confuse with the synchronous
    /// `run()` (see main.swift).
    func drive() async throws {
        guard let mode = LoadMode(rawValue: mode) else {
            throw ValidationError("unknown mode \(mode); one of \(LoadMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var o = LoadOptions()
        o.mode = mode
        guard let url = URL(string: target), let host = url.host else { throw ValidationError("bad --target \(target)") }
        o.httpHost = host
        o.httpPort = url.port ?? 80
        let parts = wire.split(separator: ":")
        guard parts.count == 2, let wp = Int(parts[1]) else { throw ValidationError("bad --wire \(wire), expected HOST:PORT") }
        o.wireHost = String(parts[0])
        o.wirePort = wp
        o.events = events
        o.duration = duration
        o.rate = rate
        o.connections = max(1, connections)
        o.batch = batch
        o.window = max(1, window)
        o.shape.sites = sites
        o.shape.paths = paths
        o.shape.users = users
        o.shape.anonymousShare = anonymous
        o.shape.days = days
        o.shape.zipfSites = zipfSites
        o.shape.runID = runID ?? String(UInt32.random(in: 0...UInt32.max), radix: 36)
        o.seed = seed
        o.verify = verify
        o.verifyTimeout = verifyTimeout
        o.browser = browser
        if let siteKeys {
            guard let text = try? String(contentsOfFile: siteKeys, encoding: .utf8) else { throw ValidationError("cannot read --site-keys \(siteKeys)") }
            for line in text.split(separator: "\n") where !line.isEmpty {
                let parts = line.split(separator: " ")
                guard parts.count == 2 else { throw ValidationError("--site-keys lines are SITE_ID KEY, got: \(line)") }
                o.siteKeys[String(parts[0])] = String(parts[1])
            }
        }
        if o.mode == .tcp || o.mode == .tcpAck, o.wireKeys.count > 16 {
            throw ValidationError("--site-keys has keys for \(o.wireKeys.count) of this run's sites; a TCP connection holds keys for at most 16 (PROTOCOL.md §4.4)")
        }
        let result = try await LoadRunner.run(o)
        print(json ? result.json() : result.table())
        if let v = result.verification, !v.exact, mode != .udp {
            throw ExitCode(2)
        }
    }
}
