import TallyCore
import TallyStore

/// Reports over a ``ReportRange``: its buckets as UTC spans, answered by the store.
public struct ReportEngine: Sendable {
    public let store: any EventStore

    public init(store: any EventStore) { self.store = store }

    static func span(_ b: ReportBucket) -> TimeSpan { TimeSpan(b.start * 1_000_000, b.end * 1_000_000) }

    public func aggregate(_ r: ReportRange) async throws -> ReportFigures {
        try await store.figures(siteID: r.siteID, spans: [TimeSpan(r.start * 1_000_000, r.end * 1_000_000)])[0]
    }

    /// One entry per bucket, in order, empty buckets as zeros.
    public func timeseries(_ r: ReportRange, _ buckets: [ReportBucket]) async throws -> [ReportFigures] {
        // A day the clocks skipped (Samoa, 2011-12-30) is an empty bucket.
        let spans = buckets.filter { $0.start < $0.end }.map(Self.span)
        var figures = try await store.figures(siteID: r.siteID, spans: spans).makeIterator()
        return buckets.map { $0.start < $0.end ? figures.next()! : ReportFigures() }
    }

    public func breakdown(_ r: ReportRange, _ property: BreakdownProperty, limit: Int) async throws -> [BreakdownRow] {
        try await store.breakdown(siteID: r.siteID, span: TimeSpan(r.start * 1_000_000, r.end * 1_000_000), property: property, limit: limit)
    }

    /// The current minute (UTC) and the four before it: whole minutes, which stores keep
    /// rolled up for the last hour.
    public static func realtimeSpan(now: Int64) -> TimeSpan {
        let minute = now / 60_000_000
        return TimeSpan((minute - 4) * 60_000_000, (minute + 1) * 60_000_000)
    }

    public func realtime(_ siteID: String, now: Int64) async throws -> ReportFigures {
        try await store.figures(siteID: siteID, spans: [Self.realtimeSpan(now: now)])[0]
    }
}
