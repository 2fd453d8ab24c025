/// One analytics event after validation: the unit that flows through the queue, the spool and the store.
///
/// Timestamps are microseconds since the Unix epoch, UTC; every event has one (the receive time
/// when the sender gave none). Two events are equal when their names have the same bytes
/// (see ``ExactString``), not merely canonically equivalent ones.
public struct Event: Sendable, Hashable {
    public var siteID: String
    public var eventType: String
    public var path: String?
    public var userID: String?
    public var timestamp: Int64

    public init(siteID: String, eventType: String, path: String? = nil, userID: String? = nil, timestamp: Int64) {
        self.siteID = siteID
        self.eventType = eventType
        self.path = path
        self.userID = userID
        self.timestamp = timestamp
    }

    /// The event type counted by `total_views` and `top_paths`.
    public static let pageView = "page_view"

    public var isPageView: Bool { eventType.utf8Equals(Event.pageView) }

    public static func == (a: Event, b: Event) -> Bool {
        a.timestamp == b.timestamp && a.siteID.utf8Equals(b.siteID) && a.eventType.utf8Equals(b.eventType)
            && a.path.utf8Equals(b.path) && a.userID.utf8Equals(b.userID)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ExactString(siteID))
        hasher.combine(ExactString(eventType))
        hasher.combine(path.map { ExactString($0) })
        hasher.combine(userID.map { ExactString($0) })
        hasher.combine(timestamp)
    }

    /// The UTC day the event falls on.
    public var day: UTCDay { UTCDay(containing: timestamp) }
}

/// Limits every transport enforces, so an event accepted over HTTP is also valid on the wire.
public enum EventLimits {
    public static let maxSiteIDBytes = 128
    public static let maxEventTypeBytes = 64
    public static let maxPathBytes = 2048
    public static let maxUserIDBytes = 256
    /// 1970-01-01T00:00:00Z.
    public static let minTimestamp: Int64 = 0
    /// 2100-01-01T00:00:00Z (exclusive): later timestamps are almost surely unit mistakes.
    public static let maxTimestamp: Int64 = 4_102_444_800_000_000
}
