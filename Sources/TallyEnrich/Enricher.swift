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

    /// What the last request of one connection resolved: a browser's requests on a kept-alive
    /// connection share a User-Agent and a visitor, recognised by a byte compare instead of the
    /// shared caches' hash and lock. Held by one connection (or one frame), never shared.
    public struct Memo: Sendable {
        var userAgent: String?
        var userAgentClass = UserAgentClass()
        /// An `Origin` and its host (``Referrer/hostPart(_:)``), to tell same-site referrers.
        var page: (origin: String, host: String?)?
        var visitor: (key: VisitorKey, id: UInt64)?
        public init() {}
    }

    /// Fills in `event`'s referrer host and visit from `client`; `receivedAt` picks the salt.
    /// Returns whether the event was flagged as a bot.
    @discardableResult
    public func enrich(_ event: inout Event, client: ClientFacts, receivedAt: Int64) -> Bool {
        var memo = Memo()
        return enrich(&event, client: client, receivedAt: receivedAt, memo: &memo)
    }

    /// The same, remembering in `memo` what the next event of this sender will likely need.
    public func enrich(_ event: inout Event, client: ClientFacts, receivedAt: Int64, memo: inout Memo) -> Bool {
        enrich(&event, client: client, ua: userAgentClass(client.userAgent, memo: &memo), day: UTCDay(containing: receivedAt), memo: &memo)
    }

    /// All events of one request (one sender): the User-Agent is classified once.
    /// Returns how many were flagged as bots.
    public func enrich(_ events: inout [Event], client: ClientFacts, receivedAt: Int64, memo: inout Memo) -> Int {
        let ua = userAgentClass(client.userAgent, memo: &memo), day = UTCDay(containing: receivedAt)
        var bots = 0
        for i in events.indices where enrich(&events[i], client: client, ua: ua, day: day, memo: &memo) { bots += 1 }
        return bots
    }

    private func userAgentClass(_ userAgent: String?, memo: inout Memo) -> UserAgentClass {
        if let known = memo.userAgent, let userAgent, known.utf8Equals(userAgent) { return memo.userAgentClass }
        let ua = userAgentClass(userAgent)
        memo.userAgent = userAgent
        memo.userAgentClass = ua
        return ua
    }

    private func enrich(_ event: inout Event, client: ClientFacts, ua: UserAgentClass, day: UTCDay, memo: inout Memo) -> Bool {
        var visit = Visit(device: ua.device, browser: ua.browser, os: ua.os, isBot: botFilter && ua.isBot)
        // An event with a user_id is counted as that user (the stores' user sets); only
        // anonymous events need an id of their own.
        if event.userID == nil, let address = client.address {
            let key = VisitorKey(day: day.number, site: ExactString(event.siteID), address: address,
                                 userAgent: ExactString(client.userAgent ?? ""))
            if let last = memo.visitor, last.key == key {
                visit.visitor = last.id
            } else {
                visit.visitor = anonymousVisitor(key)
                memo.visitor = (key, visit.visitor)
            }
        }
        // Setting an empty visit on a plain event would only cost (most server-side events).
        if event.referrer != nil {
            event.derive(referrerHost: Referrer.host(event.referrer, ownHost: ownHost(client.pageHost, memo: &memo)), visit: visit)
        } else if !visit.isEmpty || event.hasExtra {
            event.visit = visit
        }
        return visit.isBot
    }

    private func ownHost(_ origin: String?, memo: inout Memo) -> String? {
        guard let origin else { return nil }
        if let page = memo.page, page.origin.utf8Equals(origin) { return page.host }
        let host = Referrer.hostPart(origin)
        memo.page = (origin, host)
        return host
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

    func anonymousVisitor(_ key: VisitorKey) -> UInt64 {
        if let v = visitors.withLock({ $0[key] }) { return v }
        let v = VisitorID.anonymous(key: salts.key(for: UTCDay(number: key.day)), site: key.site.string, address: key.address,
                                    userAgent: key.userAgent.string)
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
