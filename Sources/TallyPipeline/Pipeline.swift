import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle
import TallyCore
import TallyStore

/// What `/health` reports about the pipeline.
public struct PipelineStatus: Sendable {
    public var queueDepths: [Int]
    public var queueCapacityPerShard: Int
    public var spoolBacklogFiles: Int
    public var spoolBacklogBytes: Int
    public var spoolWritable: Bool
    public var quarantinedFiles: Int
    public var storeError: String?
}

/// Queue → flushers → spool → loader → store, with its lifecycle: `start` recovers what a
/// previous run left in the spool and starts the threads; `drain` stops intake and moves every
/// queued event into the store before returning. As a service, `run` does both around the
/// graceful shutdown, and gives up on loading (leaving batches spooled for the next start)
/// when cancelled at the shutdown deadline. It is the ``EventSink`` every transport feeds.
public final class Pipeline: Service, Sendable {
    public let queue: ShardedQueue
    public let configuration: PipelineConfiguration
    let spool: Spool
    let loader: Loader
    let metrics: PipelineMetrics
    let logger: Logger
    private let flushersRunning: NIOLockedValueBox<Int>
    private let loaderTask = NIOLockedValueBox<Task<Void, Never>?>(nil)

    public init(configuration: PipelineConfiguration, store: any EventStore,
                metricsFactory: any MetricsFactory = MetricsSystem.factory,
                logger: Logger = Logger(label: "tally.pipeline")) throws {
        self.configuration = configuration
        self.queue = ShardedQueue(shards: configuration.shards, capacity: configuration.queueCapacity)
        self.spool = try Spool(directory: configuration.spoolDirectory)
        self.metrics = PipelineMetrics(factory: metricsFactory, shards: configuration.shards)
        self.logger = logger
        self.loader = Loader(spool: spool, store: store, metrics: metrics, logger: logger)
        self.flushersRunning = NIOLockedValueBox(configuration.shards)
    }

    /// Queues every file a previous run left in the spool, then starts flushers and the loader.
    public func start() {
        let recovered = spool.pendingFiles()
        for path in recovered {
            spool.adopt(path)
            loader.submit(SpooledBatch(path: path, batch: nil))
        }
        if !recovered.isEmpty {
            logger.info("recovering spooled batches", metadata: ["files": "\(recovered.count)"])
        }
        let loader = self.loader
        spool.setHandoff { loader.submit($0) }
        let bootID = String(UInt64(Timestamp.now()), radix: 36)
        for shard in queue.shards {
            Flusher(shard: shard, spool: spool, config: configuration, metrics: metrics, logger: logger,
                    bootID: bootID, done: { [self] in flusherFinished() }).start()
        }
        loaderTask.withLockedValue { $0 = Task { await loader.run() } }
    }

    private func flusherFinished() {
        let last = flushersRunning.withLockedValue {
            $0 -= 1
            return $0 == 0
        }
        if last { loader.finish() }
    }

    /// Refuses new events, spools what is queued, and waits until the loader has stored it.
    public func drain() async {
        queue.close()
        await loaderTask.withLockedValue { $0 }?.value
    }

    /// Starts, then drains once the services in front of it (the listeners) have stopped.
    public func run() async throws {
        start()
        try? await gracefulShutdown()
        await withTaskCancellationHandler {
            await drain()
        } onCancel: {
            logger.warning("shutdown deadline reached; unloaded batches stay in the spool for the next start")
            abandonLoading()
        }
    }

    /// Fault injection for tests and drills: every spool write fails with `message` (as a full
    /// disk would) until called with nil.
    public func injectSpoolWriteFault(_ message: String?) {
        spool.injectFault(message)
    }

    /// Gives up on a failing store during shutdown: spooled files stay for the next start.
    public func abandonLoading() {
        spool.setStopping()
        loader.forceStop()
        // Wakes a loader sleeping between retries of a failing store.
        loaderTask.withLockedValue { $0 }?.cancel()
    }

    public var status: PipelineStatus {
        PipelineStatus(queueDepths: queue.depths, queueCapacityPerShard: queue.capacityPerShard,
                       spoolBacklogFiles: spool.backlogFiles, spoolBacklogBytes: spool.backlogBytes,
                       spoolWritable: spool.writeHealthy, quarantinedFiles: spool.quarantinedCount,
                       storeError: loader.lastError)
    }

    /// Whether loading has work: a load in the last second, or batches waiting for one.
    /// Background work on the store (sweeps) gives way while it does.
    public var isLoading: Bool { loader.loadedWithin(1_000_000_000) }

    /// True when every event enqueued so far has been loaded into the store.
    public var isIdle: Bool {
        queue.depths.allSatisfy { $0 == 0 } && spool.backlogFiles == 0 && queue.shards.allSatisfy { s in
            s.lock.lock()
            defer { s.lock.unlock() }
            return s.takenSeq == s.durableSeq
        }
    }
}

extension Pipeline: EventSink {
    public func enqueue(_ events: [Event], onDurable: DurabilityCallback?) throws(EnqueueRefusal) {
        try queue.enqueue(events, onDurable: onDurable)
    }

    public func whenSpace(for events: [Event], _ callback: @escaping @Sendable () -> Void) {
        queue.whenSpace(for: events, callback)
    }

    /// False while spool writes fail (disk full, I/O error): durable acknowledgements cannot be
    /// given until a write succeeds again.
    public var canMakeDurable: Bool { spool.writeHealthy }
}

extension Pipeline {
    /// Samples queue depths and the spool backlog into their gauges (called before a scrape).
    public func refreshGauges() {
        for (i, d) in queue.depths.enumerated() { metrics.queueDepth[i].record(d) }
        metrics.spoolBacklogFiles.record(spool.backlogFiles)
        metrics.spoolBacklogBytes.record(spool.backlogBytes)
    }
}
