import HTTPTypes
import NIOCore
import NIOHTTP1
import TallyCore

/// Answers `POST /event` and `POST /events` with the default acknowledgement right behind
/// NIO's HTTP/1 request decoder, in front of Hummingbird.
///
/// Hummingbird converts each request to HTTPTypes, runs it through an async task, a router
/// and an async writer, and encodes the response through two more handlers: several times
/// what parsing and queueing one event costs, and single-event requests are most of an
/// analytics collector's traffic. This handler takes the decoded request parts, and writes
/// the whole response as one pre-encoded buffer straight to the socket (on the response
/// encoder's context, so past the encoder). The checks, bodies and metrics are
/// ``HTTPIngest``'s own (it calls them), so both paths answer alike.
///
/// Everything else passes through to Hummingbird unchanged: other routes, `?ack=durable`
/// (which waits asynchronously), queries it does not read as plain text, and any request that
/// arrives while a request it passed on is still being answered, so pipelined responses keep
/// their order. Install it with ``IngestHTTP1Channel``.
public final class HTTPIngestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias InboundOut = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private struct Collecting {
        var single: Bool
        var close: Bool
        var contentType: String?
        var ack: String?
        var body: ByteBuffer?
        var tooLarge = false
    }

    private enum Mode {
        case idle
        /// Passing the current request on to Hummingbird.
        case forwarding
        /// Reading the body of a request this handler answers.
        case collecting(Collecting)
    }

    private let ingest: HTTPIngest
    private let serverName: String?
    private var mode = Mode.idle
    /// Requests passed on whose response has not ended yet.
    private var forwardedInFlight = 0
    /// The response encoder's context: what is written on it goes to the socket as is.
    private var socket: ChannelHandlerContext?
    private var needsFlush = false
    /// The last keep-alive response, reused while its status, body and `Date` second repeat
    /// (nearly every 202 of a busy connection is the same bytes).
    private var last: (second: Int64, status: Int, body: String, bytes: ByteBuffer)?
    /// The `Date` header value, made again when the second changes.
    private var date: (second: Int64, value: String) = (-1, "")

    public init(ingest: HTTPIngest, serverName: String? = nil) {
        self.ingest = ingest
        self.serverName = serverName
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        // Without the encoder to write past, every request goes the router's way.
        socket = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        socket = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (part, mode) {
        case (.head(let head), _):
            if forwardedInFlight == 0, let socket, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                // curl and others wait for this before sending a body over 1 KiB. Only when no
                // earlier response is pending, so it cannot overtake one.
                socket.write(NIOAny(Self.continueResponse), promise: nil)
                needsFlush = true
            }
            if forwardedInFlight == 0, socket != nil, let route = Self.route(head) {
                mode = .collecting(Collecting(single: route.single, close: !head.isKeepAlive,
                                              contentType: head.headers.first(name: "content-type"), ack: route.ack))
            } else {
                mode = .forwarding
                forwardedInFlight += 1
                context.fireChannelRead(data)
            }
        case (.body(var chunk), .collecting(var c)):
            // Release the enum's copy first so appending does not copy the buffer.
            mode = .idle
            if !c.tooLarge {
                let have = c.body?.readableBytes ?? 0
                if have + chunk.readableBytes > HTTPIngest.bodyLimit(single: c.single) {
                    c.tooLarge = true
                    c.body = nil
                } else if c.body == nil {
                    c.body = chunk
                } else {
                    c.body!.writeBuffer(&chunk)
                }
            }
            mode = .collecting(c)
        case (.end, .collecting(let c)):
            mode = .idle
            respond(context: context, close: c.close, answer(c))
        case (.end, _):
            mode = .idle
            context.fireChannelRead(data)
        default:
            context.fireChannelRead(data)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        // Responses to everything read in one go leave in one write.
        if needsFlush {
            needsFlush = false
            socket?.flush()
        }
        context.fireChannelReadComplete()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { forwardedInFlight -= 1 }
        context.write(data, promise: promise)
    }

    /// Status and JSON body for a complete request, exactly as ``HTTPIngest/handle(_:single:)``
    /// would answer it with `ack` absent or `queued`.
    private func answer(_ c: Collecting) -> (status: Int, body: String) {
        let receivedAt = Timestamp.now()
        do throws(EventBodyParser.Rejection) {
            _ = try HTTPIngest.ackLevel(c.ack)
            try HTTPIngest.checkContentType(c.contentType)
            if c.tooLarge { throw HTTPIngest.tooLarge(HTTPIngest.bodyLimit(single: c.single)) }
            let events = try HTTPIngest.parse(c.body ?? ByteBuffer(), single: c.single, receivedAt: receivedAt)
            return (202, try ingest.enqueueQueued(events, single: c.single))
        } catch {
            let r = ingest.rejected(error)
            return (r.status, r.body)
        }
    }

    private func respond(context: ChannelHandlerContext, close: Bool, _ answer: (status: Int, body: String)) {
        guard let socket else { return }
        let second = Timestamp.now() / 1_000_000
        let bytes: ByteBuffer
        if !close, let l = last, l.second == second, l.status == answer.status, l.body == answer.body {
            bytes = l.bytes
        } else {
            if second != date.second { date = (second, Timestamp.httpDate(seconds: second)) }
            bytes = encode(answer, close: close, allocator: context.channel.allocator)
            if !close { last = (second, answer.status, answer.body, bytes) }
        }
        if close {
            let channel = context.channel
            socket.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
            needsFlush = false
        } else {
            socket.write(NIOAny(bytes), promise: nil)
            needsFlush = true
        }
    }

    /// The whole response, with the same header fields the router path sends.
    private func encode(_ answer: (status: Int, body: String), close: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        let reason = HTTPResponseStatus(statusCode: answer.status).reasonPhrase
        var b = allocator.buffer(capacity: 192 + answer.body.utf8.count)
        b.writeString("HTTP/1.1 \(answer.status) \(reason)\r\n")
        for field in HTTPIngest.headers(status: answer.status) {
            b.writeString(field.name.rawName)
            b.writeString(": ")
            b.writeString(field.value)
            b.writeString("\r\n")
        }
        b.writeString("Content-Length: \(answer.body.utf8.count)\r\nDate: ")
        b.writeString(date.value)
        if let serverName {
            b.writeString("\r\nServer: ")
            b.writeString(serverName)
        }
        b.writeString(close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n")
        b.writeString(answer.body)
        return b
    }

    private static let continueResponse = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    /// The ingest route of a request this handler answers itself, with its `ack` value.
    static func route(_ head: HTTPRequestHead) -> (single: Bool, ack: String?)? {
        guard head.method == .POST else { return nil }
        let target = head.uri
        let path: Substring, query: Substring?
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            query = target[target.index(after: q)...]
        } else {
            path = target[...]
            query = nil
        }
        let single: Bool
        switch path {
        case "/event": single = true
        case "/events": single = false
        default: return nil
        }
        var ack: String?
        if let query {
            // Only plain `name=value` pairs; anything encoded is left to Hummingbird's parser.
            guard !query.contains(where: { $0 == "%" || $0 == "+" || $0 == "#" }) else { return nil }
            for pair in query.split(separator: "&") where pair.hasPrefix("ack") {
                guard ack == nil, pair.hasPrefix("ack=") else { return nil }
                ack = String(pair.dropFirst(4))
            }
        }
        if ack == "durable" { return nil }
        return (single, ack)
    }
}
