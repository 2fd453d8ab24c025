import HTTPTypes
import TallyCore
import TallyHTTP
import TallyStore

/// The site, local days and time zone every `/api/v1/stats/…` and `/api/v1/export` request
/// names, checked once: every problem is collected, so one 400 names them all.
public struct ReportRange: Sendable {
    public var siteID: String
    public var from: UTCDay
    public var to: UTCDay
    public var zone: ReportZone
    /// `[start, end)`: from the first instant of `from` to the first of the day after `to`
    /// (seconds since the epoch).
    public var start: Int64
    public var end: Int64

    public init(siteID: String, from: UTCDay, to: UTCDay, zone: ReportZone) {
        self.siteID = siteID
        self.from = from
        self.to = to
        self.zone = zone
        start = zone.start(of: from)
        end = zone.start(of: UTCDay(number: to.number + 1))
    }

    /// The days of the range as buckets.
    public var days: [ReportBucket] {
        var out: [ReportBucket] = []
        out.reserveCapacity(Int(to.number - from.number) + 1)
        var begin = start
        for d in from.number...to.number {
            let next = d == to.number ? end : zone.start(of: UTCDay(number: d + 1))
            out.append(ReportBucket(label: UTCDay(number: d).description, start: begin, end: next, offset: zone.offset(at: begin)))
            begin = next
        }
        return out
    }

    /// The calendar months the range touches, each cut to the range.
    public var months: [ReportBucket] {
        var out: [ReportBucket] = []
        var (y, m, _) = from.civil
        var begin = start
        while begin < end {
            let (ny, nm) = m == 12 ? (y + 1, 1) : (y, m + 1)
            let next = min(end, zone.start(of: UTCDay(year: ny, month: nm, day: 1)))
            out.append(ReportBucket(label: "\(zeroPadded(y, 4))-\(zeroPadded(m, 2))", start: begin, end: next, offset: zone.offset(at: begin)))
            (y, m, begin) = (ny, nm, next)
        }
        return out
    }

    public func buckets(_ interval: ReportInterval) -> [ReportBucket] {
        switch interval {
        case .hour: zone.hours(from: start, to: end)
        case .day: days
        case .month: months
        }
    }
}

public enum ReportInterval: String, Sendable, CaseIterable {
    case hour, day, month
}

/// A request's query parameters, read once; each reader takes its own and reports problems.
/// Anything left unread at the end is an unknown parameter, and a name given twice is an
/// error (which of the two was meant?).
public struct ReportParameters {
    private var values: [String: String] = [:]
    public private(set) var problems: [String] = []

    public init(query: String?, pairs: some Sequence<(key: Substring, value: Substring)>) {
        if let query, let bad = QueryEncoding.firstBadParameter(query[...]) {
            problems.append("\(bad) has a % that is not followed by two hexadecimal digits")
        }
        var repeated: Set<String> = []
        for (name, value) in pairs {
            let n = String(name)
            if values[n] != nil { repeated.insert(n) }
            values[n] = String(value)
        }
        for n in repeated.sorted() { problems.append("\(n) is given more than once") }
    }

    public mutating func take(_ name: String) -> String? { values.removeValue(forKey: name) }

    public mutating func problem(_ p: String) { problems.append(p) }

    /// The problems, with every parameter nobody took as unknown.
    public mutating func finish(known: [String]) -> [String] {
        for n in values.keys.sorted() {
            problems.append("unknown query parameter \(JSONText.quote(n)); known: \(known.joined(separator: ", "))")
        }
        values = [:]
        return problems
    }

    public static let rangeNames = ["site_id", "from", "to", "tz", "key"]
    /// Ten years, the longest range a report covers.
    public static let maxYears = 10
    /// The longest range that `interval=hour` may cover.
    public static let maxHourDays = 92

    /// `site_id`, `from`, `to` and `tz`; `today` is the current instant's date in the zone.
    public mutating func range(now: Int64) -> ReportRange? {
        let site = siteID()
        var zone = ReportZone(identifier: "UTC")
        if let tz = take("tz") {
            zone = tz.utf8.count <= 64 ? ReportZone(identifier: tz) : nil
            if zone == nil { problem("tz must be an IANA time zone name such as Europe/Berlin or UTC, not \(JSONText.quote(String(tz.prefix(64))))") }
        }
        let from = day("from"), to = day("to")
        guard case let (f?, t?) = (from, to) else { return nil }
        let today = zone?.day(containing: now / 1_000_000) ?? UTCDay(containing: now)
        let last = t ?? today
        let first = f ?? UTCDay(number: last.number - 29)
        guard first <= last else {
            problem("to must not be before from")
            return nil
        }
        let (y, m, d) = first.civil
        let limit = UTCDay(year: y + Self.maxYears, month: m, day: min(d, UTCDay.daysInMonth(year: y + Self.maxYears, month: m)))
        guard last <= limit else {
            problem("from and to must be at most \(Self.maxYears) years apart")
            return nil
        }
        guard let site, problems.isEmpty, let zone else { return nil }
        return ReportRange(siteID: site, from: first, to: last, zone: zone)
    }

    /// `site_id`: required, 1 to 128 bytes (nil, with the problem recorded, otherwise).
    public mutating func siteID() -> String? {
        guard let site = take("site_id"), !site.isEmpty else {
            problem("site_id is required")
            return nil
        }
        guard site.utf8.count <= EventLimits.maxSiteIDBytes else {
            problem("site_id must be at most \(EventLimits.maxSiteIDBytes) bytes")
            return nil
        }
        return site
    }

    /// A day parameter: nil when absent, `.some(nil)` when bad (the problem is recorded).
    private mutating func day(_ name: String) -> UTCDay?? {
        guard let raw = take(name) else { return .some(nil) }
        guard let d = UTCDay(parsing: raw), (1970...2099).contains(d.civil.year) else {
            problem("\(name) must be a date as YYYY-MM-DD between 1970-01-01 and 2099-12-31")
            return nil
        }
        return .some(d)
    }

    /// An enumerated parameter, `fallback` when absent.
    public mutating func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ fallback: T?) -> T? where T.RawValue == String {
        guard let raw = take(name) else {
            if fallback == nil { problem("\(name) is required: one of \(T.allCases.map(\.rawValue).joined(separator: ", "))") }
            return fallback
        }
        guard let v = T(rawValue: raw) else {
            problem("\(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return v
    }

    public mutating func integer(_ name: String, in bounds: ClosedRange<Int>, fallback: Int) -> Int {
        guard let raw = take(name) else { return fallback }
        guard let v = Int(raw), bounds.contains(v) else {
            problem("\(name) must be an integer from \(bounds.lowerBound) to \(bounds.upperBound)")
            return fallback
        }
        return v
    }
}

/// A report request the server cannot answer as asked: 400 with every problem.
public struct ReportQueryError: JSONErrorResponse, Equatable {
    public var details: [String]?
    public var message: String { "Invalid query parameters" }
    public var status: HTTPResponse.Status { .badRequest }
    public init(_ problems: [String]) { details = problems }
}
