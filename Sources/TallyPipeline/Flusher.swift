import Foundation
import Logging
import NIOCore
import TallyCore
import TallyStore

/// One thread per shard: waits for a batch (size or age), writes it to the spool durably,
/// marks its events durable, and hands the file to the loader. Blocking I/O (write, fsync)
/// lives on these threads, away from the event loops and the async runtime; every wait is on
/// a condition (the shard's for events, the spool's for backlog room), never a sleep loop.
struct Flusher: Sendable {
    let shard: Shard
    let spool: Spool
    let config: PipelineConfiguration
    let metrics: PipelineMetrics
    let logger: Logger
    let bootID: String
    let done: @Sendable () -> Void

    func start() {
        shard.lock.lock()
        shard.flushThreshold = config.flushEvents
        shard.lock.unlock()
        let thread = Thread { run() }
        thread.name = "tally-flusher-\(shard.index)"
        thread.start()
    }

    private func run() {
        // Per-thread state: zstd contexts are not thread-safe.
        let compressor = ZstdCompressor(level: config.compressionLevel)
        var scratch = ByteBuffer()
        var counter: UInt64 = 0
        while let (events, lastSeq) = nextBatch() {
            counter += 1
            let batch = StoreBatch(id: "\(config.instanceID)-\(bootID)-\(shard.index)-\(counter)",
                                   createdAt: Timestamp.now(), events: events)
            guard writeUntilDurable(batch, compressor, &scratch) else {
                logger.error("shutdown deadline: dropping a batch the spool could not write", metadata: ["events": "\(events.count)"])
                continue
            }
            shard.markDurable(upTo: lastSeq)
            metrics.queueDepth[shard.index].record(shard.depth)
        }
        shard.failWaiters()
        done()
    }

    /// Blocks until a batch is due; nil once the queue is closed and empty. Taking events out
    /// wakes the senders waiting for room.
    private func nextBatch() -> ([Event], UInt64)? {
        let s = shard
        s.lock.lock()
        while true {
            if s.pending.isEmpty {
                if s.closed {
                    s.lock.unlock()
                    return nil
                }
                s.lock.wait()
                continue
            }
            let due = s.oldestPendingAt + UInt64(config.flushInterval.nanoseconds)
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
        let taken = s.takenSeq
        let wake = s.takeSpaceWaitersLocked()
        s.lock.unlock()
        for w in wake { w() }
        return (events, taken)
    }

    /// Retries until the batch is on disk: an acknowledged event is never dropped. While it
    /// fails, this shard takes no more events, so the queue fills and producers are refused.
    /// Returns false only when the shutdown deadline passed while writes kept failing.
    private func writeUntilDurable(_ batch: StoreBatch, _ compressor: ZstdCompressor, _ scratch: inout ByteBuffer) -> Bool {
        var delay = Duration.milliseconds(10)
        while true {
            // Bounded backlog: wait for the loader rather than filling the disk without limit.
            spool.waitForBacklog(below: config.maxSpoolFiles)
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
                // Back off on the spool's condition: a stop wakes it at once.
                spool.waitUntilStopping(timeout: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }
}

extension Duration {
    /// Whole nanoseconds (saturating), for clocks that count in them.
    var nanoseconds: Int64 {
        let (s, a) = components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : ns + a / 1_000_000_000
    }
}
