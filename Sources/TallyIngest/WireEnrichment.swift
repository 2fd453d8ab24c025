import TallyCore
import TallyEnrich
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
