import CoreMetrics
import Logging
import NIOCore
import NIOConcurrencyHelpers

/// Counters of accepted and rejected events per transport and reason (`tally_events_*_total`);
/// every refusal is also logged, rate-limited (``RejectionLog``).
public final class IngestMetrics: Sendable {
    let factory: any MetricsFactory
    let log: RejectionLog?
    private let counters = NIOLockedValueBox<[String: Counter]>([:])

    private let durableAckSeconds: Timer
    /// Made up front: `accepted` runs once per request or frame, and must not build a cache
    /// key and take a lock each time.
    private let acceptedCounters: [String: Counter]

    public init(factory: any MetricsFactory, logger: Logger? = nil) {
        self.factory = factory
        self.log = logger.map { RejectionLog(logger: $0) }
        self.durableAckSeconds = Timer(label: "tally_durable_ack_seconds", factory: factory)
        self.acceptedCounters = Dictionary(uniqueKeysWithValues: ["http", "tcp", "udp"].map {
            ($0, Counter(label: "tally_events_accepted_total", dimensions: [("transport", $0)], factory: factory))
        })
    }

    /// Time from enqueue to the spool fsync that made the events durable (HTTP ?ack=durable).
    public func durableAck(_ t: TimeAmount) {
        durableAckSeconds.recordNanoseconds(t.nanoseconds)
    }

    public func accepted(_ transport: String, _ count: Int = 1) {
        (acceptedCounters[transport] ?? counter("tally_events_accepted_total", [("transport", transport)])).increment(by: count)
    }

    /// Events (or, when the count is unknown, frames/requests) refused for `reason`; `detail`
    /// and `peer` go to the (rate-limited) log line.
    public func rejected(_ transport: String, reason: String, _ count: Int = 1, detail: String = "", peer: String? = nil) {
        counter("tally_events_rejected_total", [("transport", transport), ("reason", reason)]).increment(by: count)
        log?.refused(transport, reason: reason, detail: detail.isEmpty ? reason : detail, peer: peer)
    }

    /// Events answered 202 and stored, flagged, but counted nowhere (`reason`: "bot").
    public func filtered(_ transport: String, reason: String, _ count: Int) {
        counter("tally_events_filtered_total", [("transport", transport), ("reason", reason)]).increment(by: count)
    }

    /// A connection closed because a read did not finish in time (`phase`: header, body, frame).
    public func timedOut(_ listener: String, _ phase: ReadPhase) {
        counter("tally_read_timeouts_total", [("listener", listener), ("phase", phase.rawValue)]).increment()
    }

    func counter(_ label: String, _ dims: [(String, String)]) -> Counter {
        let key = label + dims.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLockedValue { c in
            if let existing = c[key] { return existing }
            let made = Counter(label: label, dimensions: dims, factory: factory)
            c[key] = made
            return made
        }
    }
}
