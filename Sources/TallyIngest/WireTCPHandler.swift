import Logging
import NIOCore
import TallyCore
import TallySites
import TallyWire
import TallyEnrich

/// One TCP connection of the wire protocol, behind `ByteToMessageHandler(WireFrameDecoder())`:
/// enqueues each decoded frame's events, answers ACKs in frame order once the events are
/// durable, and refuses malformed frames with an ERROR frame before closing.
///
/// Backpressure: when the sink is full, the frame waits here, reads stop (the kernel buffer
/// fills and TCP flow control slows the sender), and the sink's ``EventSink/whenSpace(for:_:)``
/// wakes this handler when a flusher frees room; no timer polls. Frames the decoder still
/// had when the connection closed are enqueued all the same (``LateFrames``).
final class WireTCPHandler: ChannelDuplexHandler {
    typealias InboundIn = SenderFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A received frame, resolved to events when it arrived.
    struct Received {
        var events: [Event]
        var sequence: UInt64
        var ackRequested: Bool
        /// Its events were taken from its site's rate (taken once, however long it waits).
        var ratePaid = false
    }

    private let sink: any EventSink
    private let metrics: IngestMetrics
    /// Frames received but not yet taken by the sink (it was full), in order.
    private var waiting = CircularBuffer<Received>()
    private var waitingForSpace = false
    private var readPending = false
    private var closing = false
    private var handlerContext: ChannelHandlerContext?

    /// Frames that asked for an ACK, in arrival order; ACKs go out in that order.
    private var awaitingAck = CircularBuffer<(sequence: UInt64, durable: Bool, id: UInt64)>()
    private var nextAckID: UInt64 = 0

    private let enricher: Enricher
    private let sites: SiteRulesSource
    private let rates: RateLimits
    /// From this connection's AUTH frames.
    private var keys = WireKeys()

    init(sink: any EventSink, metrics: IngestMetrics, enricher: Enricher = Enricher(), sites: SiteRulesSource = SiteRulesSource(),
         rates: RateLimits = RateLimits()) {
        self.sink = sink
        self.metrics = metrics
        self.enricher = enricher
        self.sites = sites
        self.rates = rates
    }

    func handlerAdded(context: ChannelHandlerContext) { handlerContext = context }
    func handlerRemoved(context: ChannelHandlerContext) { handlerContext = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.triggerUserOutboundEvent(ReadProgress.messageRead, promise: nil)
        guard !closing else { return }
        let frame: EventsFrame
        switch unwrapInboundIn(data) {
        case .events(let f): frame = f
        case .auth(let key): return authenticate(key, context: context)
        }
        if let refusal = sites.rules.wireRefusal(frame, keys: keys) {
            // Frames before this one are the sender's delivered events.
            handOffWaiting()
            metrics.rejected("tcp", reason: WireError.unauthorized.label, frame.events.count,
                             detail: refusal + "; closing the connection", peer: context.remoteAddress?.description)
            return sendError(.unauthorized, refusal, context: context)
        }
        let events = frame.enrichedEvents(receivedAt: Timestamp.now(), enricher: enricher, metrics: metrics, transport: "tcp")
        waiting.append(Received(events: events, sequence: frame.sequence,
                                ackRequested: frame.ackRequested))
        if waiting.count == 1 { drain(context) }
    }

    /// Answers AUTH_OK at once (frames after it are handled in order, so the sender need not
    /// wait for it), or ERROR 13 and closes.
    private func authenticate(_ key: String, context: ChannelHandlerContext) {
        let outcome = keys.present(key, sites: sites)
        guard case .accepted(let site, let keyID) = outcome else {
            let refusal = SiteRules.authRefusal(outcome)!
            handOffWaiting()
            metrics.rejected("tcp", reason: WireError.unauthorized.label, detail: "AUTH refused: " + refusal + "; closing the connection",
                             peer: context.remoteAddress?.description)
            return sendError(.unauthorized, refusal, context: context)
        }
        var out = context.channel.allocator.buffer(capacity: 32 + site.utf8.count)
        FrameEncoder.writeAuthOK(siteID: site, keyID: keyID, into: &out)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    /// While frames wait for room, reads are held back.
    func read(context: ChannelHandlerContext) {
        if !waiting.isEmpty || closing {
            readPending = true
        } else {
            context.read()
        }
    }

    /// Enqueues waiting frames in order until the sink is full (then waits for its signal),
    /// or a frame's site is over its rate (then waits as long as the rate says): either way
    /// reads stop, and TCP's flow control slows the sender.
    private func drain(_ context: ChannelHandlerContext) {
        while let frame = waiting.first, !closing {
            if !frame.ratePaid, let site = frame.events.first?.siteID {
                if let refusal = rates.frameRefusal(site: site, events: frame.events.count, rules: sites.rules) {
                    guard !waitingForSpace else { return }
                    waitingForSpace = true
                    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                    context.eventLoop.scheduleTask(in: TimeAmount(refusal.wait)) {
                        let handler = bound.value
                        handler.waitingForSpace = false
                        if let ctx = handler.handlerContext { handler.drain(ctx) }
                    }
                    return
                }
                waiting[waiting.startIndex].ratePaid = true
            }
            guard enqueue(frame, context) else {
                guard !waitingForSpace else { return }
                waitingForSpace = true
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                let loop = context.eventLoop
                sink.whenSpace(for: frame.events) {
                    loop.execute {
                        let handler = bound.value
                        handler.waitingForSpace = false
                        if let ctx = handler.handlerContext { handler.drain(ctx) }
                    }
                }
                return
            }
            waiting.removeFirst()
        }
        if readPending && waiting.isEmpty && !closing {
            readPending = false
            context.read()
        }
    }

    /// True when the frame was taken (or refused for good); false when the sink is full.
    private func enqueue(_ frame: Received, _ context: ChannelHandlerContext) -> Bool {
        var callback: DurabilityCallback?
        let id = nextAckID
        if frame.ackRequested {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            callback = { ok in loop.execute { bound.value.durable(id: id, ok: ok) } }
        }
        do {
            try sink.enqueue(frame.events, onDurable: callback)
        } catch .full {
            return false
        } catch .tooLarge {
            metrics.rejected("tcp", reason: WireError.frameTooLarge.label, frame.events.count,
                             detail: "frame has more events than a queue shard holds", peer: context.remoteAddress?.description)
            sendError(.frameTooLarge, "frame has more events than a queue shard holds; send smaller frames", context: context)
            return true
        } catch {
            metrics.rejected("tcp", reason: "shutting_down", frame.events.count, peer: context.remoteAddress?.description)
            sendError(.overloaded, "server shutting down", context: context)
            return true
        }
        // The callback runs on this loop after this call returns, so the entry is there first.
        if frame.ackRequested {
            awaitingAck.append((frame.sequence, false, id))
            nextAckID += 1
        }
        metrics.accepted("tcp", frame.events.count)
        return true
    }

    private func durable(id: UInt64, ok: Bool) {
        guard let context = handlerContext, ok else { return }
        if let i = awaitingAck.firstIndex(where: { $0.id == id }) { awaitingAck[i].durable = true }
        var last: UInt64?
        while let first = awaitingAck.first, first.durable {
            last = first.sequence
            awaitingAck.removeFirst()
        }
        if let last {
            var out = context.channel.allocator.buffer(capacity: 16)
            FrameEncoder.writeAck(last, into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }

    /// A frame that did not arrive whole in time, or would pass the read budget: the sender
    /// learns why before the ``ReadGuard`` closes the connection.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ReadGuardEvent, !closing else { return context.fireUserInboundEventTriggered(event) }
        handOffWaiting()
        let (code, message): (WireError, String)
        switch event {
        case .timedOut: (code, message) = (.truncated, "frame not received whole in time; closing the connection")
        case .overBudget: (code, message) = (.overloaded, "server holds as many partly received frames as it may; retry later")
        }
        metrics.rejected("tcp", reason: code == .truncated ? "timeout" : "overloaded", detail: message, peer: context.remoteAddress?.description)
        sendError(code, message, context: context)
    }

    /// The decoder's rejections arrive here; anything else is a broken connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let rejection = error as? FrameRejection, !closing else { return context.close(promise: nil) }
        // Whole frames received before the bad one are still the sender's delivered events.
        handOffWaiting()
        metrics.rejected("tcp", reason: rejection.reason.label, detail: rejection.detail + "; closing the connection",
                         peer: context.remoteAddress?.description)
        sendError(rejection.reason, rejection.detail, context: context)
    }

    /// Frames still waiting for room outlive this connection: ``LateFrames`` enqueues them.
    private func handOffWaiting() {
        guard !waiting.isEmpty else { return }
        LateFrames.enqueue(waiting.map(\.events)[...], sink: sink, metrics: metrics)
        waiting.removeAll()
    }

    private func sendError(_ code: WireError, _ message: String, context: ChannelHandlerContext) {
        closing = true
        var out = context.channel.allocator.buffer(capacity: 64)
        FrameEncoder.writeError(code, message: message, into: &out)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The sender closed (or the connection broke) with frames still waiting for room. Those
    /// bytes were received, so they are still enqueued: dropping them would lose events a
    /// plain-TCP sender rightly considers delivered.
    func channelInactive(context: ChannelHandlerContext) {
        if !closing { handOffWaiting() }
        closing = true
        context.fireChannelInactive()
    }
}

/// Frames left behind by a closed connection, enqueued in order as room frees up.
enum LateFrames {
    static func enqueue(_ frames: ArraySlice<[Event]>, sink: any EventSink, metrics: IngestMetrics) {
        var rest = frames
        while let events = rest.first {
            do {
                try sink.enqueue(events)
                metrics.accepted("tcp", events.count)
                rest = rest.dropFirst()
            } catch .full {
                let remaining = rest
                sink.whenSpace(for: events) { enqueue(remaining, sink: sink, metrics: metrics) }
                return
            } catch .tooLarge {
                metrics.rejected("tcp", reason: WireError.frameTooLarge.label, events.count)
                rest = rest.dropFirst()
            } catch {
                metrics.rejected("tcp", reason: "shutting_down", rest.reduce(0) { $0 + $1.count })
                return
            }
        }
    }
}
