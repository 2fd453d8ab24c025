#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import HummingbirdCore

/// At most `maximum` open connections on one listener: past it the listener stops accepting,
/// and new connections wait in the kernel's backlog until one closes. Keeps the collector's
/// descriptors below the process limit, whatever clients do. Used through Hummingbird's
/// `AvailableConnectionsChannelHandler` on the HTTP and the wire TCP listener alike; the
/// count is the gauge `tally_open_connections{listener}`.
public struct ConnectionLimit: AvailableConnectionsDelegate {
    let maximum: Int
    let gauge: Gauge
    var open = 0

    public init(maximum: Int, listener: String, factory: any MetricsFactory) {
        self.maximum = maximum
        self.gauge = Gauge(label: "tally_open_connections", dimensions: [("listener", listener)], factory: factory)
    }

    public mutating func connectionOpened() {
        open += 1
        gauge.record(open)
    }

    public mutating func connectionClosed() {
        open -= 1
        gauge.record(open)
    }

    public func isAcceptingNewConnections() -> Bool { open < maximum }

    /// The listen backlog of both listeners (the kernel caps it at `net.core.somaxconn`): while
    /// a listener is at its maximum, new connections wait here; a full backlog drops SYNs, and
    /// the client then retries only after a second.
    public static let backlog = 4096

    /// Raises the soft open-file limit to the hard one and returns both (a process starts with a
    /// soft limit of often 1024, far below what a busy collector needs).
    public static func raiseDescriptorLimit() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (1024, 1024) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let clamp = { (v: rlim_t) -> Int in v > rlim_t(Int32.max) ? Int(Int32.max) : Int(v) }
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// The default per listener: half the descriptors left after a reserve for the store, the
    /// spool and the runtime (two listeners share them).
    public static func automatic(descriptorLimit: Int) -> Int {
        max(8, (descriptorLimit - 128) / 2)
    }
}
