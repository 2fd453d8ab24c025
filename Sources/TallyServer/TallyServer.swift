import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle
import UnixSignals
import TallyCore
import TallyEnrich
import TallyAdmin
import TallyBrowser
import TallyHTTP
import TallyIngest
import TallyLifecycle
import TallyPipeline
import TallyReport
import TallySites
import TallyStore

/// The whole collector: store, pipeline, wire listeners and HTTP as services of one
/// `ServiceGroup`, listed in data-path order. The group starts them in that order and, on a
/// graceful shutdown, stops them in reverse: the listeners stop taking events first, the
/// pipeline then drains everything queued into the store, and the store closes last. One
/// deadline (`shutdownTimeout`) bounds the whole shutdown; past it the group cancels what is
/// left, and the pipeline leaves unloaded batches in the spool for the next start.
public final class TallyServer: Sendable {
    /// Where the server listens once started.
    public struct Endpoints: Sendable {
        public var httpPort: Int
        public var wirePort: Int
    }

    public let configuration: ServerConfiguration
    public let registry: PrometheusCollectorRegistry
    public let pipeline: Pipeline
    public let janitor: DataJanitor
    let store: any EventStore
    let services: [any Service]
    private let group: ServiceGroup
    private let directoryLock: DataDirectoryLock
    private let ready: Ready

    /// Builds every part (opening the store and the spool) without starting anything.
    public init(configuration c: ServerConfiguration, logger: Logger = Logger(label: "tally"),
                gracefulShutdownSignals: [UnixSignal] = []) async throws {
        self.configuration = c
        // Settings read from files first: a bad one stops the start before anything is open.
        let adminToken = try c.adminTokenFile.map { try Self.token($0, setting: "--admin-token-file") }
        let metricsToken = try c.metricsTokenFile.map { try Self.token($0, setting: "--metrics-token-file") }
        if let rollups = c.rollupRetentionDays, rollups < c.rawRetentionDays ?? Int.max {
            throw SettingError(description: "--rollup-retention-days (\(rollups)) must be at least --raw-retention-days (\(c.rawRetentionDays.map(String.init) ?? "forever")): the reports would lose days whose raw rows are kept")
        }
        let tls: TLSCertificates?
        switch (c.tlsCertificateFile, c.tlsKeyFile) {
        case (nil, nil): tls = nil
        case (let cert?, let key?): tls = try TLSCertificates(certificateFile: cert, keyFile: key, interval: c.tlsReloadInterval, logger: logger)
        default: throw SettingError(description: "--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
        }
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        try PrivateFiles.makeDirectory(c.dataDirectory)
        let directoryLock = try DataDirectoryLock(directory: c.dataDirectory)
        self.directoryLock = directoryLock
        if FileManager.default.fileExists(atPath: c.dataDirectory + "/" + Restore.incompleteMarker) {
            throw SettingError(description: "a restore into \(c.dataDirectory) did not finish: run `tally restore` into it again (or remove the directory) before serving from it")
        }
        let instance = try InstanceID.load(directory: c.dataDirectory)

        let store: any LifecycleStore & SiteRegistryStore = if let url = c.storeURL {
            try PostgresStore(url: url, logger: logger)
        } else {
            SQLiteStore(path: c.dataDirectory + "/tally.sqlite")
        }
        var storeReady = true
        do {
            try await store.prepare()
        } catch where c.storeURL != nil {
            storeReady = false
            // A shared database may be down while this collector starts: accept and spool
            // events anyway; the loader creates the schema once the database answers.
            logger.warning("PostgreSQL not ready; events will wait in the spool", metadata: ["error": "\(error)"])
        } catch {
            try? await store.close()
            throw error
        }
        self.store = store
        let pipeline = try Pipeline(
            configuration: PipelineConfiguration(
                spoolDirectory: c.dataDirectory + "/spool", shards: c.shards, queueCapacity: c.queueCapacity,
                flushEvents: c.flushEvents, flushInterval: c.flushInterval, maxSpoolFiles: c.maxSpoolFiles, instanceID: instance),
            store: store, metricsFactory: factory, logger: logger)
        self.pipeline = pipeline

        let descriptors = ConnectionLimit.raiseDescriptorLimit()
        let perListener = c.maxConnections ?? ConnectionLimit.automatic(descriptorLimit: descriptors.soft)
        logger.info("open-file limit", metadata: [
            "soft": "\(descriptors.soft)", "hard": "\(descriptors.hard)", "max_connections_per_listener": "\(perListener)"])
        let ready = Ready()
        self.ready = ready
        let ingestMetrics = IngestMetrics(factory: factory, logger: logger)
        let budget = BufferBudget(limit: c.maxBufferedBytes, factory: factory)
        let enricher = Enricher(botFilter: c.botFilter, addressRule: ClientAddressRule(trustedProxies: c.trustedProxies))
        let salts = SaltKeeper(store: store, enricher: enricher, logger: logger)
        await salts.sync()
        let sites = SiteRulesSource(SiteRules(closed: c.closed, version: -1))
        let rates = RateLimits(perAddress: c.ipRate)
        let janitor = DataJanitor(store: store, retention: RetentionPolicy(days: c.rawRetentionDays, rollupDays: c.rollupRetentionDays),
                                  waitForSites: true, busy: { pipeline.isLoading }, metricsFactory: factory, logger: logger)
        self.janitor = janitor
        var watcher = RegistryWatcher(store: store, source: sites, closed: c.closed,
                                      snapshotPath: c.dataDirectory + "/sites.json", logger: logger)
        watcher.onSites = { [days = c.rawRetentionDays, rollups = c.rollupRetentionDays] sites in
            janitor.setRetention(RetentionPolicy(days: days, rollupDays: rollups, sites: sites))
        }
        // With the database down, its copy now; the service reads the store once it answers.
        if storeReady { await watcher.sync() } else { watcher.useSavedCopy() }
        let wire = WireServer(
            configuration: .init(host: c.wireHost, port: c.wirePort, udpReceiveBuffer: c.udpReceiveBuffer,
                                 maxConnections: perListener, budget: budget,
                                 timeouts: ReadTimeouts(start: c.bodyTimeout, body: c.bodyTimeout, idle: c.idleTimeout),
                                 enricher: enricher, sites: sites, rates: rates),
            sink: pipeline, metrics: ingestMetrics, logger: logger, onBound: { ready.wireBound($0) })

        let udpDrops = Gauge(label: "tally_udp_kernel_drops", factory: factory)
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        ReportRoutes(store: store, registry: registry,
                     health: { await Self.health(pipeline: pipeline, store: store) },
                     beforeScrape: {
                         pipeline.refreshGauges()
                         if let d = wire.kernelUDPDrops() { udpDrops.record(d) }
                     }, sites: sites, logger: logger, monitoringToken: metricsToken).addRoutes(to: router)
        ScriptRoute().addRoutes(to: router)
        if let adminToken {
            let purges = AdminRoutes.SitePurges(purge: { try await janitor.purge(site: $0, before: $1) },
                                                list: { try await store.purges(unfinishedOnly: false) })
            AdminRoutes(registry: store, token: adminToken, purges: purges).addRoutes(to: router)
        }
        let tlsContext: (@Sendable () -> NIOSSLContext)? = tls.map { t in { @Sendable in t.context } }
        let app = Application(
            router: router,
            // POST /event and /events are answered in the channel pipeline; the rest reach the router.
            server: .http1(ingest: IngestContext(sink: pipeline, metrics: ingestMetrics, durableTimeout: c.durableTimeout,
                                                 serverName: "tally", budget: budget,
                                                 timeouts: ReadTimeouts(start: c.headerTimeout, body: c.bodyTimeout, idle: c.idleTimeout),
                                                 enricher: enricher, sites: sites, rates: rates),
                          tls: tlsContext),
            configuration: .init(address: .hostname(c.httpHost, port: c.httpPort), serverName: "tally", backlog: ConnectionLimit.backlog,
                                 availableConnectionsDelegate: ConnectionLimit(maximum: perListener, listener: "http", factory: factory)),
            onServerRunning: { channel in ready.httpBound(channel.localAddress?.port ?? c.httpPort) },
            logger: logger)

        self.services = [StoreService(store: store), salts, watcher, janitor] + (tls.map { [$0] } ?? []) + [pipeline, wire, app]
        var groupConfiguration = ServiceGroupConfiguration(services: services, logger: logger)
        groupConfiguration.gracefulShutdownSignals = gracefulShutdownSignals
        groupConfiguration.maximumGracefulShutdownDuration = c.shutdownTimeout
        // Past the deadline, cancelled services get a moment to stop; longer than one store call
        // (5 s for PostgreSQL), so a call in flight ends before the group gives up.
        groupConfiguration.maximumCancellationDuration = .seconds(10)
        self.group = ServiceGroup(configuration: groupConfiguration)
    }

    /// Runs every service until a graceful shutdown (a signal, or ``triggerGracefulShutdown()``)
    /// has drained the pipeline, or a service fails.
    public func run() async throws {
        // Once stopped, the directory is free for the next collector (this object may live on).
        defer { directoryLock.release() }
        do {
            try await group.run()
        } catch {
            ready.fail(error)
            throw error
        }
        ready.fail(CancellationError())
    }

    /// Stops the listeners, drains the queue into the store and closes it, as SIGTERM does.
    public func triggerGracefulShutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Waits until every listener is bound (or start-up failed).
    public func endpoints() async throws -> Endpoints {
        try await ready.endpoints()
    }

    /// A token from its file, without surrounding blanks; refused when short.
    static func token(_ file: String, setting: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw SettingError(description: "\(setting) \(file) cannot be read")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.utf8.count >= 16 else { throw SettingError(description: "\(setting) \(file) must hold a token of 16 characters or more") }
        return token
    }

    static func health(pipeline: Pipeline, store: any EventStore) async -> HealthReport {
        let s = pipeline.status
        return HealthReport(
            queueDepth: s.queueDepths.reduce(0, +), idle: pipeline.isIdle,
            queueCapacity: s.queueCapacityPerShard * s.queueDepths.count,
            spoolBacklogFiles: s.spoolBacklogFiles, spoolBacklogBytes: s.spoolBacklogBytes,
            spoolWritable: s.spoolWritable, quarantinedFiles: s.quarantinedFiles, storeError: s.storeError,
            eventsStored: try? await store.eventCount())
    }
}

/// The store as the first service: nothing to start (it was opened and prepared before the
/// group ran), and closed last, once the pipeline has drained into it.
struct StoreService: Service {
    let store: any EventStore

    func run() async throws {
        try? await gracefulShutdown()
        try await store.close()
    }
}

/// The listeners' ports, reported as each binds; endpoints are known once both are.
final class Ready: Sendable {
    private let promise = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: TallyServer.Endpoints.self)
    /// The ports bound so far, and whether the promise was completed (it completes once).
    private let state = NIOLockedValueBox<(http: Int?, wire: Int?, done: Bool)>((nil, nil, false))

    func httpBound(_ port: Int) { record { $0.http = port } }
    func wireBound(_ port: Int) { record { $0.wire = port } }

    private func record(_ update: (inout (http: Int?, wire: Int?, done: Bool)) -> Void) {
        let both: TallyServer.Endpoints? = state.withLockedValue { p in
            update(&p)
            guard !p.done, let http = p.http, let wire = p.wire else { return nil }
            p.done = true
            return TallyServer.Endpoints(httpPort: http, wirePort: wire)
        }
        if let both { promise.succeed(both) }
    }

    /// A no-op once the endpoints are known.
    func fail(_ error: any Error) {
        let first = state.withLockedValue { p in
            defer { p.done = true }
            return !p.done
        }
        if first { promise.fail(error) }
    }

    func endpoints() async throws -> TallyServer.Endpoints { try await promise.futureResult.get() }
}

/// A random id kept in the data directory: prefixes batch ids, so batches from several
/// collectors never collide in a shared store.
enum InstanceID {
    static func load(directory: String) throws -> String {
        let path = directory + "/instance-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty {
                _ = chmod(path, PrivateFiles.fileMode)
                return id
            }
        }
        var rng = SystemRandomNumberGenerator()
        let id = String(rng.next() as UInt64, radix: 16)
        try (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        _ = chmod(path, PrivateFiles.fileMode)
        return id
    }
}
