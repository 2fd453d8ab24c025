import HTTPTypes
import NIOCore
import TallyCore
import TallyHTTP

/// Every way an HTTP ingest request is refused. Each case knows its status, the reason label
/// of `tally_events_rejected_total`, and its JSON body; the one ingest path throws these and
/// the handler answers them, so no refusal is spelled out twice.
public enum IngestRefusal: JSONErrorResponse, Equatable {
    /// `?ack=` is neither `queued` nor `durable`.
    case invalidAck
    /// A `Content-Type` that is not JSON, NDJSON or plain text (the media type given).
    case unsupportedMediaType(String)
    /// The body is longer than the route allows (the limit in bytes).
    case bodyTooLarge(limit: Int)
    /// A batch with more events than one request may carry (refused at the first one too many,
    /// without reading the rest).
    case tooManyEvents
    /// Not JSON (RFC 8259): where (byte offset) and what.
    case malformedJSON(String)
    /// JSON, but not valid events: every problem found.
    case invalidPayload([String])
    /// The queue has no room now.
    case queueFull
    /// More of one site's events than a queue shard holds: they can never be taken at once.
    case exceedsQueue
    /// The server is stopping and takes no more events.
    case shuttingDown
    /// `?ack=durable` while the spool cannot write.
    case spoolUnavailable
    /// `?ack=durable` and the spool did not confirm in time (the events may still be stored).
    case durableTimeout
    /// A query parameter with a `%` not followed by two hex digits (the parameter's name).
    case badPercentEncoding(String)
    /// A request target longer than the limit (the limit in bytes).
    case uriTooLong(limit: Int)
    /// Request headers over NIO's decoder limits.
    case headersTooLarge
    /// Not HTTP/1.1 the decoder can read (what it said).
    case malformedRequest(String)
    /// The request's head or body did not arrive within its timeout (which part, the limit).
    case requestTimeout(ReadPhase, TimeAmount)
    /// Reading the request would pass the server's budget for buffered request bytes.
    case overloaded
    /// A registered site's write key is needed and was not given (each site named).
    case unauthorized([String])
    /// The page's origin is not one of the site's, or the site is not registered on a closed
    /// collector (each problem named). No CORS allow header when an origin was refused.
    case forbidden([String], originRefused: Bool)
    /// Over a site's rate or `--ip-rate` (seconds until it would pass, each limit named).
    case rateLimited(retryAfter: Int, [String])

    /// `Retry-After` seconds: 1 on every 503, the wait on a 429.
    public var retryAfter: Int? {
        if case .rateLimited(let seconds, _) = self { return seconds }
        return status == .serviceUnavailable ? 1 : nil
    }

    /// Whether the answer carries `Access-Control-Allow-Origin` (a page whose origin was
    /// refused gets an answer it cannot read).
    public var allowsCORS: Bool {
        if case .forbidden(_, true) = self { return false }
        return true
    }

    public var status: HTTPResponse.Status {
        switch self {
        case .invalidAck, .malformedJSON, .invalidPayload, .badPercentEncoding, .malformedRequest: .badRequest
        case .uriTooLong: .uriTooLong
        case .headersTooLarge: .requestHeaderFieldsTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .bodyTooLarge, .tooManyEvents, .exceedsQueue: .contentTooLarge
        case .queueFull, .shuttingDown, .spoolUnavailable, .durableTimeout, .overloaded: .serviceUnavailable
        case .requestTimeout: .requestTimeout
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .rateLimited: .tooManyRequests
        }
    }

    /// The `reason` label of `tally_events_rejected_total{transport="http"}`.
    public var reason: String {
        switch self {
        case .invalidAck, .invalidPayload: "invalid_payload"
        case .unsupportedMediaType: "unsupported_media_type"
        case .bodyTooLarge, .tooManyEvents, .exceedsQueue: "too_large"
        case .malformedJSON: "malformed_json"
        case .queueFull: "queue_full"
        case .shuttingDown: "shutting_down"
        case .spoolUnavailable: "spool_unavailable"
        case .durableTimeout: "durable_timeout"
        case .badPercentEncoding: "bad_query"
        case .uriTooLong: "uri_too_long"
        case .headersTooLarge: "headers_too_large"
        case .malformedRequest: "malformed_request"
        case .requestTimeout: "timeout"
        case .overloaded: "overloaded"
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .rateLimited: "rate_limited"
        }
    }

    public var message: String {
        switch self {
        case .invalidAck, .invalidPayload: "Invalid payload"
        case .unsupportedMediaType: "Unsupported content type"
        case .bodyTooLarge: "Payload too large"
        case .tooManyEvents, .exceedsQueue: "Batch too large"
        case .malformedJSON: "Malformed JSON"
        case .queueFull: "Queue full, retry later"
        case .shuttingDown: "Server shutting down"
        case .spoolUnavailable: "Spool not writable, durable acknowledgements suspended; retry later"
        case .durableTimeout: "Spool not confirmed durable in time, retry later"
        case .badPercentEncoding: "Invalid query"
        case .uriTooLong: "Request target too long"
        case .headersTooLarge: "Request header fields too large"
        case .malformedRequest: "Malformed HTTP request"
        case .requestTimeout: "Request timeout"
        case .overloaded: "Server busy, retry later"
        case .unauthorized: "Unauthorized"
        case .forbidden: "Forbidden"
        case .rateLimited: "Too many requests"
        }
    }

    public var details: [String]? {
        switch self {
        case .invalidAck: [#"ack must be "queued" or "durable""#]
        case .unsupportedMediaType(let media): ["expected application/json or text/plain, got \(media)"]
        case .bodyTooLarge(let limit): ["body exceeds \(limit) bytes"]
        case .tooManyEvents: ["at most \(HTTPIngest.maxBatchEvents) events per request"]
        case .malformedJSON(let detail): [detail]
        case .exceedsQueue: ["one site's events in a request must fit a queue shard (--queue-capacity); send fewer per request"]
        case .invalidPayload(let problems): problems
        case .badPercentEncoding(let name): ["\(name) has a % that is not followed by two hexadecimal digits"]
        case .uriTooLong(let limit): ["the request target exceeds \(limit) bytes"]
        case .headersTooLarge: ["headers exceed \(HTTPIngest.maxHeaderBytes) bytes or \(HTTPIngest.maxHeaderCount) fields"]
        case .malformedRequest(let what): [what]
        case .requestTimeout(let phase, let limit):
            ["the request \(phase == .header ? "head" : "body") did not arrive within \(limit.nanoseconds / 1_000_000_000) s"]
        case .overloaded: ["the server holds as many partly received requests as it may; retry later"]
        case .unauthorized(let problems), .forbidden(let problems, _), .rateLimited(_, let problems): problems
        case .queueFull, .shuttingDown, .spoolUnavailable, .durableTimeout: nil
        }
    }

    init(_ refusal: EnqueueRefusal) {
        switch refusal {
        case .full: self = .queueFull
        case .closed: self = .shuttingDown
        case .tooLarge: self = .exceedsQueue
        }
    }
}
