import NIOCore
import NIOHTTP1
import NIOPosix
import TallyCore
import TallySites
import TallyHTTP
import TallyEnrich

/// The only HTTP ingest path: answers every `POST /event` and `POST /events`, right behind
/// NIO's HTTP/1 request decoder, in front of Hummingbird (which answers every other request).
///
/// Why here and not in the router: Hummingbird converts each request to HTTPTypes and runs it
/// through an async task, a router and an async writer, several times what parsing and
/// queueing one event costs, and single-event requests are most of a collector's traffic.
///
/// Invariants:
/// - **Order.** Every request gets a slot in arrival order, answered here (`direct`) or passed
///   on (`forwarded`). Responses leave in slot order: a direct answer waits for the responses
///   ahead of it, and Hummingbird's writes for a later request are held until the slots ahead
///   of them are answered. NIO's response encoder therefore sees response heads in request
///   order (it frames HEAD responses by the method it recorded per request).
/// - **Durable acks** (`?ack=durable`) complete on this channel's event loop when the sink
///   reports the events durable, or answer 503 after `durableTimeout`.
/// - **Graceful shutdown.** Hummingbird closes a connection on `ChannelShouldQuiesceEvent` once
///   the requests *it* saw are answered; it never sees direct ones. The event is held here
///   until every slot is answered and no request is half read, so a request whose head has
///   arrived is still read, answered and stored, and no response is cut off.
/// - **Refusals from the head alone** (a target over ``HTTPIngest/maxTargetBytes``: 414; an
///   ingest `Content-Length` over the route's limit: 413; headers over the decoder's limits:
///   431; unreadable HTTP: 400) are answered at once with a JSON body, and the connection
///   closes after them.
/// - **Lingering close.** A connection closed during a shutdown (by this handler or by
///   Hummingbird) or after a refusal at the head is half-closed: the peer gets every response written so far and then FIN,
///   and whatever it still sends is read and dropped until it closes (at most
///   ``lingerTimeout``). A plain close with unread requests in the socket would send a reset,
///   which can destroy responses the peer has not read yet.
/// - **Backpressure.** Reads stop while the socket cannot take more, so a client that sends
///   without reading cannot grow the outbound buffer without bound.
///
/// Install it with ``IngestHTTP1Channel``. Costs: one slot append and removal per request;
/// the response head is reused while status, body and the `Date` second repeat.
public final class HTTPIngestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias InboundOut = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    /// A direct request's answer once known.
    struct Answer {
        var status: Int
        var body: String
        /// A CORS preflight's 204 (its `Access-Control-Allow-*` headers, no body).
        var preflight = false
        /// `Access-Control-Allow-Origin: *` (not on a refusal of the page's origin).
        var allowsCORS = true
        /// `Retry-After` seconds, when not the 503's 1.
        var retryAfter: Int?
    }

    enum Slot {
        case forwarded
        case direct(id: UInt64, answer: Answer?, head: RequestFacts)
    }

    /// What the answer to a request depends on besides its body.
    struct RequestFacts {
        var close: Bool
        /// HTTP/1.0 with `Connection: keep-alive`, which must be confirmed in the response.
        var keepAlive10: Bool
        /// `Expect: 100-continue` on HTTP/1.1, not yet answered with a 100.
        var expectsContinue: Bool
    }

    /// The direct request whose body is being read.
    private struct Collecting {
        var id: UInt64
        var request: HTTPIngest.Request
        /// The declared `Content-Length` (within the route's limit), allocated at once so a
        /// large body is not copied through a doubling buffer.
        var length: Int?
        /// `OPTIONS`: a CORS preflight, answered 204 once read.
        var preflight = false
    }

    private let context: IngestContext
    private var slots = CircularBuffer<Slot>(initialCapacity: 4)
    /// Hummingbird's writes for a forwarded slot that is not at the front yet.
    private var held = CircularBuffer<(part: NIOAny, promise: EventLoopPromise<Void>?)>()
    private var collecting: Collecting?
    private var nextID: UInt64 = 0
    /// Inside `channelRead`: writes are flushed once in `channelReadComplete`.
    private var reading = false
    private var needsFlush = false
    /// A read held back while the socket's send buffer is full (see `read`).
    private var readPending = false
    /// A graceful shutdown began; the event is passed on once this connection is idle.
    private var heldQuiesce: Any?
    private var quiescing = false
    /// Half-closed after a shutdown or a refusal at the head; reads are dropped until the peer closes.
    private var lingering = false
    /// Closing this connection should linger (a shutdown, or a request refused at its head).
    private var lingerOnClose = false
    /// Dropping the body of a request refused at its head.
    private var discarding = false
    /// Passing a request's parts on to Hummingbird.
    private var forwarding = false
    /// False once no further request may start on this connection (the client asked to close,
    /// a request was refused at its head, or a shutdown began): later heads are not read.
    private var acceptingRequests = true
    /// Dropping the parts of a request that arrived after `acceptingRequests` turned false.
    private var dropping = false
    /// Closes asked for (by Hummingbird or this handler) while answers were still to leave;
    /// done once they have, so no answer is lost to a close.
    private var pendingCloses: [(mode: CloseMode, promise: EventLoopPromise<Void>?)] = []
    /// Requests answered or passed on but not yet fully answered, past which reads pause: a
    /// client pipelining behind a slow durable ack cannot grow memory without bound.
    static let maxOutstanding = 64
    static let lingerTimeout = TimeAmount.seconds(2)
    /// Bodies longer than this are parsed off the event loop (a 128 KiB batch takes about a
    /// millisecond to read; the hop to the thread pool and back costs tens of microseconds).
    static let offloadBytes = 128 * 1024
    /// The last keep-alive response, reused while its status, body and `Date` second repeat
    /// (nearly every 202 of a busy connection is the same).
    private var last: (second: Int64, answer: Answer, keepAlive10: Bool, head: HTTPResponseHead, bytes: ByteBuffer)?
    /// The `Date` header value, made again when the second changes.
    private var date: (second: Int64, value: String) = (-1, "")
    /// The peer's address as text, looked up once per connection.
    private var peerAddress: String??
    /// This connection's last User-Agent class and visitor (a browser's requests repeat them).
    private var enrichMemo = Enricher.Memo()
    /// This connection's recent keys and their hashes (a sender's requests repeat them).
    private var keyMemo = PresentedKeys()

    public init(context: IngestContext) {
        self.context = context
    }

    // MARK: Inbound

    public func channelRead(context ctx: ChannelHandlerContext, data: NIOAny) {
        guard !lingering else { return }
        reading = true
        defer { reading = false }
        switch unwrapInboundIn(data) {
        case .head(var head):
            guard acceptingRequests else {
                dropping = true
                return
            }
            ctx.triggerUserOutboundEvent(ReadProgress.headRead, promise: nil)
            let fields = IngestHeaders(head.headers)
            let keepAlive = head.isKeepAlive
            let facts = RequestFacts(
                close: !keepAlive, keepAlive10: head.version == .http1_0 && keepAlive,
                expectsContinue: head.version != .http1_0 && fields.expect?.lowercased() == "100-continue")
            if head.uri.utf8.count > HTTPIngest.maxTargetBytes {
                return refuseAtHead(.uriTooLong(limit: HTTPIngest.maxTargetBytes), facts, ctx)
            }
            if head.headers.count > HTTPIngest.maxHeaderCount || fields.bytes > HTTPIngest.maxHeaderBytes {
                return refuseAtHead(.headersTooLarge, facts, ctx)
            }
            if let (route, ack, badQuery) = HTTPIngest.route(method: head.method.rawValue, target: head.uri) {
                // Known too long before the body is read: answer now, not after reading it.
                let length = fields.contentLength.flatMap { Int($0) }
                if let length, length > route.bodyLimit {
                    return refuseAtHead(.bodyTooLarge(limit: route.bodyLimit), facts, ctx)
                }
                let id = nextID
                nextID &+= 1
                slots.append(.direct(id: id, answer: nil, head: facts))
                if facts.close { acceptingRequests = false }
                if peerAddress == nil { peerAddress = .some(ctx.remoteAddress?.ipAddress) }
                let client = ClientFacts(
                    address: context.enricher.addressRule.address(peer: peerAddress!, forwardedFor: {
                        let forwarded = head.headers["x-forwarded-for"]
                        return forwarded.isEmpty ? nil : forwarded.joined(separator: ",")
                    }()),
                    userAgent: fields.userAgent, pageHost: fields.origin)
                collecting = Collecting(id: id, request: HTTPIngest.Request(
                    route: route, ack: ack, badQueryParameter: badQuery, contentType: fields.contentType,
                    body: nil, bodyTooLarge: false, client: client, origin: fields.origin, authorization: fields.authorization), length: length, preflight: head.method == .OPTIONS)
                sendContinueIfFront(ctx)
            } else {
                slots.append(.forwarded)
                if facts.close { acceptingRequests = false }
                forwarding = true
                if head.method == .HEAD {
                    // Every GET route answers HEAD: the router sees a GET, and NIO's response
                    // encoder, which recorded HEAD for this request, sends the head without the body.
                    head.method = .GET
                    ctx.fireChannelRead(wrapInboundOut(.head(head)))
                } else {
                    ctx.fireChannelRead(data)
                }
            }
        case .body(var chunk):
            if discarding || dropping { return }
            guard var c = collecting else { return ctx.fireChannelRead(data) }
            // Release the stored copy first so appending does not copy the buffer.
            collecting = nil
            if !c.request.bodyTooLarge {
                let have = c.request.body?.readableBytes ?? 0
                if have + chunk.readableBytes > c.request.route.bodyLimit {
                    c.request.bodyTooLarge = true
                    c.request.body = nil
                } else if c.request.body == nil {
                    if let length = c.length, length > chunk.readableBytes {
                        var body = ctx.channel.allocator.buffer(capacity: length)
                        body.writeBuffer(&chunk)
                        c.request.body = body
                    } else {
                        c.request.body = chunk
                    }
                } else {
                    c.request.body!.writeBuffer(&chunk)
                }
            }
            collecting = c
        case .end:
            if dropping { return }
            if discarding {
                discarding = false
                return
            }
            guard let c = collecting else {
                forwarding = false
                ctx.triggerUserOutboundEvent(ReadProgress.messageRead, promise: nil)
                return ctx.fireChannelRead(data)
            }
            collecting = nil
            handle(c, ctx)
        }
    }

    /// Answers a request refused from its head alone and closes the connection after the
    /// answer: its body is not read but dropped, and the close lingers so that a client that
    /// sends the whole body before reading still receives the answer.
    private func refuseAtHead(_ refusal: IngestRefusal, _ facts: RequestFacts, _ ctx: ChannelHandlerContext) {
        var facts = facts
        facts.close = true
        facts.expectsContinue = false
        let id = nextID
        nextID &+= 1
        slots.append(.direct(id: id, answer: nil, head: facts))
        discarding = true
        acceptingRequests = false
        lingerOnClose = true
        answer(id, refusal: refusal, ctx)
    }

    /// The decoder could not read the request: answered here with a JSON body (Hummingbird
    /// would answer an empty 400), after the answers ahead of it, and the connection closes.
    public func errorCaught(context ctx: ChannelHandlerContext, error: any Error) {
        // Data after a request that asked to close is not a request to answer.
        guard let parserError = error as? HTTPParserError, parserError != .closedConnection else {
            return ctx.fireErrorCaught(error)
        }
        let refusal: IngestRefusal = parserError == .headerOverflow ? .headersTooLarge : .malformedRequest("\(parserError)")
        // The request being read cannot be finished; the refusal takes its place.
        abandonCollecting()
        if forwarding {
            // Hummingbird is reading a request that will never end; it learns when the
            // connection closes.
            forwarding = false
        }
        refuseAtHead(refusal, RequestFacts(close: true, keepAlive10: false, expectsContinue: false), ctx)
    }

    public func channelReadComplete(context ctx: ChannelHandlerContext) {
        // Responses to everything read in one go leave in one write.
        if needsFlush {
            needsFlush = false
            ctx.flush()
        }
        ctx.fireChannelReadComplete()
    }

    public func userInboundEventTriggered(context ctx: ChannelHandlerContext, event: Any) {
        if let guardEvent = event as? ReadGuardEvent {
            // The request being read will not complete: it is answered (408 or 503) in its
            // place, and the ReadGuard closes the connection soon after.
            abandonCollecting()
            forwarding = false
            switch guardEvent {
            case .timedOut(let phase):
                let limit = phase == .body ? context.timeouts.body : context.timeouts.start
                refuseAtHead(.requestTimeout(phase, limit), RequestFacts(close: true, keepAlive10: false, expectsContinue: false), ctx)
            case .overBudget:
                refuseAtHead(.overloaded, RequestFacts(close: true, keepAlive10: false, expectsContinue: false), ctx)
            }
            return
        }
        if case ChannelEvent.inputClosed = event, collecting != nil {
            // The client stopped sending in the middle of a body: that request never completes.
            abandonCollecting()
            advance(ctx)
        }
        guard event is ChannelShouldQuiesceEvent else { return ctx.fireUserInboundEventTriggered(event) }
        // Requests whose head has been read are finished; no new one starts.
        quiescing = true
        acceptingRequests = false
        lingerOnClose = true
        heldQuiesce = event
        passQuiesceIfIdle(ctx)
    }

    // MARK: Answering

    /// Decodes and enqueues a complete request; answers now (queued) or when durable.
    /// A body over ``offloadBytes`` is parsed on NIO's thread pool, so one client's 8 MiB batch
    /// never stalls the other connections of this event loop; its answer keeps its slot.
    private func handle(_ c: Collecting, _ ctx: ChannelHandlerContext) {
        if c.preflight {
            ctx.triggerUserOutboundEvent(ReadProgress.messageRead, promise: nil)
            return answer(c.id, Answer(status: 204, body: "", preflight: true), ctx)
        }
        let receivedAt = Timestamp.now()
        let enricher = context.enricher
        let rules = context.sites.rules, rates = context.rates
        // The body's bytes count against the read budget until it is parsed.
        guard (c.request.body?.readableBytes ?? 0) > Self.offloadBytes else {
            let decoded = Result { () throws(IngestRefusal) in
                try HTTPIngest.decode(c.request, receivedAt: receivedAt, enricher: enricher, memo: &enrichMemo, rules: rules, rates: rates, keys: &keyMemo)
            }
            ctx.triggerUserOutboundEvent(ReadProgress.messageRead, promise: nil)
            return enqueue(decoded, c, ctx)
        }
        let bound = NIOLoopBound(self, eventLoop: ctx.eventLoop)
        let request = c.request
        NIOThreadPool.singleton.runIfActive(eventLoop: ctx.eventLoop) {
            var memo = Enricher.Memo()
            var keys = PresentedKeys()
            return Result { () throws(IngestRefusal) in
                try HTTPIngest.decode(request, receivedAt: receivedAt, enricher: enricher, memo: &memo, rules: rules, rates: rates, keys: &keys)
            }
        }.whenComplete { result in
            let handler = bound.value
            guard let ctx = handler.handlerContext, handler.isPending(c.id) else { return }
            ctx.triggerUserOutboundEvent(ReadProgress.messageRead, promise: nil)
            switch result {
            case .success(let decoded): handler.enqueue(decoded, c, ctx)
            case .failure: handler.answer(c.id, refusal: .shuttingDown, ctx)
            }
        }
    }

    private func enqueue(_ decoded: Result<(events: [Event], ack: HTTPIngest.AckLevel, bots: Int), IngestRefusal>, _ c: Collecting,
                         _ ctx: ChannelHandlerContext) {
        let ingest = context
        let events: [Event], ack: HTTPIngest.AckLevel, bots: Int
        switch decoded {
        case .success(let d): (events, ack, bots) = d
        case .failure(let refusal): return answer(c.id, refusal: refusal, ctx)
        }
        if bots > 0 { ingest.metrics.filtered("http", reason: "bot", bots) }
        switch ack {
        case .queued:
            do {
                try ingest.sink.enqueue(events, onDurable: nil)
            } catch {
                return answer(c.id, refusal: IngestRefusal(error), ctx)
            }
            ingest.metrics.accepted("http", events.count)
            answer(c.id, Answer(status: 202, body: HTTPIngest.acceptedBody(events.count, route: c.request.route, ack: .queued)), ctx)
        case .durable:
            guard ingest.sink.canMakeDurable else { return answer(c.id, refusal: .spoolUnavailable, ctx) }
            let id = c.id, route = c.request.route, count = events.count
            let bound = NIOLoopBound(self, eventLoop: ctx.eventLoop)
            let loop = ctx.eventLoop
            let started = NIODeadline.now()
            let timer = loop.scheduleTask(in: ingest.durableTimeout) {
                // Queued but not confirmed durable in time: the events may still be stored; the
                // client retries (at-least-once), as it would after any lost response.
                bound.value.complete(id, refusal: .durableTimeout)
            }
            do {
                try ingest.sink.enqueue(events) { ok in
                    loop.execute {
                        timer.cancel()
                        let handler = bound.value
                        // Not durable: the server is stopping before the spool took them.
                        guard ok else { return handler.complete(id, refusal: .shuttingDown) }
                        guard handler.isPending(id) else { return }
                        ingest.metrics.durableAck(NIODeadline.now() - started)
                        ingest.metrics.accepted("http", count)
                        handler.complete(id, Answer(status: 202, body: HTTPIngest.acceptedBody(count, route: route, ack: .durable)))
                    }
                }
            } catch {
                timer.cancel()
                answer(c.id, refusal: IngestRefusal(error), ctx)
            }
        }
    }

    private func answer(_ id: UInt64, refusal: IngestRefusal, _ ctx: ChannelHandlerContext) {
        context.metrics.rejected("http", reason: refusal.reason, detail: refusal.jsonBody, peer: ctx.remoteAddress?.description)
        answer(id, Answer(status: Int(refusal.status.code), body: refusal.jsonBody, allowsCORS: refusal.allowsCORS,
                          retryAfter: refusal.status == .tooManyRequests ? refusal.retryAfter : nil), ctx)
    }

    private func answer(_ id: UInt64, _ answer: Answer, _ ctx: ChannelHandlerContext) {
        guard let i = pendingIndex(id), case .direct(_, _, let facts) = slots[i] else { return }
        slots[i] = .direct(id: id, answer: answer, head: facts)
        advance(ctx)
    }

    /// A durable ack's outcome, back on the event loop. The first of answer and timeout wins;
    /// after the connection closed there is nothing to answer.
    private func complete(_ id: UInt64, _ a: Answer) {
        guard let ctx = handlerContext else { return }
        answer(id, a, ctx)
    }

    private func complete(_ id: UInt64, refusal: IngestRefusal) {
        guard let ctx = handlerContext, isPending(id) else { return }
        answer(id, refusal: refusal, ctx)
    }

    /// Whether request `id` still waits for its answer (the first of answer and timeout wins,
    /// and only the winner is counted).
    private func isPending(_ id: UInt64) -> Bool { pendingIndex(id) != nil }

    private func pendingIndex(_ id: UInt64) -> CircularBuffer<Slot>.Index? {
        slots.firstIndex { if case .direct(id, nil, _) = $0 { true } else { false } }
    }

    /// Whether answers of this handler are still to leave (a close waits for them).
    private var directAnswersOutstanding: Bool {
        slots.contains { if case .direct = $0 { true } else { false } }
    }

    /// Forgets the request whose body is being read, and its slot (it will never complete).
    private func abandonCollecting() {
        guard let c = collecting else { return }
        collecting = nil
        slots.removeAll { if case .direct(c.id, _, _) = $0 { true } else { false } }
    }

    private var handlerContext: ChannelHandlerContext?
    public func handlerAdded(context ctx: ChannelHandlerContext) { handlerContext = ctx }
    public func handlerRemoved(context ctx: ChannelHandlerContext) { handlerContext = nil }

    /// Writes what can leave now, in slot order: answered direct slots, and Hummingbird's held
    /// writes once their slot is at the front.
    private func advance(_ ctx: ChannelHandlerContext) {
        var wrote = false
        loop: while let first = slots.first {
            switch first {
            case .direct(_, nil, _):
                break loop
            case .direct(_, let answer?, let facts):
                slots.removeFirst()
                wrote = true
                // The last response of a connection that is shutting down says so.
                let closing = facts.close || (quiescing && slots.isEmpty && collecting == nil)
                if write(answer, facts, closing: closing, ctx) { return }
            case .forwarded:
                guard !held.isEmpty else { break loop }
                while let w = held.popFirst() {
                    ctx.write(w.part, promise: w.promise)
                    wrote = true
                    if case .end = unwrapOutboundIn(w.part) {
                        slots.removeFirst()
                        continue loop
                    }
                }
                break loop
            }
        }
        // Writes for no slot (Hummingbird's 400 for a request the decoder could not parse)
        // leave once everything ahead of them has.
        if slots.isEmpty {
            while let w = held.popFirst() {
                ctx.write(w.part, promise: w.promise)
                wrote = true
            }
        }
        if wrote {
            if reading { needsFlush = true } else { ctx.flush() }
        }
        if held.isEmpty && !pendingCloses.isEmpty && !directAnswersOutstanding {
            let closes = pendingCloses
            pendingCloses = []
            for c in closes { performClose(ctx, mode: c.mode, promise: c.promise) }
            return
        }
        if readPending && slots.count < Self.maxOutstanding && ctx.channel.isWritable {
            readPending = false
            ctx.read()
        }
        sendContinueIfFront(ctx)
        passQuiesceIfIdle(ctx)
    }

    /// `100 Continue` for the request being read once it is next to be answered, so the 100
    /// cannot overtake an earlier response (HTTP/1.0 has no 1xx and never asks).
    private func sendContinueIfFront(_ ctx: ChannelHandlerContext) {
        guard let c = collecting, slots.count == 1, case .direct(let id, nil, var facts) = slots[slots.startIndex],
              id == c.id, facts.expectsContinue else { return }
        facts.expectsContinue = false
        slots[slots.startIndex] = .direct(id: id, answer: nil, head: facts)
        ctx.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        if reading { needsFlush = true } else { ctx.flush() }
    }

    private func passQuiesceIfIdle(_ ctx: ChannelHandlerContext) {
        guard let event = heldQuiesce, slots.isEmpty, collecting == nil else { return }
        heldQuiesce = nil
        ctx.fireUserInboundEventTriggered(event)
    }

    /// Writes one answer; true when it closed the connection.
    private func write(_ answer: Answer, _ facts: RequestFacts, closing: Bool, _ ctx: ChannelHandlerContext) -> Bool {
        let second = Timestamp.now() / 1_000_000
        let head: HTTPResponseHead, bytes: ByteBuffer
        if !closing, let l = last, l.second == second, l.answer.status == answer.status, l.keepAlive10 == facts.keepAlive10,
           l.answer.preflight == answer.preflight, l.answer.allowsCORS == answer.allowsCORS, l.answer.retryAfter == answer.retryAfter,
           l.answer.body == answer.body {
            (head, bytes) = (l.head, l.bytes)
        } else {
            if second != date.second { date = (second, HTTPDate.format(seconds: second)) }
            var fields = HTTPHeaders()
            if answer.preflight {
                for (name, value) in HTTPIngest.preflightHeaders { fields.add(name: name, value: value) }
            } else {
                for field in JSONResponse.headers(status: answer.status, retryAfter: answer.retryAfter) { fields.add(name: field.name.rawName, value: field.value) }
                if answer.allowsCORS { fields.add(name: HTTPIngest.allowOrigin.0, value: HTTPIngest.allowOrigin.1) }
            }
            fields.add(name: "Content-Length", value: String(answer.body.utf8.count))
            fields.add(name: "Date", value: date.value)
            if let serverName = context.serverName { fields.add(name: "Server", value: serverName) }
            if closing { fields.add(name: "Connection", value: "close") }
            if facts.keepAlive10 && !closing { fields.add(name: "Connection", value: "keep-alive") }
            head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: fields)
            bytes = ctx.channel.allocator.buffer(string: answer.body)
            if !closing { last = (second, answer, facts.keepAlive10, head, bytes) }
        }
        ctx.write(wrapOutboundOut(.head(head)), promise: nil)
        ctx.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        guard closing else {
            ctx.write(wrapOutboundOut(.end(nil)), promise: nil)
            return false
        }
        let channel = ctx.channel
        // Pipelined bytes the client sent after this request must not turn the close into a
        // reset that destroys this answer.
        lingerOnClose = true
        acceptingRequests = false
        ctx.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        needsFlush = false
        return true
    }

    // MARK: Outbound

    public func write(context ctx: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard let first = slots.first else {
            // Hummingbird may answer a request it could not parse without having been passed it.
            return ctx.write(data, promise: promise)
        }
        guard case .forwarded = first, held.isEmpty else {
            held.append((data, promise))
            return
        }
        ctx.write(data, promise: promise)
        if case .end = unwrapOutboundIn(data) {
            slots.removeFirst()
            advance(ctx)
        }
    }

    /// During a shutdown or after a refusal at the head, closes the output only and lets the
    /// peer finish reading; the input is drained until the peer closes or ``lingerTimeout``.
    /// A close (Hummingbird's after its last request, or this handler's) waits while answers of
    /// this handler, or writes held behind them, are still to leave; they always come (a durable
    /// ack within its timeout). Closing the input is never deferred.
    public func close(context ctx: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input, ctx.channel.isActive, !held.isEmpty || directAnswersOutstanding {
            acceptingRequests = false
            pendingCloses.append((mode, promise))
            return
        }
        performClose(ctx, mode: mode, promise: promise)
    }

    private func performClose(_ ctx: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, lingerOnClose, !lingering, ctx.channel.isActive else {
            return ctx.close(mode: mode, promise: promise)
        }
        lingering = true
        let channel = ctx.channel
        ctx.close(mode: .output, promise: nil)
        ctx.eventLoop.scheduleTask(in: Self.lingerTimeout) { channel.close(promise: nil) }
        promise.map { channel.closeFuture.cascade(to: $0) }
        ctx.read()
    }

    /// Holds reads while the socket cannot take more.
    public func read(context ctx: ChannelHandlerContext) {
        if lingering || (ctx.channel.isWritable && slots.count < Self.maxOutstanding) {
            ctx.read()
        } else {
            readPending = true
        }
    }

    public func channelWritabilityChanged(context ctx: ChannelHandlerContext) {
        if readPending && ctx.channel.isWritable && slots.count < Self.maxOutstanding {
            readPending = false
            ctx.read()
        }
        ctx.fireChannelWritabilityChanged()
    }

    public func channelInactive(context ctx: ChannelHandlerContext) {
        // Held writes and deferred closes can no longer happen; their callers must not wait.
        while let w = held.popFirst() { w.promise?.fail(ChannelError.ioOnClosedChannel) }
        for c in pendingCloses { c.promise?.succeed(()) }
        pendingCloses = []
        ctx.fireChannelInactive()
    }
}

/// What every ingest connection shares: where events go, how they are counted, and the
/// settings of the ingest path.
public struct IngestContext: Sendable {
    public var sink: any EventSink
    public var metrics: IngestMetrics
    /// How long `?ack=durable` waits for the spool before answering 503.
    public var durableTimeout: TimeAmount
    /// The `Server` header of direct answers (Hummingbird adds its own to the rest).
    public var serverName: String?
    /// Referrer hosts, visitor ids, device classes and bot flags, for every transport.
    public var enricher: Enricher

    /// Bytes of partly read requests, shared by every connection (and the wire listener).
    public var budget: BufferBudget
    public var timeouts: ReadTimeouts
    /// Registered sites' origins and keys (``SiteRules``), read once per request.
    public var sites: SiteRulesSource
    /// Sites' rates and `--ip-rate`.
    public var rates: RateLimits

    public init(sink: any EventSink, metrics: IngestMetrics, durableTimeout: Duration, serverName: String? = nil,
                budget: BufferBudget, timeouts: ReadTimeouts, enricher: Enricher, sites: SiteRulesSource = SiteRulesSource(),
                rates: RateLimits = RateLimits()) {
        self.enricher = enricher
        self.sites = sites
        self.rates = rates
        self.sink = sink
        self.metrics = metrics
        self.durableTimeout = TimeAmount(durableTimeout)
        self.serverName = serverName
        self.budget = budget
        self.timeouts = timeouts
    }
}
