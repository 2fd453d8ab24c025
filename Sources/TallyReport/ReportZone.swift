import Foundation
import TallyCore

/// An IANA time zone, and the UTC instants where its local days, hours and months begin.
///
/// Everything is derived from the zone's offset at an instant (Foundation's tz data), so a
/// local day is whatever the zone's clocks made it: 23 or 25 hours around a DST change, a
/// half-hour or 45-minute offset, a day that begins at 01:00 because midnight was skipped.
/// Boundaries are whole seconds (every offset in the tz database is).
public struct ReportZone: Sendable {
    public let identifier: String
    private let zone: TimeZone

    /// `UTC` and tz database names of the `Area/Location` form: Foundation also takes
    /// abbreviations (`EST`) and `GMT+5`-style names, whose meaning is not what most people
    /// think, and its list of known names leaves out aliases such as `Asia/Kolkata`.
    public init?(identifier: String) {
        guard let zone = TimeZone(identifier: identifier),
              identifier == "UTC" || identifier.contains("/") && zone.identifier == identifier else { return nil }
        self.identifier = identifier
        self.zone = zone
    }

    /// Seconds east of UTC at the instant `t` (seconds since the epoch).
    public func offset(at t: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t))))
    }

    /// Local wall-clock seconds (as if the local time were UTC) at the instant `t`.
    func local(_ t: Int64) -> Int64 { t + offset(at: t) }

    /// The first instant (seconds) whose local time is at or after local midnight of `day`:
    /// local midnight itself, or the end of the gap when the clocks skipped it.
    public func start(of day: UTCDay) -> Int64 {
        let midnight = Int64(day.number) * 86_400
        // Nearly always: midnight at the offset in force around it.
        let guess = midnight - offset(at: midnight - offset(at: midnight))
        if local(guess) == midnight, local(guess - 1) < midnight { return guess }
        // Local time rises with the instant except at a fall-back; no offset is over 26 hours.
        var lo = midnight - 26 * 3600, hi = midnight + 26 * 3600
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if local(mid) >= midnight { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The local date of the instant `t` (seconds).
    public func day(containing t: Int64) -> UTCDay { UTCDay(containing: local(t) * 1_000_000) }

    /// The first instant in `(t, limit)` whose offset differs from the one at `t`, if any.
    /// Spans are at most an hour, and no zone changes its offset twice within one.
    private func nextChange(after t: Int64, before limit: Int64) -> Int64? {
        let o = offset(at: t)
        guard limit - 1 > t, offset(at: limit - 1) != o else { return nil }
        var lo = t + 1, hi = limit - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if offset(at: mid) != o { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The local hours from `start` to `end` (instants, seconds): one bucket per stretch of
    /// one local hour at one offset. A skipped hour has none; a repeated hour has two, each
    /// labelled with its offset.
    public func hours(from start: Int64, to end: Int64) -> [ReportBucket] {
        var out: [ReportBucket] = []
        var t = start
        while t < end {
            let o = offset(at: t)
            let local = t + o
            var next = t + (3600 - ((local % 3600) + 3600) % 3600)
            if let change = nextChange(after: t, before: min(next, end)) { next = change }
            next = min(next, end)
            let hourStart = local - ((local % 3600) + 3600) % 3600
            out.append(ReportBucket(label: Self.hourLabel(hourStart), start: t, end: next, offset: o))
            t = next
        }
        // A label seen twice (the hour the clocks went back through) gets its offset on both.
        var seen: [String: Int] = [:]
        for b in out { seen[b.label, default: 0] += 1 }
        for i in out.indices where seen[out[i].label]! > 1 { out[i].label += Self.offsetLabel(out[i].offset) }
        return out
    }

    static func hourLabel(_ localSeconds: Int64) -> String {
        let day = UTCDay(containing: localSeconds * 1_000_000)
        let hour = Int((localSeconds - Int64(day.number) * 86_400) / 3600)
        return "\(day)T\(zeroPadded(hour, 2)):00"
    }

    static func offsetLabel(_ seconds: Int64) -> String {
        let m = Int(abs(seconds) / 60)
        return (seconds < 0 ? "-" : "+") + zeroPadded(m / 60, 2) + ":" + zeroPadded(m % 60, 2)
    }
}

/// A stretch of time a report counts by itself: `[start, end)` in seconds since the epoch,
/// named by its local start.
public struct ReportBucket: Sendable, Equatable {
    public var label: String
    public var start: Int64
    public var end: Int64
    /// The zone's offset (seconds east of UTC) at `start`.
    public var offset: Int64
}
