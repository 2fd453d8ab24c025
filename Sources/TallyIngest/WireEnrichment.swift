import TallyCore
import TallyEnrich
import TallySites
import TallyWire

extension EventsFrame {
    /// The frame's events, stamped and enriched as HTTP events are: referrer host, and from the
    /// client facts an edge proxy forwarded (version 2) the device, bot flag and visitor id.
    /// Filtered bots are counted under `transport`.
    func enrichedEvents(receivedAt: Int64, enricher: Enricher, metrics: IngestMetrics, transport: String) -> [Event] {
        var events = resolved(receivedAt: receivedAt)
        var bots = 0
        var memo = Enricher.Memo()
        for i in events.indices {
            // Nothing to derive from an event without attribution or client facts (most edge
            // and server-side traffic): its visit stays empty.
            guard self.events[i].hasExtra else { continue }
            let w = self.events[i]
            if enricher.enrich(&events[i], client: ClientFacts(address: w.clientAddress, userAgent: w.userAgent),
                               receivedAt: receivedAt, memo: &memo) {
                bots += 1
            }
        }
        if bots > 0 { metrics.filtered(transport, reason: "bot", bots) }
        return events
    }
}

extension SiteRules {
    /// Whether a wire sender may send `frame`: as an HTTP request without `Origin` or key
    /// (the protocol carries neither), so a site with write keys is refused, and on a closed
    /// collector an unregistered one. The refusal's wording, or nil.
    func wireRefusal(_ frame: EventsFrame) -> String? {
        guard !allOpen else { return nil }
        var none = PresentedKey(authorization: nil)
        switch checkWrite(siteID: frame.siteID, origin: nil, key: &none) {
        case nil: return nil
        case .keyRequired(let site)?:
            return "site \(JSONText.quote(site)) needs a write key, which the wire protocol cannot carry; send its events over HTTP with Authorization: Bearer <key>"
        case .unregistered(let site)?:
            return "site \(JSONText.quote(site)) is not registered on this collector"
        case .originNotAllowed?:
            return nil
        }
    }
}

extension RateLimits {
    /// A wire frame against its site's own rate (the wire has no client address of its own:
    /// an edge proxy speaks for many); nil when it may pass now (taken).
    func frameRefusal(site: String, events: Int, rules: SiteRules) -> Refusal? {
        off(rules) ? nil : check([(ExactString(site), events)], address: nil, rules: rules)
    }
}
