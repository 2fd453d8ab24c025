import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyHTTP
import TallyStore

/// `/api/v1/stats/{aggregate,timeseries,breakdown,realtime}` and `/api/v1/export`: reports
/// over any range of local days in any time zone, each answered by ``ReportEngine``.
extension ReportRoutes {
    func addReportAPI<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/v1/stats/aggregate") { request, _ in
            try await self.report(request, known: [], { _ in () }) { _, r in
                let f = try await self.engine.aggregate(r)
                return Self.head(r) + ",\(Self.figures(f)),\"events\":\(f.events)}"
            }
        }
        router.get("/api/v1/stats/timeseries") { request, _ in
            try await self.report(request, known: ["interval"], { p in p.choice("interval", ReportInterval.day) }) { interval, r in
                if interval == .hour, r.to.number - r.from.number >= ReportParameters.maxHourDays {
                    throw ReportQueryError(["interval=hour covers at most \(ReportParameters.maxHourDays) days; use interval=day"])
                }
                let buckets = r.buckets(interval)
                let series = try await self.engine.timeseries(r, buckets)
                let results = zip(buckets, series).map { b, f in "{\"time\":\(JSONText.quote(b.label)),\(Self.figures(f))}" }
                return Self.head(r) + ",\"interval\":\(JSONText.quote(interval.rawValue)),\"results\":[\(results.joined(separator: ","))]}"
            }
        }
        router.get("/api/v1/stats/breakdown") { request, _ in
            let parse = { (p: inout ReportParameters) -> (BreakdownProperty, Int)? in
                let property = p.choice("property", BreakdownProperty?.none)
                let limit = p.integer("limit", in: 1...ReportRoutes.maxLimit, fallback: ReportRoutes.defaultLimit)
                return property.map { ($0, limit) }
            }
            return try await self.report(request, known: ["property", "limit"], parse) { q, r in
                let rows = try await self.engine.breakdown(r, q.0, limit: q.1)
                let results = rows.map { row in
                    "{\"value\":\(row.value.map(JSONText.quote) ?? "null"),\"views\":\(row.views),\"visitors\":\(row.visitors),\"events\":\(row.events)}"
                }
                return Self.head(r) + ",\"property\":\(JSONText.quote(q.0.rawValue)),\"results\":[\(results.joined(separator: ","))]}"
            }
        }
        router.get("/api/v1/stats/realtime") { request, _ in
            var p = ReportParameters(query: request.uri.query, pairs: request.uri.queryParameters)
            let site = p.siteID()
            let key = p.take("key")
            let problems = p.finish(known: ["site_id", "key"])
            guard problems.isEmpty, let site else { throw ReportQueryError(problems) }
            try self.authorizeRead(site, request, key: key)
            let f = try await Self.fromStore { try await self.engine.realtime(site, now: Timestamp.now()) }
            return JSONResponse.make(200, "{\"site_id\":\(JSONText.quote(site)),\"visitors\":\(f.visitors),\"views\":\(f.views)}")
        }
        router.get("/api/v1/export") { request, _ in try await self.export(request) }
        router.get("/api/v1/openapi.json") { _, _ in JSONResponse.make(200, OpenAPI.document) }
    }

    var engine: ReportEngine { ReportEngine(store: store) }

    /// Parses the range and the endpoint's own parameters (`parse` takes them from `p` and
    /// records problems), checks the read key, and answers 200 with `answer`'s JSON, or 400
    /// naming every problem of the request.
    func report<Q>(_ request: Request, known: [String], _ parse: (inout ReportParameters) -> Q?,
                   _ answer: (Q, ReportRange) async throws -> String) async throws -> Response {
        var p = ReportParameters(query: request.uri.query, pairs: request.uri.queryParameters)
        let key = p.take("key")
        let range = p.range(now: Timestamp.now())
        let own = parse(&p)
        let problems = p.finish(known: ReportParameters.rangeNames + known)
        guard problems.isEmpty, let range, let own else { throw ReportQueryError(problems) }
        try authorizeRead(range.siteID, request, key: key)
        return JSONResponse.make(200, try await Self.fromStore { try await answer(own, range) })
    }

    /// A report the raw-row retention made impossible to answer exactly, or one with more rows
    /// than PostgreSQL reads within a question's time limit: 422.
    struct RangeUnavailable: JSONErrorResponse {
        var reason: String
        var message: String { "Range unavailable" }
        var details: [String]? { [reason] }
        var status: HTTPResponse.Status { .unprocessableContent }
    }

    /// Store failures as 503 (the details say why); the refusals of the request as they are.
    static func fromStore<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as any HTTPResponseError {
            throw e
        } catch let e as ReportNeedsDeletedRows {
            throw RangeUnavailable(reason: e.description)
        } catch let e as ReportTookTooLong {
            // Not the store's failure: a shorter range is answered.
            throw RangeUnavailable(reason: e.description)
        } catch {
            throw StoreUnavailable(error: "\(error)")
        }
    }

    static func head(_ r: ReportRange) -> String {
        "{\"site_id\":\(JSONText.quote(r.siteID)),\"from\":\"\(r.from)\",\"to\":\"\(r.to)\",\"tz\":\(JSONText.quote(r.zone.identifier))"
    }

    static func figures(_ f: ReportFigures) -> String {
        "\"views\":\(f.views),\"visitors\":\(f.visitors),\"users\":\(f.users)"
    }
}
