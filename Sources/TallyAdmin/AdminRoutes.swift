import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyHTTP
import TallySites
import TallyStore

/// `/api/v1/sites`: the site registry over HTTP, for tools that manage many sites, with the
/// same rules as `tally sites`. Every request needs `Authorization: Bearer <admin token>`
/// (compared in constant time); without `--admin-token-file` the routes do not exist.
///
/// | Method and path | Body | Answer |
/// |---|---|---|
/// | `GET /api/v1/sites` | | 200 `{"sites": [site, ...]}` |
/// | `POST /api/v1/sites` | `{"id", "origins"?, "rate"?, "raw_retention_days"?}` | 201 site |
/// | `GET /api/v1/sites/{id}` | | 200 site |
/// | `PATCH /api/v1/sites/{id}` | `{"origins"?, "rate"?, "raw_retention_days"?}` (`null` removes the site's own) | 200 site |
/// | `DELETE /api/v1/sites/{id}` | | 204 |
/// | `POST /api/v1/sites/{id}/keys` | `{"kind": "read" or "write"}` | 201 `{"id", "kind", "key"}`, the key shown once |
/// | `DELETE /api/v1/sites/{id}/keys/{key id}` | | 204 |
/// | `DELETE /api/v1/sites/{id}/data[?before=YYYY-MM-DD]` | | 202 `{"purge": purge}`: the site's data (or the days before `before`) is gone from the reports; its raw rows go in the background |
/// | `GET /api/v1/sites/{id}/data/purges` | | 200 `{"purges": [purge, ...]}`, with `done` once the raw rows are gone |
///
/// The data routes take any `site_id` with data, registered or not.
public struct AdminRoutes: Sendable {
    let registry: any SiteRegistryStore
    let token: BearerToken
    let purges: SitePurges?
    static let maxBody = 64 * 1024

    /// What the data routes need from the collector: record a purge (and start its sweep), and
    /// list the purges recorded.
    public struct SitePurges: Sendable {
        public var purge: @Sendable (_ site: String, _ before: UTCDay?) async throws -> SitePurge
        public var list: @Sendable () async throws -> [SitePurge]
        public init(purge: @escaping @Sendable (String, UTCDay?) async throws -> SitePurge, list: @escaping @Sendable () async throws -> [SitePurge]) {
            self.purge = purge
            self.list = list
        }
    }

    public init(registry: any SiteRegistryStore, token: String, purges: SitePurges? = nil) {
        self.registry = registry
        self.token = BearerToken(token)
        self.purges = purges
    }

    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let sites = router.group("/api/v1/sites")
        sites.get { request, _ in try await self.authorized(request) { try await self.list() } }
        sites.post { request, context in try await self.authorized(request) { try await self.add(request, context) } }
        sites.get(":id") { request, context in try await self.authorized(request) { try await self.show(Self.id(context)) } }
        sites.patch(":id") { request, context in try await self.authorized(request) { try await self.update(request, context) } }
        sites.delete(":id") { request, context in
            try await self.authorized(request) { try await self.change(.remove(id: Self.id(context)), status: .noContent) }
        }
        if let purges {
            sites.delete(":id/data") { request, context in try await self.authorized(request) { try await self.purge(request, context, purges) } }
            sites.get(":id/data/purges") { request, context in
                try await self.authorized(request) {
                    let id = Self.id(context)
                    let problems = SiteInput.idProblems(id)
                    guard problems.isEmpty else { throw AdminError(.badRequest, "Invalid site id", problems) }
                    let all = try await Self.store { try await purges.list() }.filter { $0.site.utf8Equals(id) }
                    return JSONResponse.make(200, "{\"purges\":[" + all.map(Self.render).joined(separator: ",") + "]}")
                }
            }
        }
        sites.post(":id/keys") { request, context in try await self.authorized(request) { try await self.addKey(request, context) } }
        sites.delete(":id/keys/:key") { request, context in
            try await self.authorized(request) {
                let key = context.parameters.get("key").flatMap { $0.removingPercentEncoding } ?? ""
                return try await self.change(.revokeKey(siteID: Self.id(context), idOrHash: key), status: .noContent)
            }
        }
    }

    func authorized(_ request: Request, _ body: () async throws -> Response) async throws -> Response {
        guard token.admits(request.headers[.authorization]) else {
            throw AdminError(.unauthorized, "Unauthorized", ["the admin API needs Authorization: Bearer <admin token>"])
        }
        return try await body()
    }

    static func id<Context: RequestContext>(_ context: Context) -> String {
        context.parameters.get("id").flatMap { $0.removingPercentEncoding } ?? ""
    }

    func list() async throws -> Response {
        let sites = try await Self.store { try await registry.registeredSites().sites }
        return JSONResponse.make(200, "{\"sites\":[" + sites.map(SiteJSON.render).joined(separator: ",") + "]}")
    }

    func show(_ id: String) async throws -> Response {
        JSONResponse.make(200, SiteJSON.render(try await site(id)))
    }

    func site(_ id: String) async throws -> SiteRecord {
        let sites = try await Self.store { try await registry.registeredSites().sites }
        guard let s = sites.first(where: { $0.id.utf8Equals(id) }) else { throw AdminError(SiteRegistryError.noSuchSite(id)) }
        return s
    }

    func add<Context: RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        let body = try await Self.object(request, context, allowed: ["id", "origins", "rate", "raw_retention_days"])
        var problems: [String] = []
        let id = body["id"] as? String
        if id == nil { problems.append("id must be a string") }
        problems += id.map(SiteInput.idProblems) ?? []
        let origins = Self.origins(body, &problems) ?? []
        let rate = Self.rate(body, &problems) ?? nil
        let days = Self.retention(body, &problems) ?? nil
        guard problems.isEmpty, let id else { throw AdminError(.badRequest, "Invalid site", problems) }
        let now = Timestamp.now()
        _ = try await change(.add(SiteRecord(id: id, origins: origins, rate: rate, rawRetentionDays: days, createdAt: now, updatedAt: now)),
                             status: .created)
        return JSONResponse.make(201, SiteJSON.render(try await site(id)))
    }

    func update<Context: RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        let id = Self.id(context)
        let body = try await Self.object(request, context, allowed: ["origins", "rate", "raw_retention_days"])
        var problems: [String] = []
        let origins = Self.origins(body, &problems)
        let rate = Self.rate(body, &problems)
        let days = Self.retention(body, &problems)
        if body.isEmpty { problems.append("nothing to change: give origins, rate or raw_retention_days") }
        guard problems.isEmpty else { throw AdminError(.badRequest, "Invalid site", problems) }
        _ = try await change(.update(id: id, origins: origins, rate: rate, rawRetentionDays: days, at: Timestamp.now()), status: .ok)
        return JSONResponse.make(200, SiteJSON.render(try await site(id)))
    }

    func addKey<Context: RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        let id = Self.id(context)
        let body = try await Self.object(request, context, allowed: ["kind"])
        guard let kind = (body["kind"] as? String).flatMap(SiteKeyRecord.Kind.init(rawValue:)) else {
            throw AdminError(.badRequest, "Invalid key", [#"kind must be "read" or "write""#])
        }
        let (key, record) = AccessKey.generate(kind, at: Timestamp.now())
        _ = try await change(.addKey(siteID: id, record), status: .created)
        return JSONResponse.make(201, "{\"id\":\(JSONText.quote(record.id)),\"kind\":\"\(kind.rawValue)\",\"key\":\(JSONText.quote(key))}")
    }

    func purge<Context: RequestContext>(_ request: Request, _ context: Context, _ purges: SitePurges) async throws -> Response {
        let id = Self.id(context)
        var problems = SiteInput.idProblems(id)
        var before: UTCDay?
        if let raw = request.uri.query, let bad = QueryEncoding.firstBadParameter(raw[...]) {
            problems.append("\(bad) has a % that is not followed by two hexadecimal digits")
        }
        for (name, value) in request.uri.queryParameters {
            if name == "before" {
                before = UTCDay(parsing: String(value))
                if before == nil { problems.append("before must be a date as YYYY-MM-DD (UTC); data of earlier days is deleted") }
            } else {
                problems.append("unknown query parameter \(JSONText.quote(String(name))); known: before")
            }
        }
        guard problems.isEmpty else { throw AdminError(.badRequest, "Invalid purge", problems) }
        let p = try await Self.store { try await purges.purge(id, before) }
        return JSONResponse.make(202, "{\"purge\":" + Self.render(p) + "}")
    }

    static func render(_ p: SitePurge) -> String {
        "{\"id\":\(p.id),\"site_id\":\(JSONText.quote(p.site)),\"before\":\(p.before.map { "\"\($0)\"" } ?? "null")," +
            "\"recorded_at\":\"\(Timestamp.format(p.at))\",\"done\":\(p.done)}"
    }

    func change(_ change: SiteRegistryChange, status: HTTPResponse.Status) async throws -> Response {
        do {
            try await registry.apply(change)
        } catch let e as SiteRegistryError {
            throw AdminError(e)
        } catch {
            throw AdminError(.serviceUnavailable, "Store unavailable", ["\(error)"])
        }
        return Response(status: status)
    }

    static func store<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw AdminError(.serviceUnavailable, "Store unavailable", ["\(error)"]) }
    }

    /// The body as one JSON object with only `allowed` keys; every unknown key named.
    static func object<Context: RequestContext>(_ request: Request, _ context: Context, allowed: Set<String>) async throws -> [String: Any] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBody)
        } catch {
            throw AdminError(.contentTooLarge, "Payload too large", ["body exceeds \(maxBody) bytes"])
        }
        let data = Data(buffer: buffer)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AdminError(.badRequest, "Malformed JSON", ["the body must be one JSON object"])
        }
        let unknown = object.keys.filter { !allowed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw AdminError(.badRequest, "Invalid site", unknown.map { "unknown field \(JSONText.quote($0)); known: \(allowed.sorted().joined(separator: ", "))" })
        }
        return object
    }

    static func origins(_ body: [String: Any], _ problems: inout [String]) -> [String]? {
        guard let value = body["origins"] else { return nil }
        guard let texts = value as? [String] else {
            problems.append("origins must be an array of strings")
            return nil
        }
        switch SiteInput.origins(texts) {
        case .success(let o): return o
        case .failure(let e):
            problems += e.problems
            return nil
        }
    }

    /// nil: absent; .some(nil): JSON null (no limit).
    static func rate(_ body: [String: Any], _ problems: inout [String]) -> Int?? {
        integer(body, "rate", SiteInput.rateProblems, &problems)
    }

    /// nil: absent; .some(nil): JSON null (the server's retention).
    static func retention(_ body: [String: Any], _ problems: inout [String]) -> Int?? {
        integer(body, "raw_retention_days", SiteInput.retentionProblems, &problems)
    }

    static func integer(_ body: [String: Any], _ name: String, _ check: (Int) -> [String], _ problems: inout [String]) -> Int?? {
        guard let value = body[name] else { return nil }
        if value is NSNull { return .some(nil) }
        // JSON true and false arrive as NSNumbers too; their type code is "c".
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c", let n = value as? Int else {
            problems.append("\(name) must be an integer or null")
            return nil
        }
        let p = check(n)
        problems += p
        return p.isEmpty ? .some(n) : nil
    }
}

struct AdminError: JSONErrorResponse {
    var status: HTTPResponse.Status
    var message: String
    var details: [String]?

    init(_ status: HTTPResponse.Status, _ message: String, _ details: [String]) {
        self.status = status
        self.message = message
        self.details = details
    }

    init(_ e: SiteRegistryError) {
        switch e {
        case .siteExists: self.init(.conflict, "Conflict", [e.description])
        case .noSuchSite, .noSuchKey: self.init(.notFound, "Not Found", [e.description])
        }
    }
}
