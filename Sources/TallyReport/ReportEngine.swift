import TallyCore
import TallyStore

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

/// The exact figures of a set of events, built one event at a time.
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
}

/// Answers reports from the store's raw rows of the range, read a page at a time (the
/// store is never held for a whole report), so every figure is exactly what the rows say.
/// Cost: one pass over the rows the store's time index bounds (SQLite: the row spans of the
/// range's hours, every site's rows in them; PostgreSQL: the table in id order).
public struct ReportEngine: Sendable {
    public let store: any EventStore
    public static let pageSize = 16_384

    public init(store: any EventStore) { self.store = store }

    /// Every stored row of the site with event time in `[from, to)` (µs), bots included.
    public func scan(_ siteID: String, from: Int64, to: Int64, _ body: (StoredEvent) throws -> Void) async throws {
        var after: Int64 = 0
        while true {
            let page = try await store.rows(siteID: siteID, from: from, to: to, afterID: after, limit: Self.pageSize)
            for row in page { try body(row) }
            guard page.count == Self.pageSize, let last = page.last else { return }
            after = last.id
        }
    }

    public func aggregate(_ r: ReportRange) async throws -> ReportFigures {
        var c = FiguresCounter()
        try await scan(r.siteID, from: r.start * 1_000_000, to: r.end * 1_000_000) { c.add($0.event) }
        return c.figures
    }

    /// One entry per bucket, in order, empty buckets as zeros.
    public func timeseries(_ r: ReportRange, _ buckets: [ReportBucket]) async throws -> [ReportFigures] {
        var counters = Array(repeating: FiguresCounter(), count: buckets.count)
        let starts = buckets.map { $0.start * 1_000_000 }
        try await scan(r.siteID, from: r.start * 1_000_000, to: r.end * 1_000_000) { row in
            // The last bucket starting at or before the event.
            var lo = 0, hi = starts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if starts[mid] <= row.event.timestamp { lo = mid } else { hi = mid - 1 }
            }
            counters[lo].add(row.event)
        }
        return counters.map(\.figures)
    }

    /// The values of `property` ordered by views, then events (both descending), then value
    /// (bytes ascending, no value first); the first `limit`.
    public func breakdown(_ r: ReportRange, _ property: BreakdownProperty, limit: Int) async throws -> [BreakdownRow] {
        var byValue: [ExactString?: FiguresCounter] = [:]
        try await scan(r.siteID, from: r.start * 1_000_000, to: r.end * 1_000_000) { row in
            guard row.event.counts else { return }
            byValue[property.value(of: row.event).map { ExactString($0) }, default: FiguresCounter()].add(row.event)
        }
        let rows = byValue.map { value, c in
            BreakdownRow(value: value?.string, views: c.views, visitors: Int64(c.users.count + c.anonymous.count), events: c.events)
        }
        return Array(rows.sorted(by: Self.ordered).prefix(limit))
    }

    static func ordered(_ a: BreakdownRow, _ b: BreakdownRow) -> Bool {
        if a.views != b.views { return a.views > b.views }
        if a.events != b.events { return a.events > b.events }
        switch (a.value, b.value) {
        case (nil, _): return b.value != nil
        case (_, nil): return false
        case let (x?, y?): return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
    }

    /// The last five minutes before `now` (µs).
    public static let realtimeWindow: Int64 = 300_000_000

    public func realtime(_ siteID: String, now: Int64) async throws -> ReportFigures {
        var c = FiguresCounter()
        try await scan(siteID, from: now - Self.realtimeWindow, to: now + 1) { c.add($0.event) }
        return c.figures
    }
}
