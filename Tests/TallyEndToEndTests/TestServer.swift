import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Testing
import TallyClient
import TallyServer

/// A real server on ephemeral ports with its own data directory, run in-process as the CLI
/// runs it (its ServiceGroup), and stopped by a graceful shutdown like SIGTERM.
final class TestServer: Sendable {
    let server: TallyServer
    let task: Task<Void, any Error>
    let endpoints: TallyServer.Endpoints
    let dataDirectory: String

    static func start(dataDirectory: String? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let dir = dataDirectory ?? NSTemporaryDirectory() + "tally-e2e-" + UUID().uuidString
        var c = ServerConfiguration()
        c.dataDirectory = dir
        c.httpHost = "127.0.0.1"
        c.wireHost = "127.0.0.1"
        c.httpPort = 0
        c.wirePort = 0
        c.flushInterval = .milliseconds(10)
        configure(&c)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = try await TallyServer(configuration: c, logger: logger)
        let task = Task { try await server.run() }
        let endpoints = try await server.endpoints()
        return TestServer(server: server, task: task, endpoints: endpoints, dataDirectory: dir)
    }

    init(server: TallyServer, task: Task<Void, any Error>, endpoints: TallyServer.Endpoints, dataDirectory: String) {
        self.server = server
        self.task = task
        self.endpoints = endpoints
        self.dataDirectory = dataDirectory
    }

    func http() async throws -> HTTPClientConnection {
        try await HTTPClientConnection.connect(host: "127.0.0.1", port: endpoints.httpPort)
    }

    /// Graceful shutdown, as on SIGTERM: returns once everything queued is in the store.
    func stop() async throws {
        await server.triggerGracefulShutdown()
        try await task.value
    }

    func removeData() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    /// Polls /stats until `check` holds (events are queryable within a flush interval or so).
    func waitForStats(_ client: HTTPClientConnection, _ query: String, timeout: Duration = .seconds(20),
                      _ check: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last: [String: Any] = [:]
        while clock.now < deadline {
            let r = try await client.get("/stats?" + query)
            last = try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
            if check(last) { return last }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("stats never matched; last: \(last)")
        return last
    }
}

func json(_ body: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
}

func eventJSON(site: String = "demo-site", type: String = "page_view", path: String? = "/home", user: String? = nil,
               timestamp: String? = "2025-11-14T12:00:00Z") -> String {
    var parts = ["\"site_id\":\"\(site)\"", "\"event_type\":\"\(type)\""]
    if let path { parts.append("\"path\":\"\(path)\"") }
    if let user { parts.append("\"user_id\":\"\(user)\"") }
    if let timestamp { parts.append("\"timestamp\":\"\(timestamp)\"") }
    return "{" + parts.joined(separator: ",") + "}"
}

/// What a finished process printed, and how it ended.
struct ProcessOutput {
    var status: Int32
    var stdout: String
    var stderr: String
    /// The last line of stdout (where `tally sites keys add` prints the key).
    var lastLine: String { stdout.split(separator: "\n").last.map(String.init) ?? "" }
}

/// Runs `executable` to its end (the tally binary, openssl, curl), reading both outputs whole.
func runProcess(_ executable: String, _ args: [String], environment: [String: String]? = nil) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
