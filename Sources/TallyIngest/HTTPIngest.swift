import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import TallyCore
import TallyPipeline

/// `POST /event` and `POST /events`: the seeds' JSON shape into the queue.
public struct HTTPIngest: Sendable {
    public static let maxEventBody = 64 * 1024
    public static let maxBatchBody = 8 * 1024 * 1024

    let queue: ShardedQueue
    let metrics: IngestMetrics
    /// How long `?ack=durable` waits for the spool before answering 503.
    let durableTimeout: Duration
    /// Whether the spool can make events durable now; false refuses `?ack=durable` at once.
    let spoolWritable: @Sendable () -> Bool

    public init(queue: ShardedQueue, metrics: IngestMetrics, durableTimeout: Duration = .seconds(10),
                spoolWritable: @escaping @Sendable () -> Bool = { true }) {
        self.queue = queue
        self.metrics = metrics
        self.durableTimeout = durableTimeout
        self.spoolWritable = spoolWritable
    }

    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.post("/event") { request, context in
            await self.handle(request, single: true)
        }
        router.post("/events") { request, context in
            await self.handle(request, single: false)
        }
    }

    enum AckLevel: String {
        case queued, durable
    }

    func handle(_ request: Request, single: Bool) async -> Response {
        let receivedAt = Timestamp.now()
        do {
            let ack = try Self.ackLevel(request.uri.queryParameters.get("ack"))
            try Self.checkContentType(request.headers[.contentType])
            let limit = Self.bodyLimit(single: single)
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: limit)
            } catch is NIOTooManyBytesError {
                throw Self.tooLarge(limit)
            }
            let events = try Self.parse(body, single: single, receivedAt: receivedAt)
            switch ack {
            case .queued: return Self.json(202, try enqueueQueued(events, single: single))
            case .durable: return Self.json(202, try await enqueueDurable(events, single: single))
            }
        } catch let r as EventBodyParser.Rejection {
            return Self.response(rejected(r))
        } catch {
            metrics.rejected("http", reason: "internal")
            return Self.json(500, JSONText.error("Internal error", details: ["\(error)"]))
        }
    }

    /// Counts a refusal and says how to answer it.
    func rejected(_ r: EventBodyParser.Rejection) -> EventBodyParser.Rejection {
        metrics.rejected("http", reason: r.reason)
        return r
    }

    static func response(_ r: EventBodyParser.Rejection) -> Response { json(r.status, r.body) }

    /// The headers every ingest answer has: JSON, and `Retry-After` on a 503.
    static func headers(status: Int) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json"]
        if status == 503 { headers[.retryAfter] = "1" }
        return headers
    }

    static func bodyLimit(single: Bool) -> Int { single ? maxEventBody : maxBatchBody }

    static func tooLarge(_ limit: Int) -> EventBodyParser.Rejection {
        EventBodyParser.Rejection(status: 413, body: JSONText.error("Payload too large", details: ["body exceeds \(limit) bytes"]),
                                  reason: "too_large")
    }

    static func parse(_ body: ByteBuffer, single: Bool, receivedAt: Int64) throws(EventBodyParser.Rejection) -> [Event] {
        do {
            return try body.withUnsafeReadableBytes { bytes in
                single ? [try EventBodyParser.single(bytes, receivedAt: receivedAt)]
                       : try EventBodyParser.batch(bytes, receivedAt: receivedAt)
            }
        } catch let r as EventBodyParser.Rejection {
            throw r
        } catch {
            throw EventBodyParser.Rejection(status: 500, body: JSONText.error("Internal error", details: ["\(error)"]), reason: "internal")
        }
    }

    /// Enqueues with the default acknowledgement (the events are in the queue); the 202 body.
    func enqueueQueued(_ events: [Event], single: Bool) throws(EventBodyParser.Rejection) -> String {
        do {
            try queue.enqueue(events)
        } catch {
            throw Self.refusal(error)
        }
        return accepted(events.count, single: single, ack: .queued)
    }

    /// Enqueues and waits until the events are durable in the spool; the 202 body.
    func enqueueDurable(_ events: [Event], single: Bool) async throws(EventBodyParser.Rejection) -> String {
        guard spoolWritable() else {
            throw EventBodyParser.Rejection(status: 503, body: JSONText.error("Spool not writable, durable acknowledgements suspended; retry later"),
                                            reason: "spool_unavailable")
        }
        let started = ContinuousClock.now
        let ok: Bool
        do {
            ok = try await DurableWait.enqueue(events, on: queue, timeout: durableTimeout)
        } catch let refusal as EnqueueRefusal {
            throw Self.refusal(refusal)
        } catch {
            throw EventBodyParser.Rejection(status: 500, body: JSONText.error("Internal error", details: ["\(error)"]), reason: "internal")
        }
        metrics.durableAck(ContinuousClock.now - started)
        guard ok else {
            // Queued but not confirmed durable in time: the event may still be stored; the
            // client retries (at-least-once), as it would after any lost response.
            throw EventBodyParser.Rejection(status: 503, body: JSONText.error("Spool not confirmed durable in time, retry later"),
                                            reason: "durable_timeout")
        }
        return accepted(events.count, single: single, ack: .durable)
    }

    private func accepted(_ count: Int, single: Bool, ack: AckLevel) -> String {
        metrics.accepted("http", count)
        if single && ack == .queued { return Self.acceptedOneQueued }
        let message = single ? "Event accepted for processing" : "Events accepted for processing"
        return "{\"message\":\(JSONText.quote(message)),\"accepted\":\(count),\"ack\":\"\(ack.rawValue)\"}"
    }

    /// The answer to nearly every request, made once.
    private static let acceptedOneQueued = #"{"message":"Event accepted for processing","accepted":1,"ack":"queued"}"#

    private static func refusal(_ refusal: EnqueueRefusal) -> EventBodyParser.Rejection {
        EventBodyParser.Rejection(
            status: 503,
            body: JSONText.error(refusal == .full ? "Queue full, retry later" : "Server shutting down"),
            reason: refusal == .full ? "queue_full" : "shutting_down")
    }

    static func ackLevel(_ value: String?) throws(EventBodyParser.Rejection) -> AckLevel {
        guard let v = value else { return .queued }
        guard let level = AckLevel(rawValue: v) else {
            throw EventBodyParser.Rejection(status: 400, body: JSONText.error("Invalid payload", details: ["ack must be \"queued\" or \"durable\""]),
                                            reason: "invalid_payload")
        }
        return level
    }

    /// JSON, plain text (navigator.sendBeacon) and NDJSON are all parsed as JSON.
    static func checkContentType(_ ct: String?) throws(EventBodyParser.Rejection) {
        guard let ct else { return }
        if ct == "application/json" { return }  // the common case, without allocating
        let media = ct.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let accepted = ["application/json", "text/plain", "application/x-ndjson", "application/ndjson", ""]
        guard accepted.contains(media) else {
            throw EventBodyParser.Rejection(status: 415, body: JSONText.error("Unsupported content type", details: ["expected application/json or text/plain, got \(media)"]),
                                            reason: "unsupported_media_type")
        }
    }

    static func json(_ status: Int, _ body: String) -> Response {
        Response(status: .init(code: status), headers: headers(status: status), body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Enqueues with a durability callback and waits for it, up to a timeout.
enum DurableWait {
    static func enqueue(_ events: [Event], on queue: ShardedQueue, timeout: Duration) async throws -> Bool {
        let once = OneShot()
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Bool, any Error>) in
            once.set(cont)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                once.resume(.success(false))
            }
            do {
                try queue.enqueue(events) { ok in
                    once.resume(.success(ok))
                    timer.cancel()
                }
            } catch {
                once.resume(.failure(error))
                timer.cancel()
            }
        }
    }

    final class OneShot: Sendable {
        private let box = NIOLockedValueBox<CheckedContinuation<Bool, any Error>?>(nil)
        func set(_ c: CheckedContinuation<Bool, any Error>) { box.withLockedValue { $0 = c } }
        func resume(_ r: Result<Bool, any Error>) {
            let c = box.withLockedValue { v -> CheckedContinuation<Bool, any Error>? in
                defer { v = nil }
                return v
            }
            c?.resume(with: r)
        }
    }
}
