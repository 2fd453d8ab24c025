import TallyCore

/// How long data is kept, in whole UTC days of event time: with `days` N, raw rows of days
/// before today − N are deleted (today and the N days before it stay). Rollups and unique sets
/// are not touched by that: reports stay complete; only the raw rows (the `events` view,
/// drill-down, export) lose the old days. `rollupDays` does the same to the reports.
public struct RetentionPolicy: Sendable, Equatable {
    /// For every site without its own limit; nil keeps raw rows forever.
    public var days: Int?
    /// Sites' own limits (the registry's `raw_retention_days`), over `days`; by bytes, as the
    /// store tells sites apart.
    public var siteDays: [ExactString: Int]
    /// Days of rollups kept besides today, for every site; nil: forever. Events of days before
    /// that are neither counted nor stored.
    public var rollupDays: Int?

    public init(days: Int? = nil, siteDays: [ExactString: Int] = [:], rollupDays: Int? = nil) {
        self.days = days
        self.siteDays = siteDays
        self.rollupDays = rollupDays
    }

    /// `days` for every site, and each registered site's own limit over it.
    public init(days: Int?, rollupDays: Int?, sites: [SiteRecord]) {
        var own: [ExactString: Int] = [:]
        for s in sites { if let d = s.rawRetentionDays { own[ExactString(s.id)] = d } }
        self.init(days: days, siteDays: own, rollupDays: rollupDays)
    }

    /// Whether every raw row is kept (rollups aside).
    public var keepsEverything: Bool { days == nil && siteDays.isEmpty }

    /// The first day whose rollups are kept on `today`, or nil for all of them.
    public func firstCountedDay(today: UTCDay) -> Int32? {
        rollupDays.map { today.number - Int32(clamping: $0) }
    }

    /// The first day whose raw rows `site` keeps on `today`, or nil for all of them.
    /// Never more than `rollupDays`: raw rows do not outlive the reports of their day.
    public func firstKeptDay(site: String, today: UTCDay) -> Int32? {
        guard let own = (siteDays.isEmpty ? nil : siteDays[ExactString(site)]) ?? days else { return nil }
        return today.number - Int32(clamping: min(own, rollupDays ?? own))
    }
}

/// A request to delete a site's data: every row, rollup and unique set of `site` (or only of
/// the days before `before`) that came in batches cut before `at`. Recorded in the store, so
/// that batches of the site still spooled anywhere (cut before `at`) are dropped when they are
/// loaded instead of bringing the data back; events sent after the purge are kept.
public struct SitePurge: Sendable, Equatable {
    public var id: Int64
    public var site: String
    /// The first day kept; nil deletes everything.
    public var before: UTCDay?
    /// When the purge was recorded (µs since the epoch, this machine's clock).
    public var at: Int64
    /// Whether the raw rows are all gone.
    public var done: Bool
    /// Until when (µs) a sweeper holds the purge; 0: nobody.
    public var leaseUntil: Int64

    public init(id: Int64, site: String, before: UTCDay?, at: Int64, done: Bool, leaseUntil: Int64 = 0) {
        self.id = id
        self.site = site
        self.before = before
        self.at = at
        self.done = done
        self.leaseUntil = leaseUntil
    }

    /// Whether the purge deletes an event of its site, loaded from a batch cut at `cutAt`.
    func covers(timestamp: Int64, cutAt: Int64) -> Bool {
        cutAt < at && (before.map { timestamp < $0.start } ?? true)
    }
}

/// What a load does with each event: the purges recorded in the store, and the retention in
/// force, applied to every batch as it is loaded. One rule for both stores.
struct LoadFilter {
    /// By bytes, as the stores tell sites apart.
    var purges: [ExactString: [SitePurge]] = [:]
    var retention = RetentionPolicy()

    init(purges: [SitePurge] = [], retention: RetentionPolicy = RetentionPolicy()) {
        for p in purges { self.purges[ExactString(p.site), default: []].append(p) }
        self.retention = retention
    }

    /// Whether an event ``kept(_:today:)`` left gets a raw row: false when it is past the
    /// raw-row retention already (it is counted in the rollups only).
    func storesRawRow(_ e: Event, today: UTCDay) -> Bool {
        guard let first = retention.firstKeptDay(site: e.siteID, today: today) else { return true }
        return e.day.number >= first
    }

    /// A purge covers it, or it is past the rollup retention already: not loaded at all.
    func dropped(_ e: Event, cutAt: Int64, today: UTCDay) -> Bool {
        if let first = retention.firstCountedDay(today: today), e.day.number < first { return true }
        guard !purges.isEmpty else { return false }
        return purges[ExactString(e.siteID)]?.contains { $0.covers(timestamp: e.timestamp, cutAt: cutAt) } ?? false
    }

    /// The events of `batch` that are loaded at all.
    func kept(_ batch: StoreBatch, today: UTCDay) -> StoreBatch {
        guard !purges.isEmpty || retention.rollupDays != nil else { return batch }
        var b = batch
        b.events.removeAll { dropped($0, cutAt: batch.createdAt, today: today) }
        return b
    }
}

/// What one step of a sweep did.
public struct SweepStep: Sendable, Equatable {
    /// Where the next step starts (raw row ids above it); nil when the sweep reached the end.
    public var next: Int64?
    public var deletedByRetention: Int
    public var deletedByPurges: Int

    public init(next: Int64?, deletedByRetention: Int, deletedByPurges: Int) {
        self.next = next
        self.deletedByRetention = deletedByRetention
        self.deletedByPurges = deletedByPurges
    }
}

/// The rules a sweep deletes raw rows by, fixed when it starts.
public struct SweepRules: Sendable {
    public var retention: RetentionPolicy
    public var today: UTCDay
    /// Unfinished purges recorded before the sweep started.
    public var purges: [SitePurge]

    public init(retention: RetentionPolicy, today: UTCDay, purges: [SitePurge]) {
        self.retention = retention
        self.today = today
        self.purges = purges
    }
}

/// The data lifecycle of a store: retention of raw rows, deleting a site's data, giving the
/// space back. SQLite's raw rows have no index on time or site (one would cost more than half
/// the load rate: measured 775k → 316k rows/s; PostgreSQL's have one for its reports), so rows
/// are deleted by sweeps that walk them in id order, a short transaction per step, and rows
/// already past the limit are never stored.
public protocol LifecycleStore: EventStore {
    /// The retention every later load applies (rows already past it only reach the rollups).
    func setRetention(_ policy: RetentionPolicy)
    /// Records a purge and deletes the site's rollups and unique sets (all, or the days before
    /// `before`) in one transaction, which loads wait for: from its commit on, the site reads
    /// as purged and no batch cut before it brings anything back. The raw rows go in sweeps;
    /// the caller holds the purge's lease until `leaseUntil` (µs), see ``claimPurges(ids:until:)``.
    func recordPurge(site: String, before: UTCDay?, leaseUntil: Int64) async throws -> SitePurge
    /// Takes (or renews) the lease of unfinished purges until `until` (µs): those in `ids` (the
    /// caller's own: recorded or claimed by it), and with `takeExpired` those whose lease ran
    /// out. The holder sweeps them; a collector or a `tally sites purge` that dies mid-sweep
    /// leaves its purges to whoever claims them next. (A holder stalled past its lease may
    /// find its purge taken over and both sweep it: deletes are idempotent, only work is lost.)
    func claimPurges(ids: [Int64], until: Int64, takeExpired: Bool) async throws -> [SitePurge]
    /// The purges recorded, oldest first; with `unfinishedOnly`, those whose raw rows are not
    /// all gone yet.
    func purges(unfinishedOnly: Bool) async throws -> [SitePurge]
    /// One step of a sweep: deletes what `rules` say from the raw rows with ids in
    /// (`after`, `after` + `span`].
    func sweep(after: Int64, span: Int64, rules: SweepRules) async throws -> SweepStep
    /// Marks purges done once a whole sweep has run for them, and deletes the interned names
    /// nothing refers to any more (in one transaction that reads every row: loads wait for it).
    func finishPurges(_ ids: [Int64]) async throws
    /// Gives up to `pages` free pages back to the file system; returns how many were freed.
    func reclaimSpace(pages: Int) async throws -> Int
    /// Sites that have rollups of days before `before`.
    func sitesWithRollups(before: UTCDay) async throws -> [String]
    /// Deletes a site's rollups and unique sets of the days before `before` (rollup
    /// retention): its all-time numbers become those of the days left. One transaction.
    func dropRollups(site: String, before: UTCDay) async throws
    /// The smallest raw row id, minus one (a sweep's start).
    func firstRowID() async throws -> Int64
    /// Brings the report rollups up to date with the rows loaded, a step of bounded size;
    /// returns the rows the step took in (0: up to date, or a store without such rollups).
    func rollUpReports() async throws -> Int
}
