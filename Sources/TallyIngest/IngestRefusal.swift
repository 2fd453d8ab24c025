import HTTPTypes
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
    /// A batch with more events than one request may carry (how many it had).
    case tooManyEvents(Int)
    /// Not JSON: what the parser said, with where.
    case malformedJSON(String)
    /// JSON, but not valid events: every problem found.
    case invalidPayload([String])
    /// The queue has no room now.
    case queueFull
    /// The server is stopping and takes no more events.
    case shuttingDown
    /// `?ack=durable` while the spool cannot write.
    case spoolUnavailable
    /// `?ack=durable` and the spool did not confirm in time (the events may still be stored).
    case durableTimeout

    public var status: HTTPResponse.Status {
        switch self {
        case .invalidAck, .malformedJSON, .invalidPayload: .badRequest
        case .unsupportedMediaType: .unsupportedMediaType
        case .bodyTooLarge, .tooManyEvents: .contentTooLarge
        case .queueFull, .shuttingDown, .spoolUnavailable, .durableTimeout: .serviceUnavailable
        }
    }

    /// The `reason` label of `tally_events_rejected_total{transport="http"}`.
    public var reason: String {
        switch self {
        case .invalidAck, .invalidPayload: "invalid_payload"
        case .unsupportedMediaType: "unsupported_media_type"
        case .bodyTooLarge, .tooManyEvents: "too_large"
        case .malformedJSON: "malformed_json"
        case .queueFull: "queue_full"
        case .shuttingDown: "shutting_down"
        case .spoolUnavailable: "spool_unavailable"
        case .durableTimeout: "durable_timeout"
        }
    }

    public var message: String {
        switch self {
        case .invalidAck, .invalidPayload: "Invalid payload"
        case .unsupportedMediaType: "Unsupported content type"
        case .bodyTooLarge: "Payload too large"
        case .tooManyEvents: "Batch too large"
        case .malformedJSON: "Malformed JSON"
        case .queueFull: "Queue full, retry later"
        case .shuttingDown: "Server shutting down"
        case .spoolUnavailable: "Spool not writable, durable acknowledgements suspended; retry later"
        case .durableTimeout: "Spool not confirmed durable in time, retry later"
        }
    }

    public var details: [String]? {
        switch self {
        case .invalidAck: [#"ack must be "queued" or "durable""#]
        case .unsupportedMediaType(let media): ["expected application/json or text/plain, got \(media)"]
        case .bodyTooLarge(let limit): ["body exceeds \(limit) bytes"]
        case .tooManyEvents(let n): ["at most \(HTTPIngest.maxBatchEvents) events per request, got \(n)"]
        case .malformedJSON(let detail): [detail]
        case .invalidPayload(let problems): problems
        case .queueFull, .shuttingDown, .spoolUnavailable, .durableTimeout: nil
        }
    }

    init(_ refusal: EnqueueRefusal) {
        self = refusal == .full ? .queueFull : .shuttingDown
    }
}
