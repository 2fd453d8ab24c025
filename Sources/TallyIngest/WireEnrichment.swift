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
    /// Whether a wire sender holding `keys` (from its AUTH frames) may send `frame`; the
    /// refusal's wording, or nil.
    func wireRefusal(_ frame: EventsFrame, keys: WireKeys) -> String? {
        guard !allOpen else { return nil }
        switch checkWire(siteID: frame.siteID, keys: keys) {
        case nil, .originNotAllowed?: return nil
        case .keyRequired(let site)?:
            return "site \(JSONText.quote(site)) needs one of its write keys: send an AUTH frame with it before its events (PROTOCOL.md §7.1)"
        case .unregistered(let site)?:
            return "site \(JSONText.quote(site)) is not registered on this collector"
        }
    }

    /// What a refused AUTH frame is told (never the key itself: it goes to logs).
    static func authRefusal(_ outcome: WireKeys.Presented) -> String? {
        switch outcome {
        case .accepted: nil
        case .unknown: "the key is not a write key of any registered site (wrong, revoked, or a read key)"
        case .tooManySites: "a connection holds keys for at most \(WireKeys.capacity) sites; open another connection"
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
