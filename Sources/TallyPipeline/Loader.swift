import Foundation
import Logging
import NIOConcurrencyHelpers
import TallyStore

/// Moves spooled batches into the store, one transaction per batch, in the order they were
/// written. A batch's file is removed only after its transaction committed, and the store
/// records the batch id in that transaction, so a crash at any point loads it exactly once.
final class Loader: Sendable {
    let spool: Spool
    let store: any EventStore
    let metrics: PipelineMetrics
    let logger: Logger
    let stream: AsyncStream<String>
    let continuation: AsyncStream<String>.Continuation
    private let state = NIOLockedValueBox(State())

    struct State {
        var forceStop = false
        var lastError: String?
        var loadedBatches = 0
    }

    init(spool: Spool, store: any EventStore, metrics: PipelineMetrics, logger: Logger) {
        self.spool = spool
        self.store = store
        self.metrics = metrics
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: String.self)
    }

    func submit(_ path: String) { continuation.yield(path) }

    /// No more files will come; `run` returns after loading what was submitted.
    func finish() { continuation.finish() }

    /// Stop retrying a failing store; unloaded files stay in the spool for the next start.
    func forceStop() { state.withLockedValue { $0.forceStop = true } }

    var lastError: String? { state.withLockedValue { $0.lastError } }

    func run() async {
        for await path in stream {
            if state.withLockedValue({ $0.forceStop }) { continue }
            await load(path)
        }
    }

    private func load(_ path: String) async {
        var batch: StoreBatch?
        var readDelay: UInt64 = 20_000_000
        while batch == nil {
            do {
                batch = try SpoolFormat.decode(try FileOps.read(path))
            } catch SpoolError.io(let message) {
                // A read error may pass (I/O hiccup): retry rather than set the file aside.
                if access(path, F_OK) != 0 {
                    logger.warning("spool file vanished before loading", metadata: ["file": "\(path)"])
                    spool.remove(path)
                    return
                }
                logger.warning("cannot read spool file; retrying", metadata: ["file": "\(path)", "error": "\(message)"])
                if state.withLockedValue({ $0.forceStop }) { return }
                try? await Task.sleep(nanoseconds: readDelay)
                readDelay = min(readDelay * 2, 2_000_000_000)
            } catch {
                logger.error("quarantining spool file", metadata: ["file": "\(path)", "error": "\(error)"])
                metrics.batchesQuarantined.increment()
                spool.quarantine(path)
                return
            }
        }
        guard let batch else { return }
        var delay: UInt64 = 20_000_000
        while true {
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                switch try await store.load(batch) {
                case .loaded:
                    metrics.batchesLoaded.increment()
                    metrics.eventsLoaded.increment(by: batch.events.count)
                case .alreadyLoaded:
                    metrics.batchesDuplicate.increment()
                    logger.info("batch already loaded; dropping its spool file", metadata: ["batch": "\(batch.id)"])
                }
                metrics.loadSeconds.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                spool.remove(path)
                state.withLockedValue {
                    $0.lastError = nil
                    $0.loadedBatches += 1
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
                logger.warning("store load failed; batch stays in the spool", metadata: ["batch": "\(batch.id)", "error": "\(error)"])
                if stop { return }
                try? await Task.sleep(nanoseconds: delay)
                delay = min(delay * 2, 2_000_000_000)
            }
        }
    }
}
