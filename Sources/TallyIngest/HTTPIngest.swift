import Foundation
import HummingbirdCore
import NIOCore
import TallyCore
import TallyHTTP
import TallyJSON
import TallyEnrich
import TallySites

/// The one HTTP ingest rule set: which requests are ingest requests, and how a complete one
/// turns into events or an ``IngestRefusal``. ``HTTPIngestHandler`` is its only caller; a new
/// rule (a header, a limit, a field) is added here once and holds for every ingest request.
public enum HTTPIngest {
    public static let maxEventBody = 64 * 1024
    public static let maxBatchBody = 8 * 1024 * 1024
    public static let maxBatchEvents = 10_000
    /// Request target (path and query) limit, for every request: longer ones get 414.
    public static let maxTargetBytes = 8 * 1024
    /// Header limits (names and values together; field count): over them, 431.
    public static let maxHeaderBytes = 32 * 1024
    public static let maxHeaderCount = 100
    /// NIO's decoder's own bound on a whole request head, request line included: memory per
    /// connection stays bounded while the head is read. It is above the limits above so that a
    /// long target gets its 414 and long headers their 431 from the head itself; only a head
    /// past this bound is refused by the decoder (431 as well).
    public static let decoderHeadBytes = 256 * 1024

    /// `POST /event` (one object) or `POST /events` (an array or NDJSON).
    public enum Route: Sendable, Equatable {
        case event, events

        public var bodyLimit: Int { self == .event ? maxEventBody : maxBatchBody }
    }

    /// CORS: every ingest answer may be read by any page (sites limit origins once they have
    /// keys); a preflight is answered at once and cached by the browser for a day.
    public static let allowOrigin = ("Access-Control-Allow-Origin", "*")
    public static let preflightHeaders = [
        allowOrigin, ("Access-Control-Allow-Methods", "POST, OPTIONS"),
        ("Access-Control-Allow-Headers", "Content-Type"), ("Access-Control-Max-Age", "86400"),
    ]

    public enum AckLevel: String, Sendable {
        /// Answer once the events are in the in-memory queue (the default).
        case queued
        /// Answer once the spool has fsynced them.
        case durable
    }

    /// A complete ingest request as the handler read it.
    public struct Request: Sendable {
        public var route: Route
        /// The `ack` query value, nil when absent.
        public var ack: Substring?
        /// A query parameter whose percent-encoding is broken, refused before anything else.
        public var badQueryParameter: String?
        public var contentType: String?
        public var body: ByteBuffer?
        /// The body went past ``Route/bodyLimit`` and was not kept.
        public var bodyTooLarge: Bool
        /// Who sent it (address, User-Agent, page): for the visitor id and device, never stored.
        public var client: ClientFacts = ClientFacts()
        /// The `Origin` and `Authorization` headers, for the sites' rules (``SiteRules``).
        public var origin: String?
        public var authorization: String?
    }

    /// The ingest route of a request line with its `ack` value and the first query parameter
    /// with broken percent-encoding; nil for every other request.
    static func route(method: String, target: String) -> (route: Route, ack: Substring?, badQuery: String?)? {
        guard method == "POST" || method == "OPTIONS" else { return nil }
        // The common case, a bare path, without parsing.
        switch target {
        case "/event": return (.event, nil, nil)
        case "/events": return (.events, nil, nil)
        default: break
        }
        guard target.utf8.contains(UInt8(ascii: "?")) else { return nil }
        let uri = URI(target)
        let route: Route
        switch uri.path {
        case "/event": route = .event
        case "/events": route = .events
        default: return nil
        }
        return (route, uri.queryParameters["ack"], uri.query.flatMap { QueryEncoding.firstBadParameter($0[...]) })
    }

    /// Checks, in order: the query's encoding, the ack level, the content type, the body length, then the body
    /// itself. Returns the events and how to acknowledge them.
    public static func decode(_ r: Request, receivedAt: Int64, enricher: Enricher, memo: inout Enricher.Memo,
                              rules: SiteRules = SiteRules(), rates: RateLimits = RateLimits(), keys: inout PresentedKeys)
        throws(IngestRefusal) -> (events: [Event], ack: AckLevel, bots: Int) {
        if let name = r.badQueryParameter { throw .badPercentEncoding(name) }
        let ack = try ackLevel(r.ack)
        try checkContentType(r.contentType)
        if r.bodyTooLarge { throw .bodyTooLarge(limit: r.route.bodyLimit) }
        let body = r.body ?? ByteBuffer()
        let parsed = body.withUnsafeReadableBytes { bytes in
            Result { () throws(EventJSONError) -> [Event] in
                switch r.route {
                case .event: [try EventJSON.single(bytes, receivedAt: receivedAt)]
                case .events: try EventJSON.batch(bytes, receivedAt: receivedAt, maxEvents: maxBatchEvents)
                }
            }
        }
        // Consumed: a copy left in `parsed` would make enriching copy the whole array.
        switch consume parsed {
        case .success(var events):
            if !rules.allOpen {
                var k = keys.take(r.authorization)
                defer { keys.keep(k) }
                try checkSites(events, r, rules, &k)
            }
            if !rates.off(rules) { try checkRates(events, r, rules, rates) }
            let bots = enricher.enrich(&events, client: r.client, receivedAt: receivedAt, memo: &memo)
            return (events, ack, bots)
        case .failure(.malformed(let detail)): throw .malformedJSON(detail)
        case .failure(.invalid(let problems)): throw .invalidPayload(problems)
        case .failure(.tooManyEvents): throw .tooManyEvents
        }
    }

    /// Every site of the request may be written by it (``SiteRules/checkWrite``); otherwise the
    /// whole request is refused, naming each site refused. 401 when a key would do (and no
    /// origin was refused), else 403.
    static func checkSites(_ events: [Event], _ r: Request, _ rules: SiteRules, _ key: inout PresentedKey) throws(IngestRefusal) {
        var refusals: [SiteRules.WriteRefusal] = []
        if events.count == 1 {
            if let refusal = rules.checkWrite(siteID: events[0].siteID, origin: r.origin, key: &key) { refusals.append(refusal) }
        }
        var checked: Set<ExactString> = []
        var previous: String?
        for e in events where events.count > 1 {
            // Batches carry one site or a few: most events repeat the one before.
            if let p = previous, p.utf8Equals(e.siteID) { continue }
            previous = e.siteID
            guard checked.insert(ExactString(e.siteID)).inserted else { continue }
            if let refusal = rules.checkWrite(siteID: e.siteID, origin: r.origin, key: &key) { refusals.append(refusal) }
        }
        guard !refusals.isEmpty else { return }
        var keyRequired: [String] = [], forbidden: [String] = [], originRefused = false
        for refusal in refusals {
            switch refusal {
            case .keyRequired(let site):
                keyRequired.append(key.isPresent
                    ? "the key given is not a write key of site \(JSONText.quote(site))"
                    : "site \(JSONText.quote(site)) needs a write key: Authorization: Bearer <key>")
            case .originNotAllowed(let site, let origin):
                originRefused = true
                forbidden.append("origin \(JSONText.quote(origin)) may not send events for site \(JSONText.quote(site))")
            case .unregistered(let site):
                forbidden.append("site \(JSONText.quote(site)) is not registered on this collector")
            }
        }
        // A batch may name thousands of sites: the answer names the first few.
        func capped(_ problems: [String]) -> [String] {
            problems.count <= 20 ? problems : Array(problems.prefix(20)) + ["and \(problems.count - 20) more sites"]
        }
        if forbidden.isEmpty { throw .unauthorized(capped(keyRequired)) }
        throw .forbidden(capped(forbidden + keyRequired), originRefused: originRefused)
    }

    /// The request's events against its client's and its sites' rates; over either, the whole
    /// request is refused (429) and the client told when to retry.
    static func checkRates(_ events: [Event], _ r: Request, _ rules: SiteRules, _ rates: RateLimits) throws(IngestRefusal) {
        var counts: [(site: ExactString, events: Int)] = []
        var index: [ExactString: Int] = [:]
        for e in events {
            if let last = counts.indices.last, counts[last].site.string.utf8Equals(e.siteID) {
                counts[last].events += 1
                continue
            }
            let site = ExactString(e.siteID)
            if let i = index[site] { counts[i].events += 1 } else {
                index[site] = counts.count
                counts.append((site, 1))
            }
        }
        guard let refusal = rates.check(counts, address: r.client.address, rules: rules) else { return }
        let c = refusal.wait.components
        let seconds = Int(c.seconds) + (c.attoseconds > 0 ? 1 : 0)
        throw .rateLimited(retryAfter: max(1, seconds), refusal.problems)
    }

    static func ackLevel(_ value: Substring?) throws(IngestRefusal) -> AckLevel {
        guard let value else { return .queued }
        guard let level = AckLevel(rawValue: String(value)) else { throw .invalidAck }
        return level
    }

    /// JSON, plain text (navigator.sendBeacon) and NDJSON are all parsed as JSON.
    static func checkContentType(_ ct: String?) throws(IngestRefusal) {
        guard let ct else { return }
        if ct == "application/json" { return }  // the common case, without allocating
        let media = ct.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let accepted = ["application/json", "text/plain", "application/x-ndjson", "application/ndjson", ""]
        guard accepted.contains(media) else { throw .unsupportedMediaType(media) }
    }

    /// The 202 body for `count` events taken on `route` with `ack`.
    static func acceptedBody(_ count: Int, route: Route, ack: AckLevel) -> String {
        if route == .event && ack == .queued { return acceptedOneQueued }
        let message = route == .event ? "Event accepted for processing" : "Events accepted for processing"
        return "{\"message\":\(JSONText.quote(message)),\"accepted\":\(count),\"ack\":\"\(ack.rawValue)\"}"
    }

    /// The answer to nearly every request, made once.
    private static let acceptedOneQueued = #"{"message":"Event accepted for processing","accepted":1,"ack":"queued"}"#
}
