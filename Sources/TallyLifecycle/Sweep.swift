import Dispatch
import TallyCore
import TallyStore

/// One walk over every raw row, in id order, deleting what its rules say: a short store
/// transaction per `span` ids, with a pause after each that keeps loading ahead of it.
public struct Sweep: Sendable {
    public var rules: SweepRules
    /// Raw row ids per step: about 5 ms of SQLite's time, whatever the rows hold.
    public var span: Int64
    /// Pause after a step while loading has work, as a multiple of the step's time: 39 keeps the
    /// sweep to 1/40 of the store's time. Its deletes also cost loads later (more WAL to write
    /// and checkpoint, pages to split again): 1/20 measured loads 10-13 % slower beside a purge.
    public static let busyPause = 39.0
    /// Pause after a step otherwise: the sweep gets most of an idle store.
    public static let idlePause = 0.25

    /// How long a sweeper's claim on its purges lasts unless renewed (every ``renewEvery``):
    /// past it, a collector takes over the purges of a sweeper that died.
    public static let lease: Int64 = 60_000_000
    public static let renewEvery: UInt64 = 10_000_000_000
    public static func leaseEnd() -> Int64 { Timestamp.now() + lease }

    /// Claims the purges in `ids` and those nobody holds, and sweeps them (with the retention
    /// in `retention`) while renewing the claim; marks them done when the sweep ran to the end
    /// (`stop` ends it early: the rules changed). Returns the purges and what the sweep did.
    public static func purges(_ ids: [Int64], retention: RetentionPolicy, store: any LifecycleStore,
                              busy: @escaping @Sendable () -> Bool,
                              stop: @escaping @Sendable () -> Bool = { false }) async throws -> (purges: [SitePurge], outcome: Outcome) {
        let purges = try await store.claimPurges(ids: ids, until: leaseEnd(), takeExpired: true)
        let held = purges.map(\.id)
        let sweep = Sweep(rules: SweepRules(retention: retention, today: .today, purges: purges))
        let out = try await sweep.run(store, busy: busy, stop: stop,
                                      renew: { _ = try await store.claimPurges(ids: held, until: leaseEnd(), takeExpired: false) })
        if out.finished { try await store.finishPurges(held) }
        return (purges, out)
    }

    public init(rules: SweepRules, span: Int64 = 16_384) {
        self.rules = rules
        self.span = span
    }

    public struct Outcome: Sendable, Equatable {
        public var deletedByRetention = 0
        public var deletedByPurges = 0
        public var steps = 0
        /// False when `stop` ended the sweep before the last row.
        public var finished = false
    }

    /// Runs to the end of the rows (as they are when it gets there); `busy` says whether
    /// loading has work right now. Throws CancellationError when the task is cancelled.
    public func run(_ store: any LifecycleStore, busy: @Sendable () -> Bool = { false }, stop: @Sendable () -> Bool = { false },
                    renew: @Sendable () async throws -> Void = {}) async throws -> Outcome {
        var out = Outcome()
        var after = try await store.firstRowID()
        var renewed = DispatchTime.now().uptimeNanoseconds
        while true {
            try Task.checkCancellation()
            if stop() { return out }
            let started = DispatchTime.now().uptimeNanoseconds
            if started - renewed > Self.renewEvery {
                try await renew()
                renewed = started
            }
            let step = try await store.sweep(after: after, span: span, rules: rules)
            let took = DispatchTime.now().uptimeNanoseconds - started
            out.steps += 1
            out.deletedByRetention += step.deletedByRetention
            out.deletedByPurges += step.deletedByPurges
            guard let next = step.next else {
                out.finished = true
                return out
            }
            after = next
            // At most a second: the lease is renewed between steps.
            let pause = min(1e9, Double(took) * (busy() ? Self.busyPause : Self.idlePause))
            try await Task.sleep(for: .nanoseconds(max(100_000, Int64(pause))))
        }
    }
}
