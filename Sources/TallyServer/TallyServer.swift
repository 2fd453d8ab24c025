#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import TallyCore
import TallyIngest
import TallyPipeline
import TallyReport
import TallyStore

/// The whole collector as one service: store, pipeline, wire listeners and HTTP, started in
/// data-path order and stopped in reverse, so nothing accepted is left behind.
public final class TallyServer: Service, Sendable {
    /// Where the server listens once started.
    public struct Endpoints: Sendable {
        public var httpPort: Int
        public var wirePort: Int
    }

    public let configuration: ServerConfiguration
    public let registry = PrometheusCollectorRegistry()
    let logger: Logger
    private let ready: EventLoopPromise<Endpoints>
    private let state = NIOLockedValueBox<(pipeline: Pipeline?, store: (any EventStore)?)>((nil, nil))

    public init(configuration: ServerConfiguration, logger: Logger = Logger(label: "tally")) {
        self.configuration = configuration
        self.logger = logger
        self.ready = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Endpoints.self)
    }

    /// Waits until every listener is bound (or start-up failed).
    public func endpoints() async throws -> Endpoints {
        try await ready.futureResult.get()
    }

    public var pipeline: Pipeline? { state.withLockedValue { $0.pipeline } }

    public func run() async throws {
        do {
            try await runServer()
        } catch {
            ready.fail(error)
            throw error
        }
    }

    private func runServer() async throws {
        let c = configuration
        let factory = PrometheusMetricsFactory(registry: registry)
        let spoolDir = c.dataDirectory + "/spool"
        try FileManager.default.createDirectory(atPath: c.dataDirectory, withIntermediateDirectories: true)
        let instance = try InstanceID.load(directory: c.dataDirectory)
        let store: any EventStore
        if let url = c.storeURL {
            store = try PostgresStore(url: url, logger: logger)
        } else {
            store = SQLiteStore(path: c.dataDirectory + "/tally.sqlite")
        }
        do {
            try await store.prepare()
        } catch where c.storeURL != nil {
            // A shared database may be down while this collector starts: accept and spool
            // events anyway; the loader creates the schema once the database answers.
            logger.warning("PostgreSQL not ready; events will wait in the spool", metadata: ["error": "\(error)"])
        } catch {
            try? await store.close()
            throw error
        }
        let pipeline = try Pipeline(
            configuration: PipelineConfiguration(
                spoolDirectory: spoolDir, shards: c.shards, queueCapacity: c.queueCapacity, flushEvents: c.flushEvents,
                flushIntervalMilliseconds: c.flushIntervalMilliseconds, maxSpoolFiles: c.maxSpoolFiles, instanceID: instance),
            store: store, metricsFactory: factory, logger: logger)
        state.withLockedValue { $0 = (pipeline, store) }
        pipeline.start()

        let ingestMetrics = IngestMetrics(factory: factory)
        let wire = WireServer(
            configuration: .init(host: c.wireHost, port: c.wirePort, udpReceiveBuffer: c.udpReceiveBuffer),
            queue: pipeline.queue, metrics: ingestMetrics, logger: logger)
        let wirePort = try await wire.start()

        let udpDrops = Gauge(label: "tally_udp_kernel_drops", factory: factory)
        let router = Router()
        let ingest = HTTPIngest(queue: pipeline.queue, metrics: ingestMetrics,
                                durableTimeout: .milliseconds(c.durableTimeoutMilliseconds),
                                spoolWritable: { pipeline.spoolWritable })
        ingest.addRoutes(to: router)
        ReportRoutes(store: store, registry: registry,
                     health: { await Self.health(pipeline: pipeline, store: store) },
                     beforeScrape: {
                         pipeline.refreshGauges()
                         if let d = wire.kernelUDPDrops() { udpDrops.record(d) }
                     }).addRoutes(to: router)
        let ready = self.ready
        let app = Application(
            router: router,
            // Plain ingest requests are answered in the channel pipeline; the rest reach the router.
            server: .http1(ingest: ingest, serverName: "tally"),
            configuration: .init(address: .hostname(c.httpHost, port: c.httpPort), serverName: "tally"),
            onServerRunning: { channel in
                ready.succeed(Endpoints(httpPort: channel.localAddress?.port ?? c.httpPort, wirePort: wirePort))
            },
            logger: logger)

        // Returns once graceful shutdown began and HTTP stopped accepting.
        do {
            try await app.run()
        } catch {
            logger.error("HTTP server failed", metadata: ["error": "\(error)"])
        }
        logger.info("stopping: closing wire listeners, draining the queue into the store")
        await wire.stop()
        let deadline = Task {
            try await Task.sleep(for: .seconds(c.shutdownTimeoutSeconds))
            self.logger.warning("shutdown deadline reached; unloaded batches stay in the spool for the next start")
            pipeline.abandonLoading()
        }
        await pipeline.drain()
        deadline.cancel()
        try? await store.close()
        logger.info("stopped")
    }

    static func health(pipeline: Pipeline, store: any EventStore) async -> HealthSnapshot {
        let s = pipeline.status
        let count = try? await store.eventCount()
        let stored = count.map { String($0) } ?? "null"
        // Degraded: events are still accepted and spooled, but not loaded or not queryable.
        let healthy = s.spoolWritable && s.storeError == nil && count != nil
        return HealthSnapshot(healthy: healthy, fields: [
            ("queue_depth", String(s.queueDepths.reduce(0, +))),
            // True when every accepted event is in the store (nothing queued, in flight or spooled).
            ("idle", pipeline.isIdle ? "true" : "false"),
            ("queue_capacity", String(s.queueCapacityPerShard * s.queueDepths.count)),
            ("spool_backlog_files", String(s.spoolBacklogFiles)),
            ("spool_backlog_bytes", String(s.spoolBacklogBytes)),
            ("spool_writable", s.spoolWritable ? "true" : "false"),
            ("quarantined_files", String(s.quarantinedFiles)),
            ("store_error", s.storeError.map(JSONText.quote) ?? "null"),
            ("events_stored", stored),
        ])
    }
}

/// A random id kept in the data directory: prefixes batch ids, so batches from several
/// collectors never collide in a shared store.
enum InstanceID {
    static func load(directory: String) throws -> String {
        let path = directory + "/instance-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        var rng = SystemRandomNumberGenerator()
        let id = String(rng.next() as UInt64, radix: 16)
        try (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return id
    }
}
