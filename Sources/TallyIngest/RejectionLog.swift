import Logging
import NIOConcurrencyHelpers
import TallyCore

/// Logs refused input on every transport without letting a flood of bad input become a flood
/// of log lines: at most one line per transport and reason per second, each saying how many
/// were left unlogged since the last. Every refusal is still counted in
/// `tally_events_rejected_total`; this only bounds the log.
public final class RejectionLog: Sendable {
    private let logger: Logger
    private let interval: Int64
    /// Per transport and reason: when the last line was written (µs), and refusals since.
    private let state = NIOLockedValueBox<[String: (last: Int64, suppressed: Int)]>([:])

    public init(logger: Logger, interval: Duration = .seconds(1)) {
        self.logger = logger
        let (s, a) = interval.components
        self.interval = s * 1_000_000 + a / 1_000_000_000_000
    }

    public func refused(_ transport: String, reason: String, detail: String, peer: String?) {
        let now = Timestamp.now()
        let key = transport + "|" + reason
        let suppressed: Int? = state.withLockedValue { s in
            var entry = s[key] ?? (last: Int64.min / 2, suppressed: 0)
            defer { s[key] = entry }
            guard now - entry.last >= interval else {
                entry.suppressed += 1
                return nil
            }
            let before = entry.suppressed
            entry = (now, 0)
            return before
        }
        guard let suppressed else { return }
        var metadata: Logger.Metadata = ["transport": "\(transport)", "reason": "\(reason)", "detail": "\(detail)"]
        if let peer { metadata["peer"] = "\(peer)" }
        if suppressed > 0 { metadata["unlogged_since_last"] = "\(suppressed)" }
        logger.warning("refused input", metadata: metadata)
    }
}
