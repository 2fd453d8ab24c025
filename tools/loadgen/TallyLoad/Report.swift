import Foundation

extension LoadResult {
    /// Latency percentiles in milliseconds.
    public var percentiles: [(String, Double)] {
        [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)].map { ($0.0, Double(latency.valueAtPercentile($0.1)) / 1000) }
            + [("max", Double(latency.max) / 1000)]
    }

    /// A human-readable table.
    public func table() -> String {
        var lines: [String] = []
        lines.append("mode            \(mode.rawValue)")
        lines.append("elapsed         \(fmt(elapsed)) s")
        lines.append("sent            \(sentEvents) events (\(fmt(sentPerSecond, 0)) events/s)")
        lines.append("accepted        \(acceptedEvents) events (\(fmt(acceptedPerSecond, 0)) events/s)")
        lines.append("latency ms      " + percentiles.map { "\($0.0) \(fmt($0.1, 3))" }.joined(separator: "  "))
        if errors.isEmpty {
            lines.append("errors          none")
        } else {
            for (k, v) in errors.sorted(by: { $0.key < $1.key }) { lines.append("error           \(v) × \(k)") }
        }
        if let v = verification {
            lines.append("verify          \(v.exact ? "exact" : "MISMATCH") after \(fmt(v.queryableAfter, 3)) s; missing views \(v.missingViews)")
            for p in v.problems.prefix(10) { lines.append("  \(p)") }
        }
        return lines.joined(separator: "\n")
    }

    public func json() -> String {
        var o: [String: Any] = [
            "mode": mode.rawValue, "elapsed_s": elapsed, "sent_events": sentEvents, "accepted_events": acceptedEvents,
            "sent_per_s": sentPerSecond, "accepted_per_s": acceptedPerSecond, "errors": errors,
            "latency_ms": Dictionary(uniqueKeysWithValues: percentiles.map { ($0.0, $0.1) }),
        ]
        if let v = verification {
            o["verify"] = ["exact": v.exact, "problems": v.problems, "missing_views": v.missingViews, "queryable_after_s": v.queryableAfter] as [String: Any]
        }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

func fmt(_ v: Double, _ digits: Int = 2) -> String {
    String(format: "%.\(digits)f", v)
}
