import Metrics
import NIOCore
import Synchronization

/// The bytes every connection of the process holds while it reads a request or frame, against
/// one limit (`--max-buffered-bytes`): a thousand clients each sending most of a large body or
/// frame and then stalling cannot hold more memory than this between them.
public final class BufferBudget: Sendable {
    public let limit: Int
    private let used = Atomic<Int>(0)
    private let gauge: Gauge

    public init(limit: Int, factory: any MetricsFactory = MetricsSystem.factory) {
        self.limit = limit
        self.gauge = Gauge(label: "tally_buffered_bytes", dimensions: [], factory: factory)
    }

    /// Takes `n` bytes of the budget; false (and nothing taken) when that would pass the limit.
    func reserve(_ n: Int) -> Bool {
        let after = used.add(n, ordering: .relaxed).newValue
        guard after <= limit else {
            used.subtract(n, ordering: .relaxed)
            return false
        }
        gauge.record(after)
        return true
    }

    func release(_ n: Int) {
        guard n > 0 else { return }
        gauge.record(used.subtract(n, ordering: .relaxed).newValue)
    }

    public var inUse: Int { used.load(ordering: .relaxed) }
}

/// How long a connection may take over each part of its work.
public struct ReadTimeouts: Sendable {
    /// From the first byte of an HTTP request to the end of its head; from the first byte of a
    /// wire frame to its end.
    public var start: TimeAmount
    /// From the end of an HTTP request's head to the end of its body (unused on the wire).
    public var body: TimeAmount
    /// With nothing being read, before the connection is closed.
    public var idle: TimeAmount

    public init(start: Duration, body: Duration, idle: Duration) {
        self.start = TimeAmount(start)
        self.body = TimeAmount(body)
        self.idle = TimeAmount(idle)
    }
}

/// What the protocol handler behind a ``ReadGuard`` tells it (as outbound user events).
public enum ReadProgress: Sendable {
    /// An HTTP request's head is read; its body is next.
    case headRead
    /// A request or frame is read, and the bytes read so far are no longer held.
    case messageRead
}

/// What a ``ReadGuard`` tells the protocol handler behind it (as inbound user events), which
/// answers in its protocol before the guard closes the connection (``ReadGuard/grace`` later).
public enum ReadGuardEvent: Sendable, Equatable {
    /// A request head (or wire frame) or body did not arrive within its timeout.
    case timedOut(ReadPhase)
    /// Reading more would pass the process-wide ``BufferBudget``; the rest is dropped.
    case overBudget
}

public enum ReadPhase: String, Sendable {
    case header, body, frame
}

/// The first handler of every HTTP and wire TCP connection: charges each byte read to the
/// process-wide ``BufferBudget`` until the handler behind reports the message read, and
/// enforces the read timeouts. Protocol-agnostic: the handler behind reports progress with
/// ``ReadProgress`` and answers ``ReadGuardEvent``s in its protocol.
///
/// Invariants:
/// - The budget is charged when bytes arrive and released at ``ReadProgress/messageRead``, so
///   it counts what the connection holds to within one read (bytes of the next pipelined
///   message that came in the same read are released early).
/// - Past the budget, or after a timeout, nothing more is read into memory: the rest is
///   dropped, the handler behind answers (503, 408, an ERROR frame), and the connection is
///   closed at most ``grace`` later whatever it does. Its bytes stay charged until it closes.
/// - Costs: no timer per request. One scheduled check per connection fires at the earliest
///   deadline and, when the deadline moved (progress was made), re-arms for the new one.
public final class ReadGuard: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    static let grace = TimeAmount.seconds(2)

    private enum Phase { case idle, start, body, refused }

    private let budget: BufferBudget
    private let timeouts: ReadTimeouts
    private let startPhase: ReadPhase
    private let onTimeout: @Sendable (ReadPhase) -> Void
    private var phase = Phase.idle
    private var deadline = NIODeadline.distantFuture
    private var held = 0
    private var check: Scheduled<Void>?
    private var checkAt = NIODeadline.distantFuture

    /// `startPhase`: `.header` for HTTP, `.frame` for the wire protocol. `onTimeout` counts it.
    public init(budget: BufferBudget, timeouts: ReadTimeouts, startPhase: ReadPhase,
                onTimeout: @escaping @Sendable (ReadPhase) -> Void = { _ in }) {
        self.budget = budget
        self.timeouts = timeouts
        self.startPhase = startPhase
        self.onTimeout = onTimeout
    }

    public func channelActive(context: ChannelHandlerContext) {
        enter(.idle, context)
        context.fireChannelActive()
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { enter(.idle, context) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if phase == .refused { return }
        let n = unwrapInboundIn(data).readableBytes
        guard budget.reserve(n) else {
            refuse(.overBudget, context)
            return
        }
        held += n
        if phase == .idle { enter(.start, context) }
        context.fireChannelRead(data)
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let progress = event as? ReadProgress else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        promise?.succeed(())
        guard phase != .refused else { return }
        switch progress {
        case .headRead:
            enter(.body, context)
        case .messageRead:
            budget.release(held)
            held = 0
            enter(.idle, context)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func stop() {
        budget.release(held)
        held = 0
        check?.cancel()
        check = nil
        phase = .refused
    }

    private func enter(_ p: Phase, _ context: ChannelHandlerContext) {
        phase = p
        let timeout: TimeAmount
        switch p {
        case .idle: timeout = timeouts.idle
        case .start: timeout = timeouts.start
        case .body: timeout = timeouts.body
        case .refused: return
        }
        deadline = context.eventLoop.now + timeout
        // An armed check that fires before the new deadline re-arms itself then.
        if check == nil || checkAt > deadline { arm(at: deadline, context) }
    }

    private func arm(at when: NIODeadline, _ context: ChannelHandlerContext) {
        check?.cancel()
        checkAt = when
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(deadline: when) {
            let (handler, context) = bound.value
            handler.check = nil
            handler.fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        guard phase != .refused else { return }
        guard context.eventLoop.now >= deadline else { return arm(at: deadline, context) }
        switch phase {
        // From the tail, so a close waits for answers still to leave (see HTTPIngestHandler).
        case .idle: context.channel.close(promise: nil)
        case .start: refuse(.timedOut(startPhase), context)
        case .body: refuse(.timedOut(.body), context)
        case .refused: break
        }
    }

    private func refuse(_ event: ReadGuardEvent, _ context: ChannelHandlerContext) {
        if case .timedOut(let p) = event { onTimeout(p) }
        // What was read stays charged until the connection closes: the decoders behind still
        // hold it until then.
        phase = .refused
        check?.cancel()
        check = nil
        context.fireUserInboundEventTriggered(event)
        let channel = context.channel
        let backstop = context.eventLoop.scheduleTask(in: Self.grace) { channel.close(promise: nil) }
        // Once closed, the task (and with it the channel and its buffers) is let go at once.
        channel.closeFuture.whenComplete { _ in backstop.cancel() }
    }
}
