#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import HummingbirdCore
import ServiceLifecycle
import TallyCore
import TallySites
import TallyWire
import TallyEnrich

/// The wire protocol on one port over both TCP and UDP, as a service: `run` binds both
/// sockets, reports the port, and on graceful shutdown closes the listeners and every open
/// connection (frames they still held are enqueued on the way out, see ``WireTCPHandler``).
public final class WireServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Requested SO_RCVBUF for the UDP socket (the kernel may cap it at net.core.rmem_max).
        public var udpReceiveBuffer: Int
        /// Open TCP connections at most (see ``ConnectionLimit``).
        public var maxConnections: Int
        /// Bytes of partly received frames, shared with the HTTP listener.
        public var budget: BufferBudget
        /// A frame must arrive whole within `start` of its first byte; a connection reading
        /// nothing is closed after `idle`.
        public var timeouts: ReadTimeouts
        public var enricher: Enricher
        /// Registered sites: a frame for a site with write keys, or (`--closed`) for an
        /// unregistered one, is refused (the protocol carries no key yet).
        public var sites: SiteRulesSource
        /// Sites' own rates: TCP senders over one wait (backpressure), UDP frames are dropped.
        public var rates: RateLimits

        public init(host: String, port: Int, udpReceiveBuffer: Int, maxConnections: Int, budget: BufferBudget, timeouts: ReadTimeouts,
                    enricher: Enricher, sites: SiteRulesSource = SiteRulesSource(), rates: RateLimits = RateLimits()) {
            self.enricher = enricher
            self.sites = sites
            self.rates = rates
            self.host = host
            self.port = port
            self.udpReceiveBuffer = udpReceiveBuffer
            self.maxConnections = maxConnections
            self.budget = budget
            self.timeouts = timeouts
        }
    }

    /// Datagrams read per system call (recvmmsg).
    static let udpVectorReads = 32

    let configuration: Configuration
    let sink: any EventSink
    let metrics: IngestMetrics
    let logger: Logger
    let group: any EventLoopGroup
    private let onBound: @Sendable (Int) -> Void
    private let channels = NIOLockedValueBox<(tcp: (any Channel)?, udp: (any Channel)?)>((nil, nil))

    /// `onBound` gets the port once both sockets listen (useful when configured as 0).
    public init(configuration: Configuration, sink: any EventSink, metrics: IngestMetrics,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.configuration = configuration
        self.sink = sink
        self.metrics = metrics
        self.group = group
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        onBound(try await start())
        try? await gracefulShutdown()
        logger.info("stopping: closing wire listeners")
        await stop()
    }

    /// Binds both sockets; returns the port.
    func start() async throws -> Int {
        let sink = self.sink, metrics = self.metrics, logger = self.logger
        let limit = ConnectionLimit(maximum: configuration.maxConnections, listener: "wire", factory: metrics.factory)
        let budget = configuration.budget, timeouts = configuration.timeouts, enricher = configuration.enricher, sites = configuration.sites,
            rates = configuration.rates
        let tcp = try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AvailableConnectionsChannelHandler(delegate: limit))
                }
            }
            .serverChannelOption(.backlog, value: Int32(ConnectionLimit.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ReadGuard(budget: budget, timeouts: timeouts, startPhase: .frame) { metrics.timedOut("wire", $0) },
                        ByteToMessageHandler(WireFrameDecoder()),
                        WireTCPHandler(sink: sink, metrics: metrics, enricher: enricher, sites: sites, rates: rates))
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        let port = tcp.localAddress?.port ?? configuration.port
        let vector = Self.udpVectorReads
        let udp: any Channel
        do {
            udp = try await DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.udpReceiveBuffer))
                .channelOption(.datagramVectorReadMessageCount, value: vector)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536 * vector))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(WireUDPHandler(sink: sink, metrics: metrics, enricher: enricher, sites: sites, rates: rates))
                    }
                }
                .bind(host: configuration.host, port: port).get()
        } catch {
            try? await tcp.close()
            throw error
        }
        channels.withLockedValue { $0 = (tcp, udp) }
        logger.info("wire protocol listening", metadata: ["host": "\(configuration.host)", "port": "\(port)", "transports": "tcp+udp"])
        return port
    }

    /// Stops accepting: closes the listening TCP socket, the UDP socket and every open connection.
    func stop() async {
        let (tcp, udp) = channels.withLockedValue { c in
            defer { c = (nil, nil) }
            return c
        }
        try? await udp?.close()
        try? await tcp?.close()
    }

    /// Datagrams the kernel dropped on the UDP socket (receive buffer full), from /proc/net/udp.
    public func kernelUDPDrops() -> Int? {
        guard let port = channels.withLockedValue({ $0.udp?.localAddress?.port }) else { return nil }
        return UDPDrops.read(port: port)
    }
}

enum UDPDrops {
    /// Sums the `drops` column of /proc/net/udp and /proc/net/udp6 for sockets bound to `port`.
    static func read(port: Int) -> Int? {
        var total = 0
        var found = false
        let hexPort = ":" + String(format4(port))
        for file in ["/proc/net/udp", "/proc/net/udp6"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let cols = line.split(separator: " ", omittingEmptySubsequences: true)
                guard cols.count >= 13, cols[1].hasSuffix(hexPort), let drops = Int(cols[12]) else { continue }
                total += drops
                found = true
            }
        }
        return found ? total : nil
    }

    private static func format4(_ port: Int) -> String {
        let h = String(port, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - h.count)) + h
    }
}
