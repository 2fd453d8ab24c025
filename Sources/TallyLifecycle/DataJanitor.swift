import Dispatch
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle
import TallyCore
import TallyStore

/// Runs the data lifecycle inside a collector: a sweep of the raw rows when the retention's
/// cut-off day moves (each UTC midnight, and at start), when the retention changes, and when a
/// purge is recorded (here or, seen within ``interval``, by another process); then gives the
/// freed space back. Rows already past the retention when they arrive are never stored (the
/// store's load applies it), so a sweep only has days that aged out, and purges, to delete.
/// With a rollup retention, each new day also deletes the rollups of the days past it, one
/// site per transaction.
public final class DataJanitor: Service, Sendable {
    let store: any LifecycleStore
    let logger: Logger
    let busy: @Sendable () -> Bool
    let interval: Duration
    private let state = NIOLockedValueBox(State())
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let deletedByRetention: Counter
    private let deletedByPurges: Counter
    private let reclaimedPages: Counter

    struct State {
        var retention = RetentionPolicy()
        /// The retention and day the last whole sweep ran with; nil before the first.
        var swept: (RetentionPolicy, UTCDay)?
        /// The day rollups were last cut back for.
        var rollupsCut: UTCDay?
        var lastError: String?
        /// Purges recorded here, swept on the next round.
        var recorded: [Int64] = []
        /// A sweep freed pages that are not given back yet.
        var reclaimPending = false
        /// Whether `retention` is in force (sites' own limits read).
        var known = false
    }

    /// `busy`: whether loading has work now (sweeps slow down for it). `waitForSites`: the
    /// retention takes effect with the first ``setRetention(_:)`` (sites' own limits known).
    public init(store: any LifecycleStore, retention: RetentionPolicy, waitForSites: Bool = false, busy: @escaping @Sendable () -> Bool,
                interval: Duration = .seconds(2), metricsFactory: any MetricsFactory, logger: Logger) {
        self.store = store
        self.logger = logger
        self.busy = busy
        self.interval = interval
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        deletedByRetention = Counter(label: "tally_raw_rows_deleted_total", dimensions: [("reason", "retention")], factory: metricsFactory)
        deletedByPurges = Counter(label: "tally_raw_rows_deleted_total", dimensions: [("reason", "purge")], factory: metricsFactory)
        reclaimedPages = Counter(label: "tally_store_pages_reclaimed_total", factory: metricsFactory)
        state.withLockedValue { $0.retention = retention }
        if !waitForSites { setRetention(retention) }
    }

    /// The retention from now on (the sites registry was read, or changed). Until the first
    /// call (with `waitForSites`), nothing is deleted and loads keep every row: sites' own
    /// limits may be longer than the server's.
    public func setRetention(_ policy: RetentionPolicy) {
        let changed = state.withLockedValue { s in
            defer {
                s.retention = policy
                s.known = true
            }
            if s.retention.rollupDays != policy.rollupDays { s.rollupsCut = nil }
            return s.retention != policy || !s.known
        }
        guard changed else { return }
        store.setRetention(policy)
        wake.yield()
    }

    /// Records a purge (the site reads as purged when this returns) and starts its sweep.
    public func purge(site: String, before: UTCDay?) async throws -> SitePurge {
        let p = try await store.recordPurge(site: site, before: before, leaseUntil: Sweep.leaseEnd())
        state.withLockedValue { $0.recorded.append(p.id) }
        logger.notice("site data purge recorded", metadata: ["site_id": "\(site)", "before": "\(before.map { "\($0)" } ?? "-")", "purge": "\(p.id)"])
        wake.yield()
        return p
    }

    /// The last sweep's failure, if the one after it has not succeeded yet.
    public var lastError: String? { state.withLockedValue { $0.lastError } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.rollUpReports() }
                await self.lookRepeatedly()
                group.cancelAll()
            }
        }
    }

    /// Keeps the report rollups up with the loads, in steps (SQLite reads up to 65,536 rows
    /// each). Each step is followed by a pause: ``reportPause`` times its length while loading
    /// has work, so rollups take at most a tenth of the store's writer and loading keeps the
    /// rest; as long as it when quiet, so a backlog (a store from before the rollups) takes
    /// at most half a core. Reports are exact throughout: they read the rows not rolled up yet.
    func rollUpReports() async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let start = clock.now
            let n: Int
            do {
                n = try await store.rollUpReports()
            } catch {
                logger.warning("report rollup failed; reports read the raw rows meanwhile", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(5))
                continue
            }
            if n == 0 {
                try? await Task.sleep(for: .milliseconds(500))
            } else {
                try? await Task.sleep(for: (clock.now - start) * (busy() ? Self.reportPause : 1))
            }
        }
    }

    static let reportPause = 9

    private func lookRepeatedly() async {
        var wakes = self.wakes.makeAsyncIterator()
        while !Task.isCancelled {
            await self.round()
            // Whichever first: a purge or a retention change, or the next look.
            let timer = Task { [wake = self.wake, interval = self.interval] in
                // Cancelled (woken early): no wake of its own, or the loop would never rest.
                do {
                    try await Task.sleep(for: interval)
                    wake.yield()
                } catch {}
            }
            _ = await wakes.next()
            timer.cancel()
        }
    }

    /// One look: cuts rollups back once a day, sweeps when the retention's cut-off moved or
    /// purges wait; gives freed space back once loading is quiet.
    func round() async {
        let today = UTCDay.today
        await cutRollups(today)
        await reclaimWhenQuiet()
        let (known, policy, swept) = state.withLockedValue { ($0.known, $0.retention, $0.swept) }
        // Before the sites are known, purges only.
        let retention = known ? policy : RetentionPolicy()
        do {
            // Purges recorded here, and any nobody holds (a sweeper died): a look, then a claim.
            let recorded = state.withLockedValue { $0.recorded }
            let now = Timestamp.now()
            let waiting = try await store.purges(unfinishedOnly: true).contains { recorded.contains($0.id) || $0.leaseUntil < now }
            let retentionMoved = !retention.keepsEverything && (swept.map { $0.0 != retention || $0.1 != today } ?? true)
            guard retentionMoved || waiting else { return }
            let started = DispatchTime.now().uptimeNanoseconds
            // A retention that changes meanwhile (a site's own limit raised, say) ends the
            // sweep; the next round starts one under the new rules.
            let (purges, out) = try await Sweep.purges(waiting ? recorded : [], retention: retention, store: store, busy: busy,
                                                       stop: { [state] in state.withLockedValue { $0.known && $0.retention != retention } })
            deletedByRetention.increment(by: out.deletedByRetention)
            deletedByPurges.increment(by: out.deletedByPurges)
            guard out.finished else { return }
            state.withLockedValue { s in s.recorded.removeAll { id in purges.contains { $0.id == id } } }
            state.withLockedValue {
                $0.swept = (retention, today)
                $0.lastError = nil
                if out.deletedByRetention + out.deletedByPurges > 0 { $0.reclaimPending = true }
            }
            logger.info("raw rows swept", metadata: [
                "deleted_by_retention": "\(out.deletedByRetention)", "deleted_by_purges": "\(out.deletedByPurges)",
                "purges_finished": "\(purges.count)", "seconds": "\(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)"])
            await reclaimWhenQuiet()
        } catch is CancellationError {
        } catch {
            state.withLockedValue { $0.lastError = "\(error)" }
            logger.warning("sweep of raw rows failed; retried on the next round", metadata: ["error": "\(error)"])
        }
    }

    func cutRollups(_ today: UTCDay) async {
        let (days, cut, known) = state.withLockedValue { ($0.retention.rollupDays, $0.rollupsCut, $0.known) }
        guard known, let days, cut != today else { return }
        let before = UTCDay(number: today.number - Int32(clamping: days))
        do {
            let sites = try await store.sitesWithRollups(before: before)
            for site in sites {
                let started = DispatchTime.now().uptimeNanoseconds
                try await store.dropRollups(site: site, before: before)
                let took = Double(DispatchTime.now().uptimeNanoseconds - started)
                try await Task.sleep(for: .nanoseconds(max(100_000, Int64(took * (busy() ? Sweep.busyPause : Sweep.idlePause)))))
            }
            state.withLockedValue { $0.rollupsCut = today }
            if !sites.isEmpty { logger.info("rollups cut back", metadata: ["before": "\(before)", "sites": "\(sites.count)"]) }
        } catch is CancellationError {
        } catch {
            state.withLockedValue { $0.lastError = "\(error)" }
            logger.warning("rollup retention failed; retried on the next round", metadata: ["error": "\(error)"])
        }
    }

    /// Gives the pages a sweep freed back while nothing is loading: moving pages to the end of
    /// the file and cutting it off writes as much as loading does, and while loading runs, its
    /// new rows reuse the free pages anyway.
    func reclaimWhenQuiet() async {
        guard state.withLockedValue({ $0.reclaimPending }), !busy() else { return }
        do {
            let pages = try await Self.reclaim(store, busy: busy, stopWhenBusy: true)
            reclaimedPages.increment(by: pages.freed)
            if pages.done { state.withLockedValue { $0.reclaimPending = false } }
            if pages.freed > 0 { logger.info("space given back", metadata: ["pages": "\(pages.freed)", "done": "\(pages.done)"]) }
        } catch is CancellationError {
        } catch {
            logger.warning("giving space back failed; retried on the next round", metadata: ["error": "\(error)"])
        }
    }

    /// Gives free pages back a few MB at a time, paced like a sweep; with `stopWhenBusy`,
    /// stops (not `done`) as soon as loading has work.
    public static func reclaim(_ store: any LifecycleStore, busy: @Sendable () -> Bool = { false },
                               stopWhenBusy: Bool = false) async throws -> (freed: Int, done: Bool) {
        let pages = 2048
        var total = 0
        while true {
            try Task.checkCancellation()
            if stopWhenBusy && busy() { return (total, false) }
            let started = DispatchTime.now().uptimeNanoseconds
            let freed = try await store.reclaimSpace(pages: pages)
            total += freed
            guard freed >= pages else { return (total, true) }
            let took = Double(DispatchTime.now().uptimeNanoseconds - started)
            try await Task.sleep(for: .nanoseconds(max(100_000, Int64(took * (busy() ? Sweep.busyPause : Sweep.idlePause)))))
        }
    }
}
