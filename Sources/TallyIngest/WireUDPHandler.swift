import Logging
import NIOCore
import TallyCore
import TallySites
import TallyWire
import TallyEnrich

/// UDP datagrams of the wire protocol: each holds one or more whole frames, decoded by the same
/// ``FrameDecoder`` as TCP. UDP has no ACKs and no flow control, so every frame this handler
/// cannot queue is counted by reason.
final class WireUDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let sink: any EventSink
    private let metrics: IngestMetrics

    private let enricher: Enricher
    private let sites: SiteRulesSource
    private let rates: RateLimits

    init(sink: any EventSink, metrics: IngestMetrics, enricher: Enricher = Enricher(), sites: SiteRulesSource = SiteRulesSource(),
         rates: RateLimits = RateLimits()) {
        self.sites = sites
        self.rates = rates
        self.sink = sink
        self.metrics = metrics
        self.enricher = enricher
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        var buffer = envelope.data
        let receivedAt = Timestamp.now()
        // An AUTH frame holds for the rest of its datagram only: datagrams have no connection.
        var keys = WireKeys()
        var authFrames = 0
        while buffer.readableBytes > 0 {
            do {
                switch try FrameDecoder.decode(&buffer) {
                case .needMoreData:
                    // A UDP frame cannot continue in another datagram.
                    reject(FrameRejection(.truncated, "frame cut off at the end of the datagram"), from: envelope.remoteAddress)
                    return
                case .frame(.events(let frame)):
                    let rules = sites.rules
                    if let refusal = rules.wireRefusal(frame, keys: keys) {
                        metrics.rejected("udp", reason: WireError.unauthorized.label, frame.events.count,
                                         detail: refusal, peer: "\(envelope.remoteAddress)")
                        continue
                    }
                    if let over = rates.frameRefusal(site: frame.siteID, events: frame.events.count, rules: rules) {
                        // A datagram cannot wait: over the site's rate it is dropped, and counted.
                        metrics.rejected("udp", reason: "rate_limited", frame.events.count,
                                         detail: over.problems.joined(separator: "; "), peer: "\(envelope.remoteAddress)")
                        continue
                    }
                    let events = frame.enrichedEvents(receivedAt: receivedAt, enricher: enricher, metrics: metrics, transport: "udp")
                    do {
                        try sink.enqueue(events)
                        metrics.accepted("udp", events.count)
                    } catch .tooLarge {
                        metrics.rejected("udp", reason: WireError.frameTooLarge.label, events.count, peer: "\(envelope.remoteAddress)")
                    } catch .full {
                        metrics.rejected("udp", reason: "queue_full", events.count, peer: "\(envelope.remoteAddress)")
                    } catch {
                        metrics.rejected("udp", reason: "shutting_down", events.count, peer: "\(envelope.remoteAddress)")
                    }
                case .frame(.auth(let key)):
                    // Each AUTH costs a hash: a datagram gets at most one per site it may hold,
                    // and a refused one ends it (forged datagrams full of AUTH frames buy little).
                    authFrames += 1
                    let refusal = authFrames > WireKeys.capacity
                        ? "a datagram holds at most \(WireKeys.capacity) AUTH frames"
                        : SiteRules.authRefusal(keys.present(key, sites: sites))
                    if let refusal {
                        metrics.rejected("udp", reason: WireError.unauthorized.label,
                                         detail: "AUTH refused: " + refusal + "; the rest of the datagram is dropped",
                                         peer: "\(envelope.remoteAddress)")
                        return
                    }
                case .frame:
                    reject(FrameRejection(.unknownFrameType, "senders may only send EVENTS and AUTH frames"), from: envelope.remoteAddress)
                }
            } catch {
                reject(error, from: envelope.remoteAddress)
                // Without a sound header we cannot know where the next frame starts.
                if !error.reason.headerWasSound { return }
            }
        }
    }

    private func reject(_ error: FrameRejection, from peer: SocketAddress) {
        metrics.rejected("udp", reason: error.reason.label, detail: error.detail, peer: "\(peer)")
    }
}
