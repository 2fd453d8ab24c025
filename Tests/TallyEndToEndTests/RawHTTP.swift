import Foundation
import NIOCore
import NIOPosix
import Testing

/// A plain TCP connection to the server for tests that must control every byte: partial
/// requests, pipelining, oversized heads.
enum RawHTTP {
    typealias Raw = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(_ port: Int) async throws -> Raw {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try Raw(wrappingChannelSynchronously: channel) }
            }
    }

    /// Everything the server sends until it closes the connection.
    static func readToEnd(_ inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) async throws -> String {
        var all = ByteBuffer()
        do {
            while var chunk = try await inbound.next() { all.writeBuffer(&chunk) }
        } catch {
            Issue.record("\(error) after \(all.readableBytes) bytes: \(String(buffer: all).components(separatedBy: "HTTP/1.1 ").map { $0.prefix(12) })")
        }
        return String(buffer: all)
    }

    /// Splits raw HTTP/1.1 responses; fails the test when one is cut short.
    static func responses(_ raw: String) -> [(head: String, body: String)] {
        var rest = Substring(raw)
        var out: [(String, String)] = []
        while !rest.isEmpty {
            guard let end = rest.range(of: "\r\n\r\n") else {
                Issue.record("a response head was cut off: \(rest.prefix(200))")
                break
            }
            let head = String(rest[..<end.lowerBound])
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let bodyStart = end.upperBound
            guard rest.utf8.distance(from: bodyStart, to: rest.endIndex) >= length else {
                Issue.record("a response body was cut off: \(head)")
                break
            }
            let bodyEnd = rest.utf8.index(bodyStart, offsetBy: length)
            out.append((head, String(rest[bodyStart..<bodyEnd])))
            rest = rest[bodyEnd...]
        }
        return out
    }


    /// Sends `bytes` on a new connection, then returns every response until the server closes it.
    static func exchange(_ port: Int, _ bytes: String) async throws -> [(head: String, body: String)] {
        let raw = try await connect(port)
        let text = try await raw.executeThenClose { inbound, outbound in
            var inbound = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: bytes))
            return try await readToEnd(&inbound)
        }
        return responses(text)
    }
}
