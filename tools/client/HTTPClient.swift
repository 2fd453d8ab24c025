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
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port).get()
        return HTTPClientConnection(channel: channel, host: host)
    }

    init(channel: any Channel, host: String) {
        self.channel = channel
        self.host = host
    }

    public func request(_ method: HTTPMethod, _ uri: String, body: String? = nil,
                        contentType: String = "application/json") async throws -> HTTPClientResponse {
        try await request(method, uri, body: body.map { ByteBuffer(string: $0) }, contentType: contentType)
    }

    public func request(_ method: HTTPMethod, _ uri: String, body: ByteBuffer?,
                        contentType: String = "application/json") async throws -> HTTPClientResponse {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers.add(name: "Host", value: host)
        if let body {
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        }
        let promise = channel.eventLoop.makePromise(of: HTTPClientResponse.self)
        channel.writeAndFlush(OutboundRequest(head: head, body: body, promise: promise), promise: nil)
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

struct OutboundRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    var promise: EventLoopPromise<HTTPClientResponse>
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
        context.write(wrapOutboundOut(.head(req.head)), promise: nil)
        if let b = req.body { context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
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
