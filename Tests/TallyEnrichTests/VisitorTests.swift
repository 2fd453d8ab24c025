import Testing
import TallyCore
@testable import TallyEnrich

@Suite struct VisitorTests {
    static let day: Int64 = 1_763_121_600_000_000  // 2025-11-14T12:00:00Z
    static let dayMicros: Int64 = 86_400_000_000
    static let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

    func visitor(_ e: Enricher, site: String = "s", user: String? = nil, address: String? = "203.0.113.9",
                 ua: String? = chrome, at: Int64 = day) -> UInt64 {
        var event = Event(siteID: site, eventType: "page_view", userID: user, timestamp: at)
        e.enrich(&event, client: ClientFacts(address: address, userAgent: ua), receivedAt: at)
        return event.visit.visitor
    }

    @Test func sameAddressAndAgentSameDayIsOneVisitorAndTheNextDayAnother() {
        let e = Enricher()
        let a = visitor(e)
        #expect(a != 0)
        #expect(visitor(e, at: Self.day + 3_600_000_000) == a)
        #expect(visitor(e, ua: Self.chrome + " Edg/131.0.0.0") != a)
        #expect(visitor(e, address: "203.0.113.10") != a)
        #expect(visitor(e, site: "t") != a)
        #expect(visitor(e, at: Self.day + Self.dayMicros) != a)
        // No address (a wire event without client facts): no visitor.
        #expect(visitor(e, address: nil) == 0)
    }

    /// A connection's memo (its last User-Agent, page and visitor) only saves work: requests
    /// whose sender, site, page or day change on one connection get exactly what a fresh
    /// enricher call gives them.
    @Test func aConnectionsMemoNeverChangesTheResult() {
        let e = Enricher()
        var memo = Enricher.Memo()
        let agents: [String?] = [Self.chrome, Self.chrome, "Googlebot/2.1 (+http://www.google.com/bot.html)", nil, "",
                                 Self.chrome + " Edg/131.0.0.0"]
        let addresses: [String?] = ["203.0.113.9", "203.0.113.9", "203.0.113.10", nil]
        let origins: [String?] = ["https://shop.example", nil, "https://news.example"]
        var rng = SystemRandomNumberGenerator()
        for i in 0..<500 {
            let client = ClientFacts(address: addresses.randomElement(using: &rng)!, userAgent: agents.randomElement(using: &rng)!,
                                     pageHost: origins.randomElement(using: &rng)!)
            let at = Self.day + Int64.random(in: 0...1, using: &rng) * Self.dayMicros
            let make = { (n: Int) in
                (0..<n).map { k in
                    Event(siteID: k % 2 == 0 ? "s" : "t", eventType: "page_view", userID: k % 3 == 0 ? "u" : nil, timestamp: at,
                          referrer: k % 2 == 0 ? "https://shop.example/cart" : "https://www.news.example/a")
                }
            }
            var remembered = make(1 + i % 3), fresh = make(1 + i % 3)
            let bots = e.enrich(&remembered, client: client, receivedAt: at, memo: &memo)
            var throwaway = Enricher.Memo()
            #expect(bots == e.enrich(&fresh, client: client, receivedAt: at, memo: &throwaway))
            #expect(remembered == fresh)
        }
    }

    /// A user's visitor is the user (counted through the user sets): no anonymous id.
    @Test func aUserHasNoAnonymousVisitorID() {
        #expect(visitor(Enricher(), user: "u-1") == 0)
    }

    @Test func collectorsWithTheSameSaltAgreeAndOthersDoNot() {
        let d = UTCDay(containing: Self.day)
        let one = Enricher(), two = Enricher()
        #expect(visitor(one) != visitor(two))  // each made its own salt
        let shared = one.salts.bytes(for: d)!
        let three = Enricher()
        three.salts.set(shared, for: d)
        #expect(visitor(three) == visitor(one))
    }

    @Test func oldSaltsAndTheirIdsAreForgotten() {
        let e = Enricher()
        let d = UTCDay(containing: Self.day)
        let before = visitor(e)
        e.forget(before: UTCDay(number: d.number + 1))
        #expect(e.salts.days.isEmpty)
        // A forgotten day's salt cannot be recovered: a new one gives new ids.
        #expect(visitor(e) != before)
    }

    @Test func botsAreFlaggedUnlessFilteringIsOff() {
        var event = Event(siteID: "s", eventType: "page_view", timestamp: Self.day)
        let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        #expect(Enricher().enrich(&event, client: ClientFacts(address: "66.249.66.1", userAgent: googlebot), receivedAt: Self.day))
        #expect(event.visit.isBot && !event.counts)
        #expect(!Enricher(botFilter: false).enrich(&event, client: ClientFacts(address: "66.249.66.1", userAgent: googlebot), receivedAt: Self.day))
        #expect(event.counts)
    }

    @Test func forwardedForCountsOnlyFromTrustedProxies() {
        let rule = ClientAddressRule(trustedProxies: [AddressRange("10.0.0.0/8")!, AddressRange("::1")!])
        #expect(rule.address(peer: "10.1.2.3", forwardedFor: "198.51.100.7") == "198.51.100.7")
        #expect(rule.address(peer: "::1", forwardedFor: "198.51.100.7, 10.0.0.5") == "198.51.100.7")
        // The right-most address not a trusted proxy: what a client put left of it is its own claim.
        #expect(rule.address(peer: "10.1.2.3", forwardedFor: "1.2.3.4, 198.51.100.7") == "198.51.100.7")
        #expect(rule.address(peer: "203.0.113.5", forwardedFor: "198.51.100.7") == "203.0.113.5")
        #expect(rule.address(peer: "10.1.2.3", forwardedFor: "garbage") == "10.1.2.3")
        #expect(ClientAddressRule(trustedProxies: []).address(peer: "10.1.2.3", forwardedFor: "198.51.100.7") == "10.1.2.3")
        #expect(AddressRange("2001:db8::/32")!.contains(AddressRange.parse("2001:db8:1::5")!))
        #expect(AddressRange("10.0.0.0/33") == nil && AddressRange("nonsense") == nil)
    }

    @Test func theReferrerKeepsItsHostAndSameSiteIsDirect() {
        var e = Event(siteID: "s", eventType: "page_view", timestamp: Self.day, referrer: "https://www.News.example/a?b")
        Enricher().enrich(&e, client: ClientFacts(), receivedAt: Self.day)
        #expect(e.referrer == "news.example")
        e.referrer = "https://shop.example/cart"
        Enricher().enrich(&e, client: ClientFacts(pageHost: "https://www.shop.example"), receivedAt: Self.day)
        #expect(e.referrer == nil)
    }
}
