import Logging
import NIOCore
import TallyCore
import TallyPipeline
import TallyWire

/// One TCP connection of the wire protocol: decodes frames as bytes arrive (frames may span
/// reads), enqueues their events, answers ACKs once events are durable, and stops reading
/// from the socket while the queue is full so backpressure reaches the sender.
final class WireTCPHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let queue: ShardedQueue
    private let metrics: IngestMetrics
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var buffer = ByteBuffer()
    /// A decoded frame waiting for queue space.
    private var stalled: EventsFrame?
    private var readPending = false
    private var closing = false

    /// Frames that asked for an ACK, in arrival order; ACKs go out in that order.
    private var awaitingAck: [(sequence: UInt64, durable: Bool, id: UInt64)] = []
    private var nextAckID: UInt64 = 0

    init(queue: ShardedQueue, metrics: IngestMetrics, logger: Logger) {
        self.queue = queue
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !closing else { return }
        if buffer.readableBytes == 0 {
            buffer = incoming
        } else {
            buffer.writeBuffer(&incoming)
        }
        process(context: context)
    }

    /// While a frame is stalled, reads are held back: the kernel buffer fills and TCP flow
    /// control slows the sender, instead of this process growing memory.
    func read(context: ChannelHandlerContext) {
        if stalled != nil || closing {
            readPending = true
        } else {
            context.read()
        }
    }

    private func process(context: ChannelHandlerContext) {
        if let frame = stalled {
            guard enqueue(frame, context: context) else {
                scheduleRetry(context: context)
                return
            }
            stalled = nil
        }
        while !closing {
            let step: FrameDecoder.Step
            do {
                step = try FrameDecoder.decode(&buffer)
            } catch {
                reject(error, context: context)
                return
            }
            switch step {
            case .needMoreData:
                if buffer.readerIndex > 65_536 { buffer.discardReadBytes() }
                return
            case .frame(.events(let frame)):
                guard enqueue(frame, context: context) else {
                    stalled = frame
                    scheduleRetry(context: context)
                    return
                }
            case .frame(.ack), .frame(.error):
                reject(FrameRejection(.unknownFrameType, "senders may only send EVENTS frames"), context: context)
                return
            }
        }
    }

    /// True when the frame was taken (or refused for good); false when the queue is full.
    private func enqueue(_ frame: EventsFrame, context: ChannelHandlerContext) -> Bool {
        let events = frame.resolved(receivedAt: Timestamp.now())
        var callback: DurabilityCallback?
        if frame.ackRequested {
            let id = nextAckID
            nextAckID += 1
            awaitingAck.append((frame.sequence, false, id))
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            callback = { ok in loop.execute { bound.value.durable(id: id, ok: ok) } }
        }
        do {
            try queue.enqueue(events, onDurable: callback)
            metrics.accepted("tcp", events.count)
            return true
        } catch .full {
            if frame.ackRequested { awaitingAck.removeLast(); nextAckID -= 1 }
            return false
        } catch {
            if frame.ackRequested { awaitingAck.removeLast() }
            metrics.rejected("tcp", reason: "shutting_down", events.count)
            sendError(.overloaded, "server shutting down", context: context)
            return true
        }
    }

    private func scheduleRetry(context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(2)) {
            let handler = bound.value
            guard let ctx = handler.context, handler.stalled != nil else { return }
            handler.process(context: ctx)
            if handler.stalled == nil, handler.readPending {
                handler.readPending = false
                ctx.read()
            }
        }
    }

    private func durable(id: UInt64, ok: Bool) {
        guard let context, ok else { return }
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

    private func reject(_ error: FrameRejection, context: ChannelHandlerContext) {
        metrics.rejected("tcp", reason: error.reason.label)
        logger.warning("rejecting TCP frame; closing connection", metadata: [
            "reason": "\(error.reason.label)", "detail": "\(error.detail)",
            "peer": "\(context.remoteAddress?.description ?? "?")"])
        sendError(error.reason, error.detail, context: context)
    }

    private func sendError(_ code: WireError, _ message: String, context: ChannelHandlerContext) {
        closing = true
        var out = context.channel.allocator.buffer(capacity: 64)
        FrameEncoder.writeError(code, message: message, into: &out)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// The sender closed (or the connection broke) with frames still buffered here, typically
    /// because the queue was full. Those bytes were received, so they are still enqueued:
    /// dropping them would lose events a plain-TCP sender rightly considers delivered.
    func channelInactive(context: ChannelHandlerContext) {
        if !closing, stalled != nil || buffer.readableBytes > 0 {
            var pending: [EventsFrame] = stalled.map { [$0] } ?? []
            stalled = nil
            while true {
                guard let step = try? FrameDecoder.decode(&buffer), case .frame(.events(let f)) = step else { break }
                pending.append(f)
            }
            let queue = self.queue, metrics = self.metrics
            let frames = pending
            Task { await LateFrames.enqueue(frames, queue: queue, metrics: metrics) }
        }
        closing = true
        context.fireChannelInactive()
    }
}

/// Frames left behind by a closed connection, enqueued as space frees up.
enum LateFrames {
    static func enqueue(_ frames: [EventsFrame], queue: ShardedQueue, metrics: IngestMetrics) async {
        for frame in frames {
            let events = frame.resolved(receivedAt: Timestamp.now())
            while true {
                do {
                    try queue.enqueue(events)
                    metrics.accepted("tcp", events.count)
                    break
                } catch .full {
                    try? await Task.sleep(for: .milliseconds(2))
                } catch {
                    metrics.rejected("tcp", reason: "shutting_down", events.count)
                    break
                }
            }
        }
    }
}
