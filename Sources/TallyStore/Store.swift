import TallyCore

/// A batch of events as the loader hands it to a store. `id` is unique for all time and all
/// collectors, so recording it in the same transaction as the rows makes loading exactly-once.
public struct StoreBatch: Sendable {
    public var id: String
    /// When the batch was cut (µs since the epoch); stored as each row's `ingested_at`.
    public var createdAt: Int64
    public var events: [Event]

    public init(id: String, createdAt: Int64, events: [Event]) {
        self.id = id
        self.createdAt = createdAt
        self.events = events
    }
}

/// A raw row as stored: its id (ascending in load order), when its batch was cut, the event.
public struct StoredEvent: Sendable, Equatable {
    public var id: Int64
    public var ingestedAt: Int64
    public var event: Event

    public init(id: Int64, ingestedAt: Int64, event: Event) {
        self.id = id
        self.ingestedAt = ingestedAt
        self.event = event
    }
}

/// One page of ``EventStore/rows(siteID:from:to:after:limit:)``.
public struct RowPage: Sendable {
    public var rows: [StoredEvent]
    /// Where the next page starts; nil when the range has no more rows.
    public var next: RowCursor?

    public init(rows: [StoredEvent], next: RowCursor?) {
        self.rows = rows
        self.next = next
    }
}

/// Where a page of ``EventStore/rows(siteID:from:to:after:limit:)`` starts: ids above
/// `afterID`. On SQLite it also carries the id ranges the first page found the range's rows
/// in (``SQLiteSchema/spanRanges(_:site:_:ids:)``), so each later page reads on from there
/// instead of reading every span of the range again: a year of backfilled data has
/// thousands of spans per hundred thousand rows. Rows loaded after the first page may or may
/// not be read, as with any paging.
public struct RowCursor: Sendable, Equatable {
    public var afterID: Int64
    /// The id ranges left, ascending; nil: not looked up yet.
    var ranges: [ClosedRange<Int64>]?

    public static let start = RowCursor(afterID: 0)

    public init(afterID: Int64) { self.afterID = afterID }

    init(afterID: Int64, ranges: [ClosedRange<Int64>]?) {
        self.afterID = afterID
        self.ranges = ranges
    }
}

/// What loading a batch did.
public enum LoadOutcome: Sendable, Equatable {
    case loaded
    /// The batch id was already recorded: nothing was written.
    case alreadyLoaded
}

/// The answer to `/stats`.
public struct SiteStats: Sendable, Equatable {
    public var totalViews: Int64
    public var uniqueUsers: Int64
    public var topPaths: [PathViews]

    public init(totalViews: Int64, uniqueUsers: Int64, topPaths: [PathViews]) {
        self.totalViews = totalViews
        self.uniqueUsers = uniqueUsers
        self.topPaths = topPaths
    }
}

public struct PathViews: Sendable, Equatable {
    public var path: String
    public var views: Int64
    public init(path: String, views: Int64) {
        self.path = path
        self.views = views
    }
}

/// Where loaded events live and `/stats` is answered from. Implementations must make `load`
/// atomic: the rows, the rollups and the batch id commit together or not at all.
public protocol EventStore: Sendable {
    /// Creates or migrates the schema; safe to call when it already exists.
    func prepare() async throws
    /// Loads several batches in one transaction (fewer commits, and rollup rows shared by the
    /// batches are written once). Each batch id is still recorded, so each batch is loaded
    /// exactly once; the outcomes are in the order of `batches`.
    func load(_ batches: [StoreBatch]) async throws -> [LoadOutcome]
    /// Stats for one UTC day, or all time when `day` is nil.
    func stats(siteID: String, day: UTCDay?, limit: Int) async throws -> SiteStats
    /// The raw rows of `siteID` whose event time is in `[from, to)` (µs), from `after` on
    /// (``RowCursor/start``, then each page's `next`), in id order, bot rows included, from
    /// reading at most `limit` rows: reports and export page through a range with these, so
    /// no read holds the store for the whole of it. Rows a purge or the rollup retention
    /// deleted (not swept yet) are left out.
    func rows(siteID: String, from: Int64, to: Int64, after: RowCursor, limit: Int) async throws -> RowPage
    /// The figures of each of `spans` (ascending, not overlapping).
    func figures(siteID: String, spans: [TimeSpan]) async throws -> [ReportFigures]
    /// The values of `property` among the site's events in `span`, ordered by
    /// ``BreakdownRow/ordered(_:_:)``; the first `limit`.
    func breakdown(siteID: String, span: TimeSpan, property: BreakdownProperty, limit: Int) async throws -> [BreakdownRow]
    /// Total raw events stored (all sites), for health and tests.
    func eventCount() async throws -> Int64
    /// The salt of anonymous visitor ids for `day`: the stored one, or `proposed` when there is
    /// none yet (the first collector to ask sets it for all that share the store). Salts of
    /// days before `keepFrom` are deleted in the same transaction.
    func visitorSalt(for day: UTCDay, proposed: [UInt8], keepFrom: UTCDay) async throws -> [UInt8]
    func close() async throws
}

extension EventStore {
    public func load(_ batch: StoreBatch) async throws -> LoadOutcome {
        try await load([batch])[0]
    }
}

/// A store failure with the backend's message.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) {
        self.message = message
    }
    public var description: String { message }
}

/// Per-batch rollups, computed in memory so each batch touches every rollup row once.
public struct BatchRollup: Sendable {
    // Names are ExactStrings: keys that differ in bytes stay apart, as they do in the store.
    public struct DayKey: Hashable, Sendable { public var site: ExactString; public var day: Int32 }
    public struct DayPathKey: Hashable, Sendable { public var site: ExactString; public var day: Int32; public var path: ExactString }
    public struct SitePathKey: Hashable, Sendable { public var site: ExactString; public var path: ExactString }
    public struct DayUserKey: Hashable, Sendable { public var site: ExactString; public var day: Int32; public var user: ExactString }
    public struct SiteUserKey: Hashable, Sendable { public var site: ExactString; public var user: ExactString }
    public struct DayVisitorKey: Hashable, Sendable { public var site: ExactString; public var day: Int32; public var visitor: UInt64 }

    public var dayViews: [DayKey: Int64] = [:]
    public var dayPathViews: [DayPathKey: Int64] = [:]
    public var sitePathViews: [SitePathKey: Int64] = [:]
    public var dayUsers: Set<DayUserKey> = []
    public var siteUsers: Set<SiteUserKey> = []
    public var dayVisitors: Set<DayVisitorKey> = []

    /// `knownDay`/`knownSite`: user rows already stored, left out of the rollup.
    public init(_ events: [Event], knownDay: Set<DayUserKey> = [], knownSite: Set<SiteUserKey> = []) {
        // Bots are stored rows, but neither views nor users nor visitors.
        for e in events where e.counts {
            let day = e.day.number
            let site = ExactString(e.siteID)
            if e.visit.visitor != 0 { dayVisitors.insert(DayVisitorKey(site: site, day: day, visitor: e.visit.visitor)) }
            if let u = e.userID, !u.isEmpty {
                let user = ExactString(u)
                let dk = DayUserKey(site: site, day: day, user: user)
                if !knownDay.contains(dk) { dayUsers.insert(dk) }
                let sk = SiteUserKey(site: site, user: user)
                if !knownSite.contains(sk) { siteUsers.insert(sk) }
            }
            guard e.isPageView else { continue }
            dayViews[DayKey(site: site, day: day), default: 0] += 1
            if let p = e.path.map({ ExactString($0) }) {
                dayPathViews[DayPathKey(site: site, day: day, path: p), default: 0] += 1
                sitePathViews[SitePathKey(site: site, path: p), default: 0] += 1
            }
        }
    }
}

/// The site registry (``SiteRecord``), kept in the same database as the events, so collectors
/// that share a PostgreSQL database share their sites and keys.
public protocol SiteRegistryStore: Sendable {
    /// Advanced by every change; a collector polls it and reloads the sites when it moves.
    func registryVersion() async throws -> Int64
    /// Every site with its keys, and the version they are as of (one read transaction).
    func registeredSites() async throws -> (version: Int64, sites: [SiteRecord])
    /// One change in one transaction, with the version advanced; throws ``SiteRegistryError``
    /// when the site (or key) named is not there, or a site to add already is.
    func apply(_ change: SiteRegistryChange) async throws
}

public enum SiteRegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    case siteExists(String)
    case noSuchSite(String)
    case noSuchKey(site: String, key: String)

    public var description: String {
        switch self {
        case .siteExists(let id): "site \(JSONText.quote(id)) is already registered"
        case .noSuchSite(let id): "no registered site \(JSONText.quote(id))"
        case .noSuchKey(let site, let key): "site \(JSONText.quote(site)) has no key \(JSONText.quote(key))"
        }
    }
}
