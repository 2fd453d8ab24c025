#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `POST /event` and `/events` are answered in the channel pipeline (HTTPIngestHandler), the
/// rest by the router: on one connection, with requests pipelined, the answers must still come
/// back in request order, and `Connection: close` must close.
@Suite struct HTTPPipelineTests {
    @Test func pipelinedRequestsAreAnsweredInOrderAcrossBothPaths() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        func post(_ target: String, _ body: String, close: Bool = false) -> String {
            "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                + (close ? "Connection: close\r\n" : "") + "\r\n" + body
        }
        let requests = [
            post("/event", eventJSON(site: "pipe", path: "/a")),
            "GET /stats?site_id=nobody HTTP/1.1\r\nHost: x\r\n\r\n",
            post("/event", eventJSON(site: "pipe", path: "/b")),              // behind a routed request
            post("/event?ack=durable", eventJSON(site: "pipe", path: "/c")),  // routed: waits for the spool
            post("/event", #"{"site_id":""}"#),
            post("/events?ack=queued", "[" + eventJSON(site: "pipe", path: "/d") + "]"),
            post("/event?ack=maybe", eventJSON(site: "pipe")),
            post("/event", eventJSON(site: "pipe", path: "/e"), close: true),
        ]
        let responses = try rawExchange(port: s.endpoints.httpPort, requests.joined())
        #expect(responses.map(\.status) == [202, 200, 202, 202, 400, 202, 400, 202])
        #expect(responses[0].body == #"{"message":"Event accepted for processing","accepted":1,"ack":"queued"}"#)
        #expect(responses[1].body.contains(#""site_id":"nobody""#))
        #expect(responses[3].body.contains(#""ack":"durable""#))
        #expect(responses[4].body.contains("site_id must be a non-empty string") && responses[4].body.contains("event_type is required"))
        #expect(responses[5].body.contains(#""accepted":1"#))
        #expect(responses[6].body.contains(#"ack must be"#))
        #expect(responses.allSatisfy { $0.headers["content-type"] == "application/json" && $0.headers["date"] != nil })
        try await Self.expectViews(s, site: "pipe", 5)
        try await s.stop()
    }

    /// Waits until /stats of `site` shows `views` page views.
    static func expectViews(_ s: TestServer, site: String, _ views: Int) async throws {
        let c = try await s.http()
        _ = try await s.waitForStats(c, "site_id=\(site)") { $0["total_views"] as? Int == views }
        await c.close()
    }

    /// Clients such as curl send `Expect: 100-continue` and wait for the interim answer before
    /// sending a larger body; the pipeline's ingest path answers it, then the request itself.
    @Test func expectContinueIsAnsweredBeforeTheBody() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let body = eventJSON(site: "expect", path: "/x")
        let fd = try rawConnect(port: s.endpoints.httpPort, timeout: 5)
        defer { close(fd) }
        try rawSend(fd, "POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n")
        #expect(String(decoding: rawReceive(fd), as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        try rawSend(fd, body)
        let answer = parseResponses(rawReceive(fd))
        #expect(answer.map(\.status) == [202])
        #expect(answer.first?.headers["server"] == "tally")
        #expect(answer.first?.headers["content-length"] == String(answer.first?.body.utf8.count ?? -1))
        try await Self.expectViews(s, site: "expect", 1)
        try await s.stop()
    }

    /// HTTP/1.0 without keep-alive gets its answer and then the connection closes; refusals
    /// carry the same headers as acceptances.
    @Test func http10RequestIsAnsweredThenClosed() async throws {
        let s = try await TestServer.start()
        defer { s.removeData() }
        let bad = #"{"site_id":"v","event_type":"pageview","timestamp":"not a time"}"#
        let requests = "POST /event HTTP/1.1\r\nHost: x\r\nContent-Length: \(bad.utf8.count)\r\n\r\n" + bad
            + "POST /event HTTP/1.0\r\nContent-Length: \(eventJSON(site: "v10").utf8.count)\r\n\r\n" + eventJSON(site: "v10")
        let responses = try rawExchange(port: s.endpoints.httpPort, requests)
        #expect(responses.map(\.status) == [400, 202])
        #expect(responses.allSatisfy { $0.headers["content-type"] == "application/json" && $0.headers["server"] == "tally" })
        #expect(responses.last?.headers["connection"] == "close")
        #expect(responses.first?.body.contains("timestamp") == true)
        try await s.stop()
    }
}

/// A connected TCP socket to 127.0.0.1:`port`, with a receive timeout of `timeout` seconds.
func rawConnect(port: Int, timeout: Int = 20) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}

func rawSend(_ fd: Int32, _ text: String) throws {
    let bytes = Array(text.utf8)
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw POSIXError(.EIO) }
        sent += n
    }
}

/// What one `recv` returns: empty when the peer closed or the timeout passed.
func rawReceive(_ fd: Int32) -> [UInt8] {
    var chunk = [UInt8](repeating: 0, count: 65536)
    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    return n > 0 ? Array(chunk[0..<n]) : []
}

/// Writes `request` on a fresh connection and reads responses until the server closes it.
func rawExchange(port: Int, _ request: String) throws -> [(status: Int, headers: [String: String], body: String)] {
    let fd = try rawConnect(port: port)
    defer { close(fd) }
    try rawSend(fd, request)
    var received: [UInt8] = []
    while true {
        let chunk = rawReceive(fd)
        if chunk.isEmpty { break }  // closed (Connection: close), or the timeout
        received += chunk
    }
    return parseResponses(received)
}

/// Splits raw bytes into responses (head fields lowercased, body by Content-Length).
func parseResponses(_ received: [UInt8]) -> [(status: Int, headers: [String: String], body: String)] {
    var out: [(status: Int, headers: [String: String], body: String)] = []
    var at = 0
    let separator = Array("\r\n\r\n".utf8)
    while at < received.count {
        guard let end = (at...(received.count - 4)).first(where: { Array(received[$0..<$0 + 4]) == separator }) else { break }
        let lines = String(decoding: received[at..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        out.append((status, headers, String(decoding: received[(end + 4)..<min(received.count, end + 4 + length)], as: UTF8.self)))
        at = end + 4 + length
    }
    return out
}
