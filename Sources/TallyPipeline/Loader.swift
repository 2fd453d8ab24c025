import Foundation
import Logging
import NIOConcurrencyHelpers
import TallyStore

/// Moves spooled batches into the store in the order they were written. When the store falls
/// behind, the batches waiting are loaded together in one transaction (up to a bound): fewer
/// commits, and rollup rows shared by the batches are written once. A batch's file is removed
/// only after the transaction that recorded its id committed, so a crash at any point loads
/// every batch exactly once.
final class Loader: Sendable {
    let spool: Spool
    let store: any EventStore
    let metrics: PipelineMetrics
    let logger: Logger
    /// Rings once per submit; the work itself waits in `state.pending`.
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation
    private let state = NIOLockedValueBox(State())

    /// At most this many batch files, or events, per transaction. A load rewrites each rollup
    /// row and user-set chunk it touches once, so a bigger group spreads that over more
    /// events: with a million users over 100 sites, 262,144 loaded 24 % more events a second
    /// than 131,072 (215k against 173k end to end) for 100 MB more peak memory while behind
    /// (the group and the next one, read ahead, are in memory); 524,288 gained 4 % more for
    /// another 100 MB.
    static let maxGroupFiles = 32
    static let maxGroupEvents = 262_144

    struct State {
        var pending: [SpooledBatch] = []
        var forceStop = false
        var lastError: String?
        /// When the last load committed (uptime ns); 0: never.
        var lastLoaded: UInt64 = 0
        /// Groups taken from `pending` and not loaded yet.
        var inFlight = 0
    }

    init(spool: Spool, store: any EventStore, metrics: PipelineMetrics, logger: Logger) {
        self.spool = spool
        self.store = store
        self.metrics = metrics
        self.logger = logger
        (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func submit(_ item: SpooledBatch) {
        state.withLockedValue { $0.pending.append(item) }
        ring.yield()
    }

    /// No more files will come; `run` returns after loading what was submitted.
    func finish() { ring.finish() }

    /// Stop retrying a failing store; unloaded files stay in the spool for the next start.
    func forceStop() { state.withLockedValue { $0.forceStop = true } }

    var lastError: String? { state.withLockedValue { $0.lastError } }

    /// Whether batches wait for the store or are being loaded, or a load committed within
    /// `window` ns.
    func loadedWithin(_ window: UInt64) -> Bool {
        let (last, waiting) = state.withLockedValue { ($0.lastLoaded, !$0.pending.isEmpty || $0.inFlight > 0) }
        return waiting || DispatchTime.now().uptimeNanoseconds - last < window
    }

    func run() async {
        for await _ in doorbell { await drainPending() }
        await drainPending()
    }

    /// Loads what is pending, group by group. The next group's files are read and decoded
    /// while the store writes the current one: reading is CPU work (zstd, decoding) that would
    /// otherwise sit on the store's critical path whenever the loader is behind.
    private func drainPending() async {
        var group = await nextGroup()
        while !group.isEmpty {
            if state.withLockedValue({ $0.forceStop }) { return }
            let prefetch = Task { await self.nextGroup() }
            await load(group)
            group = await prefetch.value
            if group.isEmpty { group = await nextGroup() }
        }
    }

    /// Takes up to ``maxGroupFiles`` pending files (and about ``maxGroupEvents`` events) in
    /// order and reads them; empty when nothing is pending.
    private func nextGroup() async -> [(path: String, batch: StoreBatch)] {
        while true {
            let items: [SpooledBatch] = state.withLockedValue { s in
                if s.forceStop { s.pending.removeAll() }
                let n = min(s.pending.count, Self.maxGroupFiles)
                defer { s.pending.removeFirst(n) }
                return Array(s.pending.prefix(n))
            }
            if items.isEmpty { return [] }
            var group: [(path: String, batch: StoreBatch)] = []
            var events = 0
            for (i, item) in items.enumerated() {
                // Past the event bound, the rest go back to the front of the line.
                if events >= Self.maxGroupEvents {
                    let rest = Array(items[i...])
                    state.withLockedValue { $0.pending.insert(contentsOf: rest, at: 0) }
                    break
                }
                if let batch = await read(item) {
                    group.append((item.path, batch))
                    events += batch.events.count
                }
            }
            // Every file of this take was corrupt or gone: look again.
            if !group.isEmpty { return group }
        }
    }

    /// The batch in memory, or read from its file; nil when the file is corrupt (quarantined)
    /// or gone.
    private func read(_ item: SpooledBatch) async -> StoreBatch? {
        if let batch = item.batch { return batch }
        let path = item.path
        var readDelay = Duration.milliseconds(20)
        while true {
            do {
                return try SpoolFormat.decode(try FileOps.read(path))
            } catch SpoolError.io(let message) {
                if access(path, F_OK) != 0 {
                    logger.warning("spool file vanished before loading", metadata: ["file": "\(path)"])
                    spool.remove(path)
                    return nil
                }
                // A read error may pass (I/O hiccup): retry rather than set the file aside.
                logger.warning("cannot read spool file; retrying", metadata: ["file": "\(path)", "error": "\(message)"])
                if state.withLockedValue({ $0.forceStop }) { return nil }
                // A back-off on the clock; cancellation (shutdown deadline) wakes it.
                try? await Task.sleep(for: readDelay)
                readDelay = min(readDelay * 2, .seconds(2))
            } catch {
                logger.error("quarantining spool file", metadata: ["file": "\(path)", "error": "\(error)"])
                metrics.batchesQuarantined.increment()
                spool.quarantine(path)
                return nil
            }
        }
    }

    /// Retries until the store takes the group (or shutdown gives up on it).
    private func load(_ group: [(path: String, batch: StoreBatch)]) async {
        state.withLockedValue { $0.inFlight += 1 }
        defer { state.withLockedValue { $0.inFlight -= 1 } }
        var delay = Duration.milliseconds(20)
        while true {
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let outcomes = try await store.load(group.map(\.batch))
                metrics.loadSeconds.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                for (item, outcome) in zip(group, outcomes) {
                    switch outcome {
                    case .loaded:
                        metrics.batchesLoaded.increment()
                        metrics.eventsLoaded.increment(by: item.batch.events.count)
                    case .alreadyLoaded:
                        metrics.batchesDuplicate.increment()
                        logger.info("batch already loaded; dropping its spool file", metadata: ["batch": "\(item.batch.id)"])
                    }
                    spool.remove(item.path)
                }
                state.withLockedValue {
                    $0.lastError = nil
                    $0.lastLoaded = DispatchTime.now().uptimeNanoseconds
                }
                metrics.spoolBacklogFiles.record(spool.backlogFiles)
                metrics.spoolBacklogBytes.record(spool.backlogBytes)
                return
            } catch {
                metrics.storeErrors.increment()
                let stop = state.withLockedValue {
                    $0.lastError = "\(error)"
                    return $0.forceStop
                }
                logger.warning("store load failed; batches stay in the spool", metadata: [
                    "batches": "\(group.count)", "first": "\(group[0].batch.id)", "error": "\(error)"])
                if stop { return }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}
