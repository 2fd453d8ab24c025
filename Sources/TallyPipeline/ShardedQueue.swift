import Foundation
import NIOConcurrencyHelpers
import TallyCore

/// A bounded in-memory queue split into shards by site, so one hot site cannot stall the
/// others' flushers and producers rarely contend on one lock.
public final class ShardedQueue: Sendable {
    let shards: [Shard]

    public init(shards: Int, capacity: Int) {
        precondition(shards > 0 && capacity > 0)
        self.shards = (0..<shards).map { Shard(index: $0, capacity: capacity) }
    }

    /// Stable across processes (FNV-1a), so a site maps to the same shard after a restart.
    public func shardIndex(for siteID: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in siteID.utf8 {
            h ^= UInt64(b)
            h &*= 0x100_0000_01b3
        }
        return Int(h % UInt64(shards.count))
    }

    /// Enqueues all events or none. `onDurable`, when given, is called once every one of them
    /// is durable in the spool.
    public func enqueue(_ events: [Event], onDurable: DurabilityCallback? = nil) throws(EnqueueRefusal) {
        guard !events.isEmpty else {
            onDurable?(true)
            return
        }
        let first = shardIndex(for: events[0].siteID)
        if events.allSatisfy({ $0.siteID.utf8Equals(events[0].siteID) }) {
            if events.count > shards[first].capacity { throw .tooLarge }
            try shards[first].append(events, onDurable: onDurable)
            return
        }
        var groups: [Int: [Event]] = [:]
        for e in events { groups[shardIndex(for: e.siteID), default: []].append(e) }
        let order = groups.keys.sorted()
        if order.contains(where: { groups[$0]!.count > shards[$0].capacity }) { throw .tooLarge }
        let join = onDurable.map { DurabilityJoin(count: order.count, done: $0) }
        // Lock the shards in index order (no deadlock), check every capacity, then append.
        for i in order { shards[i].lock.lock() }
        defer { for i in order { shards[i].lock.unlock() } }
        for i in order {
            if shards[i].closed { throw .closed }
            if shards[i].pending.count + groups[i]!.count > shards[i].capacity { throw .full }
        }
        for i in order {
            var callback: DurabilityCallback?
            if let join { callback = { join.arrive($0) } }
            shards[i].appendLocked(groups[i]!, onDurable: callback)
        }
    }

    /// Calls `callback` once every shard these events go to has room for them, or the queue
    /// closed. Waiters sit on the first shard short of room and are woken by its flusher when it
    /// takes a batch out; a waiter woken while another shard is still full simply waits again.
    public func whenSpace(for events: [Event], _ callback: @escaping @Sendable () -> Void) {
        var counts: [Int: Int] = [:]
        for e in events { counts[shardIndex(for: e.siteID), default: 0] += 1 }
        for i in counts.keys.sorted() where !shards[i].waitForSpace(counts[i]!, callback) { return }
        callback()
    }

    /// Events waiting in memory, per shard.
    public var depths: [Int] { shards.map { $0.depth } }

    public var capacityPerShard: Int { shards[0].capacity }

    /// Refuses further events and wakes the flushers so they drain what is queued.
    public func close() {
        for s in shards { s.close() }
    }
}

/// Fires `done` once after `count` arrivals; false wins over true.
final class DurabilityJoin: Sendable {
    private let state: NIOLockedValueBox<(remaining: Int, ok: Bool)>
    private let done: DurabilityCallback

    init(count: Int, done: @escaping DurabilityCallback) {
        state = NIOLockedValueBox((count, true))
        self.done = done
    }

    func arrive(_ success: Bool) {
        let result: Bool? = state.withLockedValue { s in
            s.ok = s.ok && success
            s.remaining -= 1
            return s.remaining == 0 ? s.ok : nil
        }
        if let result { done(result) }
    }
}

/// One shard: a bounded buffer the flusher thread takes batches from, plus the durability
/// waiters of its events and the senders waiting for room. Sequence numbers count events ever
/// appended to this shard.
final class Shard: @unchecked Sendable {
    let index: Int
    let capacity: Int
    let lock = NSCondition()
    // Everything below is guarded by `lock`.
    var pending: [Event] = []
    var closed = false
    /// Sequence number of the last event appended.
    var appendedSeq: UInt64 = 0
    /// Sequence number of the last event taken by the flusher.
    var takenSeq: UInt64 = 0
    /// Sequence number of the last event known durable.
    var durableSeq: UInt64 = 0
    /// When the oldest pending event arrived (monotonic ns), for the flush-age deadline.
    var oldestPendingAt: UInt64 = 0
    /// Waiters in sequence order (they are registered under the lock as events are appended).
    var waiters: [(seq: UInt64, callback: DurabilityCallback)] = []
    var flushThreshold = Int.max
    /// Senders waiting until `needed` events fit (see ``ShardedQueue/whenSpace(for:_:)``).
    var spaceWaiters: [(needed: Int, callback: @Sendable () -> Void)] = []

    init(index: Int, capacity: Int) {
        self.index = index
        self.capacity = capacity
        pending.reserveCapacity(min(capacity, 1 << 16))
    }

    var depth: Int {
        lock.lock()
        defer { lock.unlock() }
        return pending.count
    }

    func append(_ events: [Event], onDurable: DurabilityCallback?) throws(EnqueueRefusal) {
        lock.lock()
        defer { lock.unlock() }
        if closed { throw .closed }
        if pending.count + events.count > capacity { throw .full }
        appendLocked(events, onDurable: onDurable)
    }

    func appendLocked(_ events: [Event], onDurable: DurabilityCallback?) {
        if pending.isEmpty { oldestPendingAt = DispatchTime.now().uptimeNanoseconds }
        pending += events
        appendedSeq += UInt64(events.count)
        if let onDurable { waiters.append((appendedSeq, onDurable)) }
        // Wake the flusher when a batch is ready or this is the first event (it starts the age clock).
        if pending.count >= flushThreshold || pending.count == events.count { lock.signal() }
    }

    func close() {
        lock.lock()
        closed = true
        lock.broadcast()
        let fire = spaceWaiters.map(\.callback)
        spaceWaiters.removeAll()
        lock.unlock()
        for f in fire { f() }
    }

    /// Registers `callback` for when `needed` more events fit; false when it was registered,
    /// true when they fit already (or the shard is closed) and the caller should go on.
    func waitForSpace(_ needed: Int, _ callback: @escaping @Sendable () -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if closed || needed > capacity || pending.count + needed <= capacity { return true }
        spaceWaiters.append((needed, callback))
        return false
    }

    /// Wakes the senders whose events fit now; called with the lock held, right after the
    /// flusher took events out. Returns the callbacks to run once the lock is released.
    func takeSpaceWaitersLocked() -> [@Sendable () -> Void] {
        guard !spaceWaiters.isEmpty else { return [] }
        var room = capacity - pending.count
        var fire: [@Sendable () -> Void] = []
        while let first = spaceWaiters.first, first.needed <= room || pending.isEmpty {
            room -= first.needed
            fire.append(first.callback)
            spaceWaiters.removeFirst()
        }
        return fire
    }

    /// Marks everything up to `seq` durable and runs the waiters that covers, outside the lock.
    func markDurable(upTo seq: UInt64) {
        lock.lock()
        durableSeq = max(durableSeq, seq)
        var ready = 0
        while ready < waiters.count, waiters[ready].seq <= durableSeq { ready += 1 }
        let fire = waiters[0..<ready].map(\.callback)
        waiters.removeFirst(ready)
        lock.unlock()
        for f in fire { f(true) }
    }

    /// Fails every remaining waiter (their events were not made durable before exit).
    func failWaiters() {
        lock.lock()
        let fire = waiters.map(\.callback)
        waiters.removeAll()
        lock.unlock()
        for f in fire { f(false) }
    }
}
