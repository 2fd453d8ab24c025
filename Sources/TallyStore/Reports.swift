import TallyCore

/// What a report counts over a stretch of time. Bots are stored, and counted nowhere.
public struct ReportFigures: Sendable, Equatable {
    /// Page views.
    public var views: Int64 = 0
    /// Every event that counts, page views included.
    public var events: Int64 = 0
    /// Distinct non-empty user ids.
    public var users: Int64 = 0
    /// Distinct visitors: a user id where the event has a non-empty one, else its anonymous
    /// (cookieless) visitor id; an event with neither has no visitor.
    public var visitors: Int64 = 0

    public init(views: Int64 = 0, events: Int64 = 0, users: Int64 = 0, visitors: Int64 = 0) {
        self.views = views
        self.events = events
        self.users = users
        self.visitors = visitors
    }
}

/// One row of a breakdown: `value` nil for events without the property.
public struct BreakdownRow: Sendable, Equatable {
    public var value: String?
    public var views: Int64
    public var visitors: Int64
    public var events: Int64

    public init(value: String?, views: Int64, visitors: Int64, events: Int64) {
        self.value = value
        self.views = views
        self.visitors = visitors
        self.events = events
    }

    /// Views, then events (both descending), then the value's bytes ascending, no value first.
    public static func ordered(_ a: BreakdownRow, _ b: BreakdownRow) -> Bool {
        if a.views != b.views { return a.views > b.views }
        if a.events != b.events { return a.events > b.events }
        switch (a.value, b.value) {
        case (nil, _): return b.value != nil
        case (_, nil): return false
        case let (x?, y?): return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
    }
}

/// What a breakdown groups by: a column of the event, as stored.
public enum BreakdownProperty: String, Sendable, CaseIterable {
    case path, eventType = "event_type", referrer, device, browser, os
    case utmSource = "utm_source", utmMedium = "utm_medium", utmCampaign = "utm_campaign"

    public func value(of e: Event) -> String? {
        switch self {
        case .path: e.path
        case .eventType: e.eventType
        case .referrer: e.referrer
        case .device: e.visit.device?.name
        case .browser: e.visit.browser
        case .os: e.visit.os
        case .utmSource: e.utmSource
        case .utmMedium: e.utmMedium
        case .utmCampaign: e.utmCampaign
        }
    }
}

/// A report that needs raw rows the raw-row retention has deleted: answering without them
/// would count less than what happened.
public struct ReportNeedsDeletedRows: Error, Sendable, CustomStringConvertible {
    public var description: String

    /// `keptFrom`: the first day whose raw rows are kept; `why`: what needs them.
    public init(keptFrom: UTCDay, why: String) {
        description = "\(why) needs raw rows from before \(keptFrom), which the raw-row retention has deleted"
    }

    /// Throws when `span` starts before the first day of the site's raw rows.
    static func check(_ span: TimeSpan, site: String, retention: RetentionPolicy, why: String) throws {
        guard let first = retention.firstKeptDay(site: site, today: .today), span.start < UTCDay(number: first).start else { return }
        throw ReportNeedsDeletedRows(keptFrom: UTCDay(number: first), why: why)
    }
}

/// `[start, end)` in µs since the epoch.
public struct TimeSpan: Sendable, Equatable {
    public var start: Int64
    public var end: Int64
    public init(_ start: Int64, _ end: Int64) {
        self.start = start
        self.end = end
    }

    /// The index of the span of `spans` (ascending, not overlapping, `starts` their starts)
    /// that holds `t`, if one does.
    static func index(of t: Int64, in spans: [TimeSpan], starts: [Int64]) -> Int? {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= t { lo = mid } else { hi = mid - 1 }
        }
        return hi >= 0 && starts[lo] <= t && t < spans[lo].end ? lo : nil
    }
}

/// The exact figures of a set of events, built one event at a time: the definition every
/// store's answers must equal.
struct FiguresCounter {
    var views: Int64 = 0, events: Int64 = 0
    var users: Set<ExactString> = []
    var anonymous: Set<UInt64> = []

    mutating func add(_ e: Event) {
        guard e.counts else { return }
        events += 1
        if e.isPageView { views += 1 }
        if let u = e.userID, !u.isEmpty {
            users.insert(ExactString(u))
        } else if e.visit.visitor != 0 {
            anonymous.insert(e.visit.visitor)
        }
    }

    var figures: ReportFigures {
        ReportFigures(views: views, events: events, users: Int64(users.count), visitors: Int64(users.count + anonymous.count))
    }
}

extension EventStore {
    static var rowPage: Int { 16_384 }

    /// Every row of the site with event time in `[from, to)` (µs), a page at a time.
    public func scanRows(_ siteID: String, from: Int64, to: Int64, _ body: (StoredEvent) throws -> Void) async throws {
        var cursor: RowCursor? = .start
        while let after = cursor {
            let page = try await rows(siteID: siteID, from: from, to: to, after: after, limit: Self.rowPage)
            for row in page.rows { try body(row) }
            cursor = page.next
        }
    }

    /// ``EventStore/figures(siteID:spans:)`` from the raw rows: one pass over the rows of the
    /// whole range, each counted in its span.
    public func rawFigures(siteID: String, spans: [TimeSpan]) async throws -> [ReportFigures] {
        guard let first = spans.first, let last = spans.last else { return [] }
        var counters = Array(repeating: FiguresCounter(), count: spans.count)
        let starts = spans.map(\.start)
        try await scanRows(siteID, from: first.start, to: last.end) { row in
            if let k = TimeSpan.index(of: row.event.timestamp, in: spans, starts: starts) { counters[k].add(row.event) }
        }
        return counters.map(\.figures)
    }

    /// ``EventStore/breakdown(siteID:span:property:limit:)`` from the raw rows.
    public func rawBreakdown(siteID: String, span: TimeSpan, property: BreakdownProperty, limit: Int) async throws -> [BreakdownRow] {
        var byValue: [ExactString?: FiguresCounter] = [:]
        try await scanRows(siteID, from: span.start, to: span.end) { row in
            guard row.event.counts else { return }
            byValue[property.value(of: row.event).map { ExactString($0) }, default: FiguresCounter()].add(row.event)
        }
        let rows = byValue.map { value, c in
            BreakdownRow(value: value?.string, views: c.views, visitors: Int64(c.users.count + c.anonymous.count), events: c.events)
        }
        return Array(rows.sorted(by: BreakdownRow.ordered).prefix(limit))
    }
}
