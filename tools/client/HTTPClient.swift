import NIOCore
import NIOHTTP1
import NIOPosix

/// A response as the client saw it.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: String

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// One keep-alive HTTP/1.1 connection on SwiftNIO. Requests may be issued concurrently; they
/// are pipelined and answered in order. Used by tally-load and the end-to-end tests.
public final class HTTPClientConnection: Sendable {
    let channel: any Channel
    public let host: String

    public static func connect(host: String, port: Int,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> HTTPClientConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(PreEncodedRequestWriter())
                    try ops.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try ops.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port).get()
        return HTTPClientConnection(channel: channel, host: host)
    }

    init(channel: any Channel, host: String) {
        self.channel = channel
        self.host = host
    }

    /// The complete bytes of a request (head and body), to send with ``request(_:)``.
    public static func encode(_ method: HTTPMethod, _ uri: String, host: String, body: ByteBuffer?,
                              contentType: String = "application/json", headers: [(String, String)] = []) -> PreEncodedRequest {
        var b = ByteBuffer()
        b.writeString("\(method.rawValue) \(uri) HTTP/1.1\r\nHost: \(host)\r\n")
        for (name, value) in headers { b.writeString("\(name): \(value)\r\n") }
        if let body {
            b.writeString("Content-Type: \(contentType)\r\nContent-Length: \(body.readableBytes)\r\n\r\n")
            b.writeImmutableBuffer(body)
        } else {
            b.writeString("\r\n")
        }
        return PreEncodedRequest(method: method, bytes: b)
    }

    public func request(_ method: HTTPMethod, _ uri: String, body: String? = nil,
                        contentType: String = "application/json", headers: [(String, String)] = []) async throws -> HTTPClientResponse {
        try await request(method, uri, body: body.map { ByteBuffer(string: $0) }, contentType: contentType, headers: headers)
    }

    public func request(_ method: HTTPMethod, _ uri: String, body: ByteBuffer?,
                        contentType: String = "application/json", headers: [(String, String)] = []) async throws -> HTTPClientResponse {
        try await request(Self.encode(method, uri, host: host, body: body, contentType: contentType, headers: headers))
    }

    /// Sends a request encoded by ``encode(_:_:host:body:contentType:)``: a load generator
    /// builds them before its clock starts.
    public func request(_ r: PreEncodedRequest) async throws -> HTTPClientResponse {
        let promise = channel.eventLoop.makePromise(of: HTTPClientResponse.self)
        channel.writeAndFlush(OutboundRequest(request: r, promise: promise), promise: nil)
        return try await promise.futureResult.get()
    }

    public func get(_ uri: String) async throws -> HTTPClientResponse {
        try await request(.GET, uri, body: nil as ByteBuffer?)
    }

    public func post(_ uri: String, _ body: String, contentType: String = "application/json") async throws -> HTTPClientResponse {
        try await request(.POST, uri, body: body, contentType: contentType)
    }

    public func close() async {
        try? await channel.close()
    }
}

/// A request's bytes, with the method the response decoder needs to frame its answer.
public struct PreEncodedRequest: Sendable {
    public let method: HTTPMethod
    public let bytes: ByteBuffer
}

struct OutboundRequest: Sendable {
    var request: PreEncodedRequest
    var promise: EventLoopPromise<HTTPClientResponse>
}

/// Writes pre-encoded requests to the socket. The response decoder in front of it must still
/// see each request's head (it needs the method to frame the response), so requests travel as
/// a head, whose bytes are already in the body, then the body, then the end.
final class PreEncodedRequestWriter: ChannelOutboundHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .body(.byteBuffer(let bytes)):
            context.write(wrapOutboundOut(bytes), promise: promise)
        case .body(.fileRegion):
            promise?.fail(HTTPClientError(description: "file regions are not supported"))
        case .head, .end:
            promise?.succeed(())
        }
    }
}

/// Matches responses to requests in FIFO order.
final class ResponseCollector: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = OutboundRequest
    typealias OutboundOut = HTTPClientRequestPart

    private var waiting: [EventLoopPromise<HTTPClientResponse>] = []
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let req = unwrapOutboundIn(data)
        waiting.append(req.promise)
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: req.request.method, uri: ""))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(req.request.bytes))), promise: promise)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var b):
            body.writeBuffer(&b)
        case .end:
            guard let h = head, !waiting.isEmpty else { return }
            let p = waiting.removeFirst()
            p.succeed(HTTPClientResponse(status: Int(h.status.code), headers: h.headers.map { ($0.name, $0.value) },
                                         body: String(buffer: body)))
            head = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(HTTPClientError(description: "connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        let w = waiting
        waiting.removeAll()
        for p in w { p.fail(error) }
    }
}
