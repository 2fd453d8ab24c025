import HTTPTypes
import NIOCore
import NIOHTTPTypes
import TallyCore

/// Answers `POST /event` and `POST /events` with the default acknowledgement right in the
/// channel pipeline, in front of Hummingbird's router.
///
/// Hummingbird runs each request through an async task, a router and an async writer, which
/// costs several times what parsing and queueing one event does; single-event requests are
/// most of an analytics collector's traffic. This handler sees the HTTP parts after decoding,
/// takes a complete ingest request, and writes the answer itself: the same checks, bodies and
/// metrics as ``HTTPIngest`` (which it calls), in the same order on the connection.
///
/// Everything else passes through to Hummingbird unchanged: other routes, `?ack=durable`
/// (which waits asynchronously), queries it does not read as plain text, and any request that
/// arrives while a request it passed on is still being answered, so pipelined responses keep
/// their order.
public final class HTTPIngestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    private enum Mode {
        case idle
        /// Passing the current request on to Hummingbird.
        case forwarding
        /// Reading the body of a request this handler answers.
        case collecting(single: Bool, close: Bool, contentType: String?, ack: String?, body: ByteBuffer, tooLarge: Bool)
    }

    private let ingest: HTTPIngest
    private let serverName: String?
    private var mode = Mode.idle
    /// Requests passed on whose response has not ended yet.
    private var forwardedInFlight = 0
    /// The `Date` header, made again when the second changes.
    private var date: (second: Int64, value: String) = (-1, "")

    public init(ingest: HTTPIngest, serverName: String? = nil) {
        self.ingest = ingest
        self.serverName = serverName
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (part, mode) {
        case (.head(let head), _):
            if forwardedInFlight == 0, let route = Self.route(head) {
                mode = .collecting(single: route.single, close: head.headerFields[.connection]?.lowercased() == "close",
                                   contentType: head.headerFields[.contentType], ack: route.ack,
                                   body: context.channel.allocator.buffer(capacity: 0), tooLarge: false)
            } else {
                mode = .forwarding
                forwardedInFlight += 1
                context.fireChannelRead(data)
            }
        case (.body(var chunk), .collecting(let single, let close, let contentType, let ack, var body, var tooLarge)):
            if !tooLarge {
                if body.readableBytes + chunk.readableBytes > HTTPIngest.bodyLimit(single: single) {
                    tooLarge = true
                    body.clear()
                } else if body.readableBytes == 0 {
                    body = chunk
                } else {
                    body.writeBuffer(&chunk)
                }
            }
            mode = .collecting(single: single, close: close, contentType: contentType, ack: ack, body: body, tooLarge: tooLarge)
        case (.end, .collecting(let single, let close, let contentType, let ack, let body, let tooLarge)):
            mode = .idle
            respond(context: context, close: close,
                    answer(single: single, contentType: contentType, ack: ack, body: body, tooLarge: tooLarge))
        case (.end, _):
            mode = .idle
            context.fireChannelRead(data)
        default:
            context.fireChannelRead(data)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { forwardedInFlight -= 1 }
        context.write(data, promise: promise)
    }

    /// Status and JSON body for a complete request, exactly as ``HTTPIngest/handle(_:single:)``
    /// would answer it with `ack` absent or `queued`.
    private func answer(single: Bool, contentType: String?, ack: String?, body: ByteBuffer, tooLarge: Bool) -> (status: Int, body: String) {
        let receivedAt = Timestamp.now()
        do throws(EventBodyParser.Rejection) {
            _ = try HTTPIngest.ackLevel(ack)
            try HTTPIngest.checkContentType(contentType)
            if tooLarge { throw HTTPIngest.tooLarge(HTTPIngest.bodyLimit(single: single)) }
            let events = try HTTPIngest.parse(body, single: single, receivedAt: receivedAt)
            return (202, try ingest.enqueueQueued(events, single: single))
        } catch {
            let r = ingest.rejected(error)
            return (r.status, r.body)
        }
    }

    private func respond(context: ChannelHandlerContext, close: Bool, _ answer: (status: Int, body: String)) {
        var fields = HTTPIngest.headers(status: answer.status)
        fields[.contentLength] = String(answer.body.utf8.count)
        let second = Timestamp.now() / 1_000_000
        if second != date.second { date = (second, Timestamp.httpDate(seconds: second)) }
        fields[.date] = date.value
        if let serverName { fields[.server] = serverName }
        if close { fields[.connection] = "close" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: answer.status), headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: answer.body))), promise: nil)
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context] _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// The ingest route of a request this handler answers itself, with its `ack` value.
    static func route(_ head: HTTPRequest) -> (single: Bool, ack: String?)? {
        guard head.method == .post, let target = head.path else { return nil }
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
