import CoreMetrics
import NIOCore
import NIOConcurrencyHelpers

/// Counters of accepted and rejected events per transport and reason (`tally_events_*_total`).
public final class IngestMetrics: Sendable {
    let factory: any MetricsFactory
    private let counters = NIOLockedValueBox<[String: Counter]>([:])

    private let durableAckSeconds: Timer
    /// Made up front: `accepted` runs once per request or frame, and must not build a cache
    /// key and take a lock each time.
    private let acceptedCounters: [String: Counter]

    public init(factory: any MetricsFactory) {
        self.factory = factory
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

    /// Events (or, when the count is unknown, frames/requests) refused for `reason`.
    public func rejected(_ transport: String, reason: String, _ count: Int = 1) {
        counter("tally_events_rejected_total", [("transport", transport), ("reason", reason)]).increment(by: count)
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
