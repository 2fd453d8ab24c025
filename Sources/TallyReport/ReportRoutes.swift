import Hummingbird
import NIOCore
import Prometheus
import TallyCore
import TallyStore

/// A point-in-time view of the server's health, built by whoever wires the server together.
public struct HealthSnapshot: Sendable {
    public var healthy: Bool
    /// Extra members of the `/health` object, values already JSON text.
    public var fields: [(String, String)]

    public init(healthy: Bool, fields: [(String, String)]) {
        self.healthy = healthy
        self.fields = fields
    }
}

/// `GET /stats`, `GET /health` and `GET /metrics`.
public struct ReportRoutes: Sendable {
    public static let defaultLimit = 10
    public static let maxLimit = 1000

    let store: any EventStore
    let registry: PrometheusCollectorRegistry
    let health: @Sendable () async -> HealthSnapshot
    /// Refreshes gauges that are sampled rather than pushed, right before a scrape.
    let beforeScrape: @Sendable () async -> Void

    public init(store: any EventStore, registry: PrometheusCollectorRegistry,
                health: @escaping @Sendable () async -> HealthSnapshot,
                beforeScrape: @escaping @Sendable () async -> Void = {}) {
        self.store = store
        self.registry = registry
        self.health = health
        self.beforeScrape = beforeScrape
    }

    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/stats") { request, _ in await self.stats(request) }
        router.get("/health") { _, _ in
            let h = await self.health()
            let members = [("status", JSONText.quote(h.healthy ? "healthy" : "degraded"))] + h.fields
            let body = "{" + members.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
            // 200 even when degraded: the collector still accepts and spools events, so a load
            // balancer should keep sending; the body says what is wrong.
            return Self.json(200, body)
        }
        router.get("/metrics") { _, _ in
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

    public struct StatsQueryError: Error, Sendable, Equatable {
        public var message: String
        init(_ m: String) { message = m }
    }

    func stats(_ request: Request) async -> Response {
        let q = request.uri.queryParameters
        let parsed = StatsQuery.parse(siteID: q.get("site_id"), date: q.get("date"), limit: q.get("limit"))
        let query: StatsQuery
        switch parsed {
        case .success(let v): query = v
        case .failure(let e): return Self.json(400, JSONText.error(e.message))
        }
        do {
            let s = try await store.stats(siteID: query.siteID, day: query.day, limit: query.limit)
            return Self.json(200, Self.render(query, s))
        } catch {
            return Self.json(503, JSONText.error("Store unavailable", details: ["\(error)"]))
        }
    }

    /// The seeds' response shape, keys in their order.
    public static func render(_ q: StatsQuery, _ s: SiteStats) -> String {
        let date = q.day.map { JSONText.quote($0.description) } ?? "null"
        let paths = s.topPaths.map { "{\"path\":\(JSONText.quote($0.path)),\"views\":\($0.views)}" }.joined(separator: ",")
        return "{\"site_id\":\(JSONText.quote(q.siteID)),\"date\":\(date),\"total_views\":\(s.totalViews),\"unique_users\":\(s.uniqueUsers),\"top_paths\":[\(paths)]}"
    }

    static func json(_ status: Int, _ body: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
