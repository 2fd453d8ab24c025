import Synchronization
import TallyCore

/// What the request or frame says about the sender of its events, beside the events. Held in
/// memory for one request; never stored or logged.
public struct ClientFacts: Sendable {
    /// The visitor's address (see ``ClientAddressRule``); nil when unknown (wire without it).
    public var address: String?
    public var userAgent: String?
    /// The host of the page that sent the event (its `Origin`), to tell same-site referrers.
    public var pageHost: String?

    public init(address: String? = nil, userAgent: String? = nil, pageHost: String? = nil) {
        self.address = address
        self.userAgent = userAgent
        self.pageHost = pageHost
    }
}

/// Derives, per event, what Tally stores about its sender: the referrer's host, the device,
/// browser and OS families, the bot flag and the visitor id. One place for every transport.
///
/// Costs: User-Agent classes and visitor ids are cached (a page's events repeat both), so the
/// common event costs two dictionary lookups; a miss costs a pattern scan or one HMAC.
public final class Enricher: Sendable {
    public let salts: VisitorSalts
    public let botFilter: Bool
    public let addressRule: ClientAddressRule
    private let classes = Mutex<[ExactString: UserAgentClass]>([:])
    private let visitors = Mutex<[VisitorKey: UInt64]>([:])
    static let cacheLimit = 1 << 14

    struct VisitorKey: Hashable {
        var day: Int32
        var site: ExactString
        var address: String
        var userAgent: ExactString
    }

    public init(salts: VisitorSalts = VisitorSalts(), botFilter: Bool = true, addressRule: ClientAddressRule = ClientAddressRule(trustedProxies: [])) {
        self.salts = salts
        self.botFilter = botFilter
        self.addressRule = addressRule
    }

    /// Fills in `event`'s referrer host and visit from `client`; `receivedAt` picks the salt.
    /// Returns whether the event was flagged as a bot.
    @discardableResult
    public func enrich(_ event: inout Event, client: ClientFacts, receivedAt: Int64) -> Bool {
        enrich(&event, client: client, ua: userAgentClass(client.userAgent), day: UTCDay(containing: receivedAt))
    }

    /// All events of one request (one sender): the User-Agent is classified once, and an
    /// anonymous visitor looked up once per site. Returns how many were flagged as bots.
    public func enrich(_ events: inout [Event], client: ClientFacts, receivedAt: Int64) -> Int {
        let ua = userAgentClass(client.userAgent), day = UTCDay(containing: receivedAt)
        var bots = 0
        for i in events.indices where enrich(&events[i], client: client, ua: ua, day: day) { bots += 1 }
        return bots
    }

    private func enrich(_ event: inout Event, client: ClientFacts, ua: UserAgentClass, day: UTCDay) -> Bool {
        if event.referrer != nil { event.referrer = Referrer.host(event.referrer, pageHost: client.pageHost) }
        var visit = Visit(device: ua.device, browser: ua.browser, os: ua.os, isBot: botFilter && ua.isBot)
        // An event with a user_id is counted as that user (the stores' user sets); only
        // anonymous events need an id of their own.
        if event.userID == nil, let address = client.address {
            visit.visitor = anonymousVisitor(site: event.siteID, address: address, userAgent: client.userAgent ?? "", day: day)
        }
        // Setting an empty visit on a plain event would only cost (most server-side events).
        if !visit.isEmpty || event.hasExtra { event.visit = visit }
        return visit.isBot
    }

    public func userAgentClass(_ userAgent: String?) -> UserAgentClass {
        guard let userAgent, !userAgent.isEmpty else { return UserAgentClass() }
        let key = ExactString(userAgent)
        if let c = classes.withLock({ $0[key] }) { return c }
        let c = UserAgentClass(userAgent)
        classes.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = c
        }
        return c
    }

    func anonymousVisitor(site: String, address: String, userAgent: String, day: UTCDay) -> UInt64 {
        let key = VisitorKey(day: day.number, site: ExactString(site), address: address, userAgent: ExactString(userAgent))
        if let v = visitors.withLock({ $0[key] }) { return v }
        let v = VisitorID.anonymous(key: salts.key(for: day), site: site, address: address, userAgent: userAgent)
        visitors.withLock { cache in
            // A new day's ids replace the old ones anyway: start again at the limit.
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = v
        }
        return v
    }

    /// Forgets cached ids of days before `day` (with their salts, they must not outlive them).
    public func forget(before day: UTCDay) {
        salts.drop(before: day)
        visitors.withLock { cache in cache = cache.filter { $0.key.day >= day.number } }
    }
}
