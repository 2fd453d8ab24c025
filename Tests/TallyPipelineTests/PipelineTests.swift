import Foundation
import NIOCore
import Testing
import TallyCore
import TallyStore
import TallyTestSupport
@testable import TallyPipeline

func sampleEvents(_ n: Int, sites: Int = 3) -> [Event] {
    var out: [Event] = []
    for i in 0..<n {
        let type: String = i % 5 == 0 ? "click" : "page_view"
        let path: String? = i % 7 == 0 ? nil : "/p\(i % 11)"
        let user: String? = i % 4 == 0 ? nil : "u\(i % 13)"
        let t: Int64 = 1_763_121_600_000_000 + Int64(i) * 1_000_003
        out.append(Event(siteID: "site-\(i % sites)", eventType: type, path: path, userID: user, timestamp: t))
    }
    return out
}

func waitUntil(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition not met within \(timeout)")
}

@Suite struct SpoolFormatTests {
    @Test func roundTripsEveryField() throws {
        let events = sampleEvents(1000)
        var scratch = ByteBuffer()
        let bytes = try SpoolFormat.encode(StoreBatch(id: "inst-boot-0-1", createdAt: 99, events: events),
                                           compressor: ZstdCompressor(), scratch: &scratch)
        let back = try SpoolFormat.decode(bytes)
        #expect(back.id == "inst-boot-0-1" && back.createdAt == 99 && back.events == events)
        #expect(bytes.count < 1000 * 15, "zstd should compress repetitive events: \(bytes.count) bytes")
    }

    @Test func detectsEveryKindOfDamage() throws {
        var scratch = ByteBuffer()
        let good = try SpoolFormat.encode(StoreBatch(id: "x", createdAt: 1, events: sampleEvents(50)),
                                          compressor: ZstdCompressor(), scratch: &scratch)
        var flippedPayload = good
        flippedPayload[good.count - 3] ^= 0x40
        var flippedHeader = good
        flippedHeader[9] ^= 0x01
        let damaged: [(String, [UInt8])] = [
            ("empty", []), ("truncated header", Array(good.prefix(20))), ("torn payload", Array(good.dropLast(5))),
            ("payload bit flip", flippedPayload), ("header bit flip", flippedHeader), ("extra bytes", good + [0]),
        ]
        for (name, bytes) in damaged {
            #expect(throws: SpoolError.self, "\(name)") { try SpoolFormat.decode(bytes) }
        }
    }

    @Test func crc32cKnownAnswer() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }
}

@Suite struct QueueTests {
    @Test func fullShardRefusesWholeBatch() throws {
        let q = ShardedQueue(shards: 2, capacity: 10)
        let site = (0..<100).map { "s\($0)" }.first { q.shardIndex(for: $0) == 0 }!
        let other = (0..<100).map { "s\($0)" }.first { q.shardIndex(for: $0) == 1 }!
        func ev(_ s: String) -> Event { Event(siteID: s, eventType: "page_view", timestamp: 0) }
        try q.enqueue(Array(repeating: ev(site), count: 8))
        // Two events for the full shard plus one for the other: all refused, nothing half-queued.
        #expect(throws: EnqueueRefusal.full) { try q.enqueue([ev(other), ev(site), ev(site), ev(site)]) }
        #expect(q.depths == [8, 0])
        try q.enqueue([ev(other), ev(site), ev(site)])
        #expect(q.depths == [10, 1])
        q.close()
        #expect(throws: EnqueueRefusal.closed) { try q.enqueue([ev(other)]) }
    }

    /// A sender waiting for room is called when room is there, at once or later (here: when
    /// the queue closes, which frees every waiter to see the refusal).
    @Test func whenSpaceCallsBackNowOrWhenRoomOrCloseComes() throws {
        let q = ShardedQueue(shards: 1, capacity: 3)
        let ev = Event(siteID: "s", eventType: "page_view", timestamp: 0)
        let calls = ManagedAtomicFlag()
        q.whenSpace(for: [ev, ev]) { calls.set(true) }
        #expect(calls.value)
        try q.enqueue([ev, ev])
        let later = ManagedAtomicFlag()
        q.whenSpace(for: [ev, ev]) { later.set(true) }
        #expect(!later.value)
        q.close()
        #expect(later.value)
    }

    /// More events for one shard than it can ever hold: refused for good, and a waiter is
    /// told at once (its retry then gets the refusal) instead of waiting forever.
    @Test func eventsThatCanNeverFitAreRefusedForGood() throws {
        let q = ShardedQueue(shards: 1, capacity: 3)
        let four = [Event](repeating: Event(siteID: "s", eventType: "page_view", timestamp: 0), count: 4)
        #expect(throws: EnqueueRefusal.tooLarge) { try q.enqueue(four) }
        let called = ManagedAtomicFlag()
        q.whenSpace(for: four) { called.set(true) }
        #expect(called.value)
    }

    @Test func shardingIsStable() {
        let q = ShardedQueue(shards: 4, capacity: 1)
        // FNV-1a of "demo-site" mod 4 must not change between releases (spool ordering relies on it).
        #expect(q.shardIndex(for: "demo-site") == q.shardIndex(for: "demo-site"))
        #expect(Set((0..<64).map { q.shardIndex(for: "site-\($0)") }).count == 4)
    }
}

@Suite struct PipelineFlowTests {
    func makePipeline(_ dir: String, store: any EventStore, flushEvents: Int = 100, queueCapacity: Int = 10_000) throws -> Pipeline {
        try Pipeline(configuration: PipelineConfiguration(spoolDirectory: dir + "/spool", shards: 2, queueCapacity: queueCapacity,
                                                          flushEvents: flushEvents, flushInterval: .milliseconds(20),
                                                          maxSpoolFiles: 512, instanceID: "test"), store: store)
    }

    @Test func eventsFlowIntoTheStoreAndDurabilityIsSignalled() async throws {
        try await withTempDir { dir in
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            let p = try makePipeline(dir, store: store)
            p.start()
            let events = sampleEvents(2500)
            let durable = ManagedAtomicFlag()
            try p.queue.enqueue(Array(events[0..<1000]))
            try p.queue.enqueue(Array(events[1000...])) { ok in durable.set(ok) }
            try await waitUntil { durable.value }
            try await waitUntil { try await store.eventCount() == 2500 }
            await p.drain()
            #expect(FileOps.list(dir + "/spool", suffix: ".batch").isEmpty)
            let views = events.filter { $0.isPageView && $0.siteID == "site-1" }.count
            #expect(try await store.stats(siteID: "site-1", day: nil, limit: 1).totalViews == Int64(views))
            try await store.close()
        }
    }

    /// A full queue wakes a waiting sender when a flusher takes a batch out, without polling.
    @Test func flushersWakeSendersWaitingForRoom() async throws {
        try await withTempDir { dir in
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            let p = try makePipeline(dir, store: store, flushEvents: 5, queueCapacity: 5)
            let site = [Event](repeating: Event(siteID: "one", eventType: "page_view", timestamp: 1), count: 5)
            try p.enqueue(site)
            #expect(throws: EnqueueRefusal.full) { try p.enqueue(site) }
            let woken = ManagedAtomicFlag()
            p.whenSpace(for: site) { woken.set(true) }
            #expect(!woken.value)
            p.start()
            try await waitUntil { woken.value }
            try p.enqueue(site)
            await p.drain()
            #expect(try await store.eventCount() == 10)
            try await store.close()
        }
    }

    @Test func drainLoadsEverythingQueued() async throws {
        try await withTempDir { dir in
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            let p = try makePipeline(dir, store: store, flushEvents: 10_000)
            p.start()
            try p.queue.enqueue(sampleEvents(777))
            await p.drain()
            #expect(try await store.eventCount() == 777)
            try await store.close()
        }
    }

    @Test func recoversSpoolFilesAtStartExactlyOnceAndQuarantinesCorruptOnes() async throws {
        try await withTempDir { dir in
            let spoolDir = dir + "/spool"
            let store = SQLiteStore(path: dir + "/t.sqlite")
            try await store.prepare()
            // A crash after the spool write, before the load: the file is there, not in the store.
            let spool = try Spool(directory: spoolDir)
            var scratch = ByteBuffer()
            let c = ZstdCompressor()
            try spool.write("crashed-a", bytes: SpoolFormat.encode(StoreBatch(id: "crashed-a", createdAt: 1, events: sampleEvents(30)), compressor: c, scratch: &scratch))
            // A crash after the load committed, before the file was removed: must not load twice.
            let loadedTwice = StoreBatch(id: "crashed-b", createdAt: 1, events: sampleEvents(20))
            #expect(try await store.load(loadedTwice) == .loaded)
            try spool.write("crashed-b", bytes: SpoolFormat.encode(loadedTwice, compressor: c, scratch: &scratch))
            // A torn file (disk error) and a half-written temp file.
            try Data([0x54, 0x4C, 0x53, 0x50, 1, 0]).write(to: URL(fileURLWithPath: spoolDir + "/torn.batch"))
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: spoolDir + "/tmp/partial.tmp"))

            let p = try makePipeline(dir, store: store)
            #expect(!FileManager.default.fileExists(atPath: spoolDir + "/tmp/partial.tmp"))
            p.start()
            try await waitUntil { p.status.spoolBacklogFiles == 0 }
            #expect(try await store.eventCount() == 50)
            #expect(FileOps.list(spoolDir, suffix: ".batch").isEmpty)
            #expect(FileOps.list(spoolDir + "/quarantine", suffix: ".batch") == ["torn.batch"])
            #expect(p.status.quarantinedFiles == 1)
            await p.drain()
            try await store.close()
        }
    }
}

final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    func set(_ x: Bool) { lock.lock(); v = x; lock.unlock() }
    var value: Bool { lock.lock(); defer { lock.unlock() }; return v }
}
