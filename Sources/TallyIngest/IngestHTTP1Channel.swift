import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// Hummingbird's HTTP/1 child channel with a ``ReadGuard`` in front (budget, read timeouts)
/// and an ``HTTPIngestHandler`` placed directly behind NIO's request decoder, ahead of the
/// HTTPTypes conversion, Hummingbird's connection state handler and the router.
///
/// Hummingbird's `additionalChannelHandlers` sit after that conversion; the ingest handler
/// works on NIO's own request and response parts, so it is added here once Hummingbird has
/// built the pipeline.
///
/// With `tls`, the connection speaks HTTPS: TLS sits behind the ``ReadGuard`` (so a slow or
/// oversized handshake meets the same timeouts and budget as a request head) and in front of
/// everything else. Each connection takes the context in force when it opens, so a reloaded
/// certificate applies to new connections.
public struct IngestHTTP1Channel: ServerChildChannel {
    public typealias Value = HTTP1Channel.Value

    let inner: HTTP1Channel
    let makeHandler: @Sendable () -> HTTPIngestHandler
    let makeGuard: @Sendable () -> ReadGuard
    let tls: (@Sendable () -> NIOSSLContext)?

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        if let tls {
            do {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls()))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let ops = channel.pipeline.syncOperations
            let decoder = try ops.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try ops.addHandler(makeHandler(), position: .after(decoder))
            try ops.addHandler(makeGuard(), position: .first)
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with `POST /event` and `POST /events` answered by ``HTTPIngestHandler``; over
    /// TLS when `tls` gives the context for each new connection.
    public static func http1(ingest: IngestContext, tls: (@Sendable () -> NIOSSLContext)? = nil) -> HTTPServerBuilder {
        let configuration = HTTP1Channel.Configuration(httpDecoderConfiguration: .init(
            maxHeaderFieldSize: HTTPIngest.decoderHeadBytes, maxHeaderListSize: HTTPIngest.decoderHeadBytes,
            maxHeaderFieldCount: HTTPIngest.maxHeaderCount + 1))
        return .init { responder in
            IngestHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: configuration),
                               makeHandler: { HTTPIngestHandler(context: ingest) },
                               makeGuard: {
                                   ReadGuard(budget: ingest.budget, timeouts: ingest.timeouts, startPhase: .header) {
                                       ingest.metrics.timedOut("http", $0)
                                   }
                               },
                               tls: tls)
        }
    }
}
