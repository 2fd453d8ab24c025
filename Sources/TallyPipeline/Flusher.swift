import Foundation
import Logging
import NIOCore
import TallyCore
import TallyStore

/// One thread per shard: waits for a batch (size or age), writes it to the spool durably,
/// marks its events durable, and hands the file to the loader. Blocking I/O lives on these
/// threads, away from the event loops and the async runtime.
final class Flusher: @unchecked Sendable {
    let shard: Shard
    let spool: Spool
    let config: PipelineConfiguration
    let metrics: PipelineMetrics
    let logger: Logger
    private let bootID: String
    private var counter: UInt64 = 0
    private let compressor: ZstdCompressor
    private var scratch = ByteBuffer()
    private let done: @Sendable () -> Void

    init(shard: Shard, spool: Spool, config: PipelineConfiguration, metrics: PipelineMetrics, logger: Logger,
         bootID: String, done: @escaping @Sendable () -> Void) {
        self.shard = shard
        self.spool = spool
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self.bootID = bootID
        self.compressor = ZstdCompressor(level: config.compressionLevel)
        self.done = done
        shard.lock.lock()
        shard.flushThreshold = config.flushEvents
        shard.lock.unlock()
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "tally-flusher-\(shard.index)"
        thread.start()
    }

    private func run() {
        while let (events, lastSeq) = nextBatch() {
            counter += 1
            let batch = StoreBatch(id: "\(config.instanceID)-\(bootID)-\(shard.index)-\(counter)",
                                   createdAt: Timestamp.now(), events: events)
            guard writeUntilDurable(batch) else {
                logger.error("shutdown deadline: dropping a batch the spool could not write", metadata: ["events": "\(events.count)"])
                continue
            }
            shard.markDurable(upTo: lastSeq)
            metrics.queueDepth[shard.index].record(shard.depth)
        }
        shard.failWaiters()
        done()
    }

    /// Blocks until a batch is due; nil once the queue is closed and empty.
    private func nextBatch() -> ([Event], UInt64)? {
        let s = shard
        s.lock.lock()
        defer { s.lock.unlock() }
        while true {
            if s.pending.isEmpty {
                if s.closed { return nil }
                s.lock.wait()
                continue
            }
            let due = s.oldestPendingAt + UInt64(config.flushIntervalMilliseconds) * 1_000_000
            let now = DispatchTime.now().uptimeNanoseconds
            if s.pending.count >= config.flushEvents || s.closed || now >= due {
                break
            }
            _ = s.lock.wait(until: Date(timeIntervalSinceNow: Double(due - now) / 1e9))
        }
        let n = min(s.pending.count, config.flushEvents)
        let events: [Event]
        if n == s.pending.count {
            events = s.pending
            s.pending.removeAll(keepingCapacity: true)
        } else {
            events = Array(s.pending[0..<n])
            s.pending.removeFirst(n)
            s.oldestPendingAt = DispatchTime.now().uptimeNanoseconds
        }
        s.takenSeq += UInt64(n)
        return (events, s.takenSeq)
    }

    /// Retries until the batch is on disk: an acknowledged event is never dropped. While it
    /// fails, this shard takes no more events, so the queue fills and producers are refused.
    /// Returns false only when the shutdown deadline passed while writes kept failing.
    private func writeUntilDurable(_ batch: StoreBatch) -> Bool {
        var delay: UInt32 = 10_000
        while true {
            // Bounded backlog: wait for the loader rather than filling the disk without limit.
            while spool.backlogFiles >= config.maxSpoolFiles && !spool.isStopping {
                usleep(2000)
            }
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let bytes = try SpoolFormat.encode(batch, compressor: compressor, scratch: &scratch)
                try spool.write(batch.id, bytes: bytes, batch: batch)
                metrics.spoolWriteSeconds.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                metrics.batchesSpooled.increment()
                metrics.eventsSpooled.increment(by: batch.events.count)
                spool.setWriteHealthy(true)
                return true
            } catch {
                if spool.isStopping { return false }
                metrics.spoolWriteErrors.increment()
                spool.setWriteHealthy(false)
                logger.error("spool write failed, retrying", metadata: ["batch": "\(batch.id)", "error": "\(error)"])
                usleep(delay)
                delay = min(delay * 2, 1_000_000)
            }
        }
    }
}
