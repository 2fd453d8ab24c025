import HTTPTypes
import NIOCore
import NIOHTTP1
import TallyCore

/// Answers `POST /event` and `POST /events` with the default acknowledgement right behind
/// NIO's HTTP/1 request decoder, in front of Hummingbird.
///
/// Hummingbird converts each request to HTTPTypes, runs it through an async task, a router
/// and an async writer: several times what parsing and queueing one event costs, and
/// single-event requests are most of an analytics collector's traffic. This handler takes the
/// decoded request parts and writes NIO response parts itself, reusing the response head while
/// status, length and `Date` second repeat. The checks, bodies and metrics are
/// ``HTTPIngest``'s own (it calls them), so both paths answer alike. Responses go through
/// NIO's response encoder like the router's, so the encoder's per-request bookkeeping (it
/// frames HEAD responses without a body) stays in step.
///
/// Everything else passes through to Hummingbird unchanged: other routes, `?ack=durable`
/// (which waits asynchronously), queries it does not read as plain text, and any request that
/// arrives while a request it passed on is still being answered, so pipelined responses keep
/// their order. (Requests behind one that ends the connection never get here: NIO's decoder
/// refuses them.) Install it with ``IngestHTTP1Channel``.
public final class HTTPIngestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias InboundOut = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private struct Collecting {
        var single: Bool
        var close: Bool
        /// HTTP/1.0 with `Connection: keep-alive`, which must be confirmed in the response.
        var keepAlive10: Bool
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
    private var needsFlush = false
    /// A read held back while the socket's send buffer is full (see `read`).
    private var readPending = false
    /// The last keep-alive response, reused while its status, body and `Date` second repeat
    /// (nearly every 202 of a busy connection is the same).
    private var last: (second: Int64, status: Int, body: String, keepAlive10: Bool, head: HTTPResponseHead, bytes: ByteBuffer)?
    /// The `Date` header value, made again when the second changes.
    private var date: (second: Int64, value: String) = (-1, "")

    public init(ingest: HTTPIngest, serverName: String? = nil) {
        self.ingest = ingest
        self.serverName = serverName
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (part, mode) {
        case (.head(let head), _):
            if forwardedInFlight == 0, head.version != .http1_0,
               head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                // curl and others wait for this before sending a body over 1 KiB. Only when no
                // earlier response is pending, so it cannot overtake one; HTTP/1.0 has no 1xx.
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
                needsFlush = true
            }
            if forwardedInFlight == 0, let route = Self.route(head) {
                mode = .collecting(Collecting(single: route.single, close: !head.isKeepAlive,
                                              keepAlive10: head.version == .http1_0 && head.isKeepAlive,
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
            respond(context: context, c, answer(c))
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
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Holds reads while the socket cannot take more: a client that sends requests without
    /// reading the answers must not make the server buffer answers without bound.
    public func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if readPending && context.channel.isWritable {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Hummingbird may answer a request it could not parse without having been passed it.
        if case .end = unwrapOutboundIn(data), forwardedInFlight > 0 { forwardedInFlight -= 1 }
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

    private func respond(context: ChannelHandlerContext, _ c: Collecting, _ answer: (status: Int, body: String)) {
        let second = Timestamp.now() / 1_000_000
        let head: HTTPResponseHead, bytes: ByteBuffer
        if !c.close, let l = last, l.second == second, l.status == answer.status, l.keepAlive10 == c.keepAlive10,
           l.body == answer.body {
            (head, bytes) = (l.head, l.bytes)
        } else {
            if second != date.second { date = (second, Timestamp.httpDate(seconds: second)) }
            var fields = HTTPHeaders()
            for field in HTTPIngest.headers(status: answer.status) { fields.add(name: field.name.rawName, value: field.value) }
            fields.add(name: "Content-Length", value: String(answer.body.utf8.count))
            fields.add(name: "Date", value: date.value)
            if let serverName { fields.add(name: "Server", value: serverName) }
            if c.close { fields.add(name: "Connection", value: "close") }
            if c.keepAlive10 { fields.add(name: "Connection", value: "keep-alive") }
            head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: fields)
            bytes = context.channel.allocator.buffer(string: answer.body)
            if !c.close { last = (second, answer.status, answer.body, c.keepAlive10, head, bytes) }
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        if c.close {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            needsFlush = false
        } else {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            needsFlush = true
        }
    }


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
