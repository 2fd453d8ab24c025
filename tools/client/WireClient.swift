import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TallyCore
import TallyWire

/// Sends wire-protocol datagrams to one server.
public final class WireUDPClient: Sendable {
    let channel: any Channel
    let remote: SocketAddress

    public static func connect(host: String, port: Int,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> WireUDPClient {
        let remote = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .bind(host: remote.protocol == .inet6 ? "::" : "0.0.0.0", port: 0).get()
        return WireUDPClient(channel: channel, remote: remote)
    }

    init(channel: any Channel, remote: SocketAddress) {
        self.channel = channel
        self.remote = remote
    }

    /// Sends one datagram holding `bytes` (one or more whole frames).
    public func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: bytes))
    }

    public func close() async {
        try? await channel.close()
    }
}

/// A TCP connection speaking the wire protocol, tracking ACKs and ERROR frames from the server.
public final class WireTCPClient: Sendable {
    let channel: any Channel
    let state: AckState

    public static func connect(host: String, port: Int,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> WireTCPClient {
        let state = AckState()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ServerFrameReader(state: state))
                }
            }
            .connect(host: host, port: port).get()
        return WireTCPClient(channel: channel, state: state)
    }

    init(channel: any Channel, state: AckState) {
        self.channel = channel
        self.state = state
    }

    /// Writes raw bytes (any number of frames, or any part of one).
    public func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes)
    }

    public func send(_ frame: EventsFrame) async throws {
        var b = channel.allocator.buffer(capacity: 256)
        FrameEncoder.writeEvents(frame, into: &b)
        try await send(b)
    }

    /// Sends an AUTH frame with a site's write key and waits for the server's AUTH_OK: the
    /// key's site and key id. Throws on an ERROR frame (13: no site has this key) or a close.
    @discardableResult
    public func authenticate(key: String) async throws -> (siteID: String, keyID: String) {
        let promise = channel.eventLoop.makePromise(of: (siteID: String, keyID: String).self)
        state.waitForAuth(promise)
        var b = channel.allocator.buffer(capacity: 64)
        FrameEncoder.writeAuth(key: key, into: &b)
        try await send(b)
        return try await promise.futureResult.get()
    }

    /// Highest sequence number the server has acknowledged as durable.
    public var acked: UInt64? { state.box.withLockedValue { $0.acked } }
    /// The ERROR frame the server sent, if any.
    public var serverError: (code: WireError, message: String)? { state.box.withLockedValue { $0.error } }

    /// Waits until the server acknowledged `sequence` (or later); throws on an ERROR frame,
    /// a closed connection or the timeout.
    public func waitForAck(_ sequence: UInt64, timeout: Duration = .seconds(30)) async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        state.wait(sequence, promise)
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            promise.fail(HTTPClientError(description: "timed out waiting for ack \(sequence)"))
        }
        defer { timer.cancel() }
        try await promise.futureResult.get()
    }

    /// Waits until the server closes the connection, or closes it after `timeout` (then the
    /// caller's checks of ``serverError`` fail instead of the test hanging).
    public func waitForClose(timeout: Duration = .seconds(30)) async {
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        timer.cancel()
    }

    public func close() async {
        try? await channel.close()
    }
}

final class AckState: Sendable {
    struct State {
        var acked: UInt64?
        var error: (code: WireError, message: String)?
        var closed = false
        var waiters: [(UInt64, EventLoopPromise<Void>)] = []
        /// Callers of ``WireTCPClient/authenticate(key:)`` in the order their AUTH frames went.
        var authWaiters: [EventLoopPromise<(siteID: String, keyID: String)>] = []
    }

    func waitForAuth(_ p: EventLoopPromise<(siteID: String, keyID: String)>) {
        let failed: Bool = box.withLockedValue { s in
            if s.error != nil || s.closed { return true }
            s.authWaiters.append(p)
            return false
        }
        if failed { p.fail(HTTPClientError(description: "connection ended before AUTH_OK")) }
    }

    func authenticated(siteID: String, keyID: String) {
        let p: EventLoopPromise<(siteID: String, keyID: String)>? = box.withLockedValue { s in
            s.authWaiters.isEmpty ? nil : s.authWaiters.removeFirst()
        }
        p?.succeed((siteID, keyID))
    }
    let box = NIOLockedValueBox(State())

    func wait(_ seq: UInt64, _ p: EventLoopPromise<Void>) {
        let outcome: Result<Void, any Error>? = box.withLockedValue { s in
            if let a = s.acked, a >= seq { return .success(()) }
            if let e = s.error { return .failure(HTTPClientError(description: "server error \(e.code.label): \(e.message)")) }
            if s.closed { return .failure(HTTPClientError(description: "connection closed")) }
            s.waiters.append((seq, p))
            return nil
        }
        if let outcome { p.completeWith(outcome) }
    }

    func update(ack: UInt64? = nil, error: (WireError, String)? = nil, closed: Bool = false) {
        let (ok, failed, auth, reason): ([EventLoopPromise<Void>], [EventLoopPromise<Void>], [EventLoopPromise<(siteID: String, keyID: String)>], String)
            = box.withLockedValue { s in
            if let ack { s.acked = max(s.acked ?? 0, ack) }
            if let error { s.error = error }
            if closed { s.closed = true }
            var ok: [EventLoopPromise<Void>] = []
            var failed: [EventLoopPromise<Void>] = []
            s.waiters.removeAll { w in
                if let a = s.acked, a >= w.0 { ok.append(w.1); return true }
                if s.error != nil || s.closed { failed.append(w.1); return true }
                return false
            }
            let auth = (s.error != nil || s.closed) ? s.authWaiters : []
            if !auth.isEmpty { s.authWaiters = [] }
            return (ok, failed, auth, s.error.map { "server error \($0.code.label): \($0.message)" } ?? "connection closed")
        }
        // Completed outside the lock: a waiter's callbacks may call back into this state.
        for p in auth { p.fail(HTTPClientError(description: reason)) }
        for p in ok { p.succeed(()) }
        for p in failed { p.fail(HTTPClientError(description: "connection ended before ack")) }
    }
}

final class ServerFrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let state: AckState
    var buffer = ByteBuffer()

    init(state: AckState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while true {
            guard let step = try? FrameDecoder.decode(&buffer) else {
                state.update(error: (.badMagic, "unreadable frame from server"))
                context.close(promise: nil)
                return
            }
            switch step {
            case .needMoreData:
                buffer.discardReadBytes()
                return
            case .frame(.ack(let seq)): state.update(ack: seq)
            case .frame(.error(let code, let message)): state.update(error: (code, message))
            case .frame(.authOK(let site, let id)): state.authenticated(siteID: site, keyID: id)
            case .frame(.events), .frame(.auth): break
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.update(closed: true)
        context.fireChannelInactive()
    }
}
