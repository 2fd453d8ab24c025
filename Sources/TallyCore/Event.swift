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
    /// What most events lack (attribution, and what the server derived), behind one reference:
    /// an event without any stays as small as the seed's (queues and spool batches hold
    /// millions of them), and one with some pays one allocation.
    private var extra: Extra?

    /// The seed's fields only (the common case, without building the rest).
    public init(siteID: String, eventType: String, path: String? = nil, userID: String? = nil, timestamp: Int64) {
        self.siteID = siteID
        self.eventType = eventType
        self.path = path
        self.userID = userID
        self.timestamp = timestamp
        self.extra = nil
    }

    public init(siteID: String, eventType: String, path: String? = nil, userID: String? = nil, timestamp: Int64,
                referrer: String?, utmSource: String? = nil, utmMedium: String? = nil, utmCampaign: String? = nil,
                visit: Visit = Visit()) {
        self.siteID = siteID
        self.eventType = eventType
        self.path = path
        self.userID = userID
        self.timestamp = timestamp
        let fields = ExtraFields(referrer: referrer, utmSource: utmSource, utmMedium: utmMedium, utmCampaign: utmCampaign, visit: visit)
        self.extra = fields.isEmpty ? nil : Extra(fields)
    }

    /// Where the visitor came from. As sent, until ingest keeps only its host (lower-cased,
    /// without `www.`; nil for a direct visit or a same-site referrer).
    public var referrer: String? {
        get { extra?.fields.referrer }
        set { update { $0.referrer = newValue } }
    }
    public var utmSource: String? {
        get { extra?.fields.utmSource }
        set { update { $0.utmSource = newValue } }
    }
    public var utmMedium: String? {
        get { extra?.fields.utmMedium }
        set { update { $0.utmMedium = newValue } }
    }
    public var utmCampaign: String? {
        get { extra?.fields.utmCampaign }
        set { update { $0.utmCampaign = newValue } }
    }
    /// What the server derived about the sender (never taken from clients).
    public var visit: Visit {
        get { extra?.fields.visit ?? Visit() }
        set { update { $0.visit = newValue } }
    }

    /// What ingest derives, set together (one allocation, not one per field): the referrer's
    /// host in place of the referrer as sent, and the visit.
    public mutating func derive(referrerHost: String?, visit: Visit) {
        update {
            $0.referrer = referrerHost
            $0.visit = visit
        }
    }

    /// Whether any of the fields behind ``extra`` is set.
    public var hasExtra: Bool { extra != nil }

    /// Has details, and they are only an anonymous visitor id (an HTTP sender without a
    /// User-Agent or referrer): the stores write such details with a narrower statement.
    public var detailsAreOnlyVisitor: Bool {
        guard let f = extra?.fields else { return false }
        let v = f.visit
        return f.referrer == nil && f.utmSource == nil && f.utmMedium == nil && f.utmCampaign == nil
            && v.device == nil && v.browser == nil && v.os == nil && !v.isBot
    }

    private mutating func update(_ change: (inout ExtraFields) -> Void) {
        var fields = extra?.fields ?? ExtraFields()
        change(&fields)
        extra = fields.isEmpty ? nil : Extra(fields)
    }

    /// The event type counted by `total_views` and `top_paths`.
    public static let pageView = "page_view"

    public var isPageView: Bool { eventType.utf8Equals(Event.pageView) }

    /// Counted in views, users and visitors: everything but what bot filtering flagged.
    public var counts: Bool { !visit.isBot }

    public static func == (a: Event, b: Event) -> Bool {
        a.timestamp == b.timestamp && a.siteID.utf8Equals(b.siteID) && a.eventType.utf8Equals(b.eventType)
            && a.path.utf8Equals(b.path) && a.userID.utf8Equals(b.userID) && a.referrer.utf8Equals(b.referrer)
            && a.utmSource.utf8Equals(b.utmSource) && a.utmMedium.utf8Equals(b.utmMedium)
            && a.utmCampaign.utf8Equals(b.utmCampaign) && a.visit == b.visit
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ExactString(siteID))
        hasher.combine(ExactString(eventType))
        hasher.combine(path.map { ExactString($0) })
        hasher.combine(userID.map { ExactString($0) })
        hasher.combine(timestamp)
        hasher.combine(referrer.map { ExactString($0) })
        hasher.combine(visit.visitor)
    }

    /// The UTC day the event falls on.
    public var day: UTCDay { UTCDay(containing: timestamp) }
}

struct ExtraFields: Sendable {
    var referrer: String?
    var utmSource: String?
    var utmMedium: String?
    var utmCampaign: String?
    var visit = Visit()

    var isEmpty: Bool { referrer == nil && utmSource == nil && utmMedium == nil && utmCampaign == nil && visit.isEmpty }
}

/// Immutable, so events stay values: a change makes a new one.
final class Extra: Sendable {
    let fields: ExtraFields
    init(_ fields: ExtraFields) { self.fields = fields }
}

/// What the server derived about an event's sender at ingest: stored with the event, never
/// accepted from a client. `visitor` is the anonymous visitor id of an event without a
/// `user_id` (whose visitor is the user); 0 means none (a user's event, or one over the wire
/// without a client address).
public struct Visit: Sendable, Hashable {
    public var visitor: UInt64
    public var device: Device?
    public var browser: String?
    public var os: String?
    /// A crawler, preview fetcher or automated browser: stored, flagged, and counted nowhere.
    public var isBot: Bool

    public init(visitor: UInt64 = 0, device: Device? = nil, browser: String? = nil, os: String? = nil, isBot: Bool = false) {
        self.visitor = visitor
        self.device = device
        self.browser = browser
        self.os = os
        self.isBot = isBot
    }

    public var isEmpty: Bool { visitor == 0 && device == nil && browser == nil && os == nil && !isBot }

    public static func == (a: Visit, b: Visit) -> Bool {
        a.visitor == b.visitor && a.device == b.device && a.browser.utf8Equals(b.browser) && a.os.utf8Equals(b.os)
            && a.isBot == b.isBot
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(visitor)
        hasher.combine(isBot)
    }
}

/// The device class a User-Agent names.
public enum Device: UInt8, Sendable, CaseIterable {
    case desktop = 1, mobile = 2, tablet = 3

    public var name: String {
        switch self {
        case .desktop: "desktop"
        case .mobile: "mobile"
        case .tablet: "tablet"
        }
    }

    public init?(name: String) {
        guard let d = Device.allCases.first(where: { $0.name == name }) else { return nil }
        self = d
    }
}

/// Limits every transport enforces, so an event accepted over HTTP is also valid on the wire.
public enum EventLimits {
    public static let maxSiteIDBytes = 128
    public static let maxEventTypeBytes = 64
    public static let maxPathBytes = 2048
    public static let maxUserIDBytes = 256
    public static let maxReferrerBytes = 2048
    public static let maxUTMBytes = 256
    /// 1970-01-01T00:00:00Z.
    public static let minTimestamp: Int64 = 0
    /// 2100-01-01T00:00:00Z (exclusive): later timestamps are almost surely unit mistakes.
    public static let maxTimestamp: Int64 = 4_102_444_800_000_000
}
