import HTTPTypes
import Synchronization
import Logging
import Hummingbird
import NIOCore
import Prometheus
import TallyCore
import TallySites
import TallyHTTP
import TallyStore

/// What `/health` reports, filled by whoever wires the server together and rendered here.
public struct HealthReport: Sendable, Equatable {
    /// Events in memory, all shards.
    public var queueDepth: Int
    /// True when every accepted event is in the store (nothing queued, in flight or spooled).
    public var idle: Bool
    public var queueCapacity: Int
    public var spoolBacklogFiles: Int
    public var spoolBacklogBytes: Int
    public var spoolWritable: Bool
    public var quarantinedFiles: Int
    /// The store's last load error, nil when loads succeed.
    public var storeError: String?
    /// Raw events in the store, nil when it cannot be asked.
    public var eventsStored: Int64?

    public init(queueDepth: Int, idle: Bool, queueCapacity: Int, spoolBacklogFiles: Int, spoolBacklogBytes: Int,
                spoolWritable: Bool, quarantinedFiles: Int, storeError: String?, eventsStored: Int64?) {
        self.queueDepth = queueDepth
        self.idle = idle
        self.queueCapacity = queueCapacity
        self.spoolBacklogFiles = spoolBacklogFiles
        self.spoolBacklogBytes = spoolBacklogBytes
        self.spoolWritable = spoolWritable
        self.quarantinedFiles = quarantinedFiles
        self.storeError = storeError
        self.eventsStored = eventsStored
    }

    /// Degraded: events are still accepted and spooled, but not loaded or not queryable.
    public var healthy: Bool { spoolWritable && storeError == nil && eventsStored != nil }

    /// The `/health` body, keys in a stable order.
    public var json: String {
        let members: [(String, String)] = [
            ("status", JSONText.quote(healthy ? "healthy" : "degraded")),
            ("queue_depth", String(queueDepth)),
            ("idle", String(idle)),
            ("queue_capacity", String(queueCapacity)),
            ("spool_backlog_files", String(spoolBacklogFiles)),
            ("spool_backlog_bytes", String(spoolBacklogBytes)),
            ("spool_writable", String(spoolWritable)),
            ("quarantined_files", String(quarantinedFiles)),
            ("store_error", storeError.map(JSONText.quote) ?? "null"),
            ("events_stored", eventsStored.map { String($0) } ?? "null"),
        ]
        return "{" + members.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// `GET /stats`, `GET /health` and `GET /metrics`.
public struct ReportRoutes: Sendable {
    public static let defaultLimit = 10
    public static let maxLimit = 1000

    let store: any EventStore
    let registry: PrometheusCollectorRegistry
    let health: @Sendable () async -> HealthReport
    /// Refreshes gauges that are sampled rather than pushed, right before a scrape.
    let beforeScrape: @Sendable () async -> Void
    /// Registered sites' read keys.
    let sites: SiteRulesSource
    /// Reads refused for want of a read key: counted, and logged (without the key) at most
    /// once a second with the number left unlogged.
    let refusedReads: Counter
    let logger: Logger
    /// The token `/metrics` and `/health` need (`--metrics-token-file`); nil: they are open.
    let monitoringToken: BearerToken?
    private let refusalLog = RefusalLogState()

    public init(store: any EventStore, registry: PrometheusCollectorRegistry,
                health: @escaping @Sendable () async -> HealthReport,
                beforeScrape: @escaping @Sendable () async -> Void = {}, sites: SiteRulesSource = SiteRulesSource(),
                logger: Logger = Logger(label: "tally.report"), monitoringToken: String? = nil) {
        self.store = store
        self.monitoringToken = monitoringToken.map(BearerToken.init)
        self.sites = sites
        self.logger = logger
        refusedReads = registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "tally", metricName: "reads_refused", unitName: "total",
                                             helpText: "Reads refused for want of a read key of the site"),
            labels: [("route", "stats")])
        self.registry = registry
        self.health = health
        self.beforeScrape = beforeScrape
    }

    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/stats") { request, _ in try await self.stats(request) }
        addReportAPI(to: router)
        router.get("/health") { request, _ in
            try self.authorizeMonitoring(request)
            // 200 even when degraded: the collector still accepts and spools events, so a load
            // balancer should keep sending; the body says what is wrong.
            return JSONResponse.make(200, await self.health().json)
        }
        router.get("/metrics") { request, _ in
            try self.authorizeMonitoring(request)
            await self.beforeScrape()
            var bytes: [UInt8] = []
            bytes.reserveCapacity(16_384)
            self.registry.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }

    /// The parsed query of `/stats`, or the 400 message.
    public struct StatsQuery: Sendable, Equatable {
        public var siteID: String
        public var day: UTCDay?
        public var limit: Int

        public static func parse(siteID: String?, date: String?, limit: String?) -> Result<StatsQuery, StatsQueryError> {
            guard let siteID, !siteID.isEmpty else { return .failure(.init("site_id query parameter is required")) }
            guard siteID.utf8.count <= EventLimits.maxSiteIDBytes else {
                return .failure(.init("site_id must be at most \(EventLimits.maxSiteIDBytes) bytes"))
            }
            var day: UTCDay?
            if let date {
                guard let d = UTCDay(parsing: date) else { return .failure(.init("Invalid date format. Expected YYYY-MM-DD")) }
                day = d
            }
            var n = ReportRoutes.defaultLimit
            if let limit {
                guard let v = Int(limit), v >= 1, v <= ReportRoutes.maxLimit else {
                    return .failure(.init("limit must be an integer between 1 and \(ReportRoutes.maxLimit)"))
                }
                n = v
            }
            return .success(StatsQuery(siteID: siteID, day: day, limit: n))
        }
    }

    public struct StatsQueryError: JSONErrorResponse, Equatable {
        public var message: String
        public var details: [String]? { nil }
        public var status: HTTPResponse.Status { .badRequest }
        init(_ m: String) { message = m }
    }

    /// A read of a site that needs a read key, without one of its keys. The same answer for
    /// every such site, whether it has data or (on a closed collector) exists at all.
    struct ReadUnauthorized: JSONErrorResponse {
        var message: String { "Unauthorized" }
        var details: [String]? { ["reading this site needs one of its read keys: Authorization: Bearer <key>, or ?key=<key>"] }
        var status: HTTPResponse.Status { .unauthorized }
    }

    struct MonitoringUnauthorized: JSONErrorResponse {
        var message: String { "Unauthorized" }
        var details: [String]? { ["/metrics and /health need Authorization: Bearer <metrics token>"] }
        var status: HTTPResponse.Status { .unauthorized }
    }

    func authorizeMonitoring(_ request: Request) throws {
        guard monitoringToken?.admits(request.headers[.authorization]) ?? true else { throw MonitoringUnauthorized() }
    }

    /// The store could not answer (the details say why).
    struct StoreUnavailable: JSONErrorResponse {
        var error: String
        var message: String { "Store unavailable" }
        var details: [String]? { [error] }
        var status: HTTPResponse.Status { .serviceUnavailable }
    }

    func stats(_ request: Request) async throws -> Response {
        if let raw = request.uri.query, let bad = QueryEncoding.firstBadParameter(raw[...]) {
            throw StatsQueryError("\(bad) has a % that is not followed by two hexadecimal digits")
        }
        let q = request.uri.queryParameters
        let query = try StatsQuery.parse(siteID: q.get("site_id"), date: q.get("date"), limit: q.get("limit")).get()
        try authorizeRead(query.siteID, request, key: q.get("key"))
        let s: SiteStats
        do {
            s = try await store.stats(siteID: query.siteID, day: query.day, limit: query.limit)
        } catch {
            throw StoreUnavailable(error: "\(error)")
        }
        return JSONResponse.make(200, Self.render(query, s))
    }

    /// Throws ``ReadUnauthorized`` unless the site may be read with the key presented (the
    /// `Authorization` header, else the `key` parameter).
    func authorizeRead(_ siteID: String, _ request: Request, key param: String?) throws {
        var key = PresentedKey(authorization: request.headers[.authorization], query: param.map { Substring($0) })
        guard sites.rules.mayRead(siteID: siteID, key: &key) else {
            refusedReads.increment()
            logRefusal(site: siteID, keyGiven: key.isPresent)
            throw ReadUnauthorized()
        }
    }

    private func logRefusal(site: String, keyGiven: Bool) {
        let second = Timestamp.now() / 1_000_000
        let unlogged: Int? = refusalLog.state.withLock { state in
            guard state.second != second else {
                state.unlogged += 1
                return nil
            }
            defer { state = (second, 0) }
            return state.unlogged
        }
        guard let unlogged else { return }
        logger.warning("read refused: no read key of the site", metadata: [
            "site": "\(site)", "key_given": "\(keyGiven)", "unlogged_since_last": "\(unlogged)"])
    }

    /// The seeds' response shape, keys in their order.
    public static func render(_ q: StatsQuery, _ s: SiteStats) -> String {
        let date = q.day.map { JSONText.quote($0.description) } ?? "null"
        let paths = s.topPaths.map { "{\"path\":\(JSONText.quote($0.path)),\"views\":\($0.views)}" }.joined(separator: ",")
        return "{\"site_id\":\(JSONText.quote(q.siteID)),\"date\":\(date),\"total_views\":\(s.totalViews),\"unique_users\":\(s.uniqueUsers),\"top_paths\":[\(paths)]}"
    }
}

final class RefusalLogState: Sendable {
    let state = Mutex<(second: Int64, unlogged: Int)>((-1, 0))
}
