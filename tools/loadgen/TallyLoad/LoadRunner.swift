import Foundation
import Histogram
import NIOCore
import NIOPosix
import TallyClient
import TallyCore
import TallyWire

/// The ways tally-load can send events.
public enum LoadMode: String, Sendable, CaseIterable {
    case http, httpBatch = "http-batch", udp, tcp, tcpAck = "tcp-ack"
}

public struct LoadOptions: Sendable {
    public var mode: LoadMode = .http
    public var httpHost = "127.0.0.1"
    public var httpPort = 8080
    public var wireHost = "127.0.0.1"
    public var wirePort = 7070
    /// Stop after this many events (when `duration` is nil).
    public var events: Int = 100_000
    /// Stop after this many seconds instead of a count.
    public var duration: Double?
    /// Target events/s over all connections; 0 = as fast as possible.
    public var rate: Double = 0
    public var connections: Int = 8
    /// Events per request/datagram/frame in batch modes.
    public var batch: Int = 100
    /// Frames in flight per connection in tcp-ack mode.
    public var window: Int = 16
    public var shape = DataShape()
    public var seed: UInt64 = 1
    public var verify = false
    public var verifyTimeout: Double = 60
    /// HTTP modes: browser-like requests (User-Agent, Origin, a referrer per event).
    public var browser = false
    /// Write keys by site id: each HTTP request carries its site's key (`Authorization:
    /// Bearer`), and a batch the key of its first event's site, so keyed batches need
    /// `sites = 1`. Over the wire, each TCP connection sends an AUTH frame per key first (at
    /// most 16), and each UDP datagram for a keyed site starts with its AUTH frame.
    public var siteKeys: [String: String] = [:]

    public init() {}

    var eventsPerOp: Int { mode == .http ? 1 : max(1, batch) }

    /// The keys of the sites this run sends to, in site order: what a TCP connection
    /// authenticates with (a connection holds keys for at most 16 sites).
    public var wireKeys: [String] { (0..<shape.sites).compactMap { siteKeys[shape.siteID($0)] } }
}

/// What a run measured.
public struct LoadResult: Sendable {
    public var mode: LoadMode
    public var sentEvents = 0
    public var acceptedEvents = 0
    public var errors: [String: Int] = [:]
    public var elapsed: Double = 0
    /// Latency per operation (request, datagram, frame batch) in microseconds.
    public var latency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    public var ledger = Ledger()
    public var verification: VerifyOutcome?
    /// How often each pre-built operation was accepted (one worker's, before merging).
    var acceptedOps: [Int] = []

    public var acceptedPerSecond: Double { elapsed > 0 ? Double(acceptedEvents) / elapsed : 0 }
    public var sentPerSecond: Double { elapsed > 0 ? Double(sentEvents) / elapsed : 0 }

    public mutating func merge(_ o: LoadResult) {
        sentEvents += o.sentEvents
        acceptedEvents += o.acceptedEvents
        for (k, v) in o.errors { errors[k, default: 0] += v }
        latency.add(o.latency)
        ledger.merge(o.ledger)
    }
}

public struct VerifyOutcome: Sendable {
    public var exact: Bool
    public var problems: [String]
    /// Views accepted but missing from /stats (UDP loss), over all sites.
    public var missingViews: Int64
    /// Seconds from the end of sending until /stats matched (or the timeout).
    public var queryableAfter: Double
}

public enum LoadRunner {
    public static func run(_ o: LoadOptions) async throws -> LoadResult {
        let clock = ContinuousClock()
        let perWorker = o.events / o.connections
        let remainder = o.events % o.connections
        let now = Timestamp.now()
        // Payloads first, off the clock: the measurement covers sending only.
        let quotas = (0..<o.connections).map { w in o.duration == nil ? perWorker + (w < remainder ? 1 : 0) : Int.max }
        let plans = await withTaskGroup(of: (Int, [Op]).self) { group in
            for w in 0..<o.connections {
                group.addTask {
                    var factory = EventFactory(shape: o.shape, seed: o.seed &* 1_000_003 &+ UInt64(w), now: now)
                    return (w, Worker.buildOps(o, quota: quotas[w], factory: &factory))
                }
            }
            var plans = [[Op]](repeating: [], count: o.connections)
            for await (w, ops) in group { plans[w] = ops }
            return plans
        }
        let start = clock.now
        let deadline = o.duration.map { start + .milliseconds(Int($0 * 1000)) }
        var total = LoadResult(mode: o.mode)
        var workerOutcomes: [(Int, [Int])] = []
        let loops = MultiThreadedEventLoopGroup.singleton
        try await withThrowingTaskGroup(of: (Int, LoadResult).self) { group in
            for w in 0..<o.connections {
                let ops = plans[w]
                let quota = quotas[w]
                let loop = loops.next()
                group.addTask(executorPreference: EventLoopTaskExecutor(loop)) {
                    let worker = Worker(options: o, index: w, loop: loop, start: start, deadline: deadline)
                    return (w, try await worker.run(ops: ops, cycle: quota == Int.max))
                }
            }
            for try await (w, r) in group {
                workerOutcomes.append((w, r.acceptedOps))
                total.merge(r)
            }
        }
        total.elapsed = (clock.now - start).seconds
        // The expected /stats, tallied after the clock stopped.
        for (w, accepted) in workerOutcomes {
            for (i, times) in accepted.enumerated() where times > 0 {
                for _ in 0..<times { for e in plans[w][i].events { total.ledger.add(e) } }
            }
        }
        if o.verify {
            total.verification = try await verify(o, total)
        }
        return total
    }

    /// Waits for the server at `o.httpHost:o.httpPort` to drain, then compares /stats of every
    /// site in `r.ledger` with it.
    public static func verify(_ o: LoadOptions, _ r: LoadResult) async throws -> VerifyOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        let http = try await HTTPClientConnection.connect(host: o.httpHost, port: o.httpPort)
        defer { Task { await http.close() } }
        let limit = 1000
        var problems: [String] = ["not checked"]
        var missing: Int64 = 0
        var drained = false
        while (clock.now - start).seconds < o.verifyTimeout {
            if !drained {
                let h = try await http.get("/health")
                if let j = try? JSONSerialization.jsonObject(with: Data(h.body.utf8)) as? [String: Any],
                   j["queue_depth"] as? Int == 0, j["spool_backlog_files"] as? Int == 0, j["idle"] as? Bool != false {
                    drained = true
                }
            }
            problems = []
            missing = 0
            for (site, expected) in r.ledger.sites.sorted(by: { $0.key < $1.key }) {
                let resp = try await http.get("/stats?site_id=\(site)&limit=\(limit)")
                // An error answer (a store timing out on a loaded machine) is a problem to
                // report if it lasts, not a reason to stop checking.
                guard resp.status == 200 else {
                    problems.append("\(site): /stats answered \(resp.status): \(resp.body.prefix(300))")
                    missing += expected.views
                    continue
                }
                let answer = try JSONDecoder().decode(StatsAnswer.self, from: Data(resp.body.utf8))
                problems += Verification.compare(expected, answer, limit: limit)
                missing += max(0, expected.views - answer.total_views)
            }
            if problems.isEmpty { break }
            // UDP and plain TCP have no acks: once drained, what is missing is lost.
            if drained && (o.mode == .udp || o.mode == .tcp) { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        return VerifyOutcome(exact: problems.isEmpty, problems: problems, missingViews: missing,
                             queryableAfter: (clock.now - start).seconds)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// One pre-built operation: a whole HTTP request, or a datagram or frames, and the events it carries.
struct Op: Sendable {
    var events: [Event]
    /// The datagram or frames (UDP, TCP).
    var payload: ByteBuffer
    /// The whole request (HTTP).
    var request: PreEncodedRequest?
}

/// One connection's closed (or fixed-rate) loop. Payloads are built before the clock starts
/// and accepted events are tallied after it stops, so the generator spends its CPU on sending:
/// it shares the machine with the server.
struct Worker {
    let options: LoadOptions
    let index: Int
    /// The loop the connection and this worker's task run on (see ``EventLoopTaskExecutor``).
    let loop: any EventLoop
    let start: ContinuousClock.Instant
    let deadline: ContinuousClock.Instant?

    /// Distinct operations built up front; a --duration run cycles through them.
    static let poolSize = 4096

    static func buildOps(_ options: LoadOptions, quota: Int, factory: inout EventFactory) -> [Op] {
        let perOp = options.eventsPerOp
        let count = quota == Int.max ? Self.poolSize : (quota + perOp - 1) / perOp
        var ops: [Op] = []
        ops.reserveCapacity(count)
        var remaining = quota
        for _ in 0..<count {
            let n = min(perOp, remaining)
            remaining -= n
            var b = ByteBuffer()
            var request: PreEncodedRequest?
            var events: [Event] = []
            events.reserveCapacity(n)
            switch options.mode {
            case .http, .httpBatch:
                for _ in 0..<n {
                    var e = factory.next()
                    if options.browser { e.referrer = EventFactory.browserReferrer }
                    events.append(e)
                }
                let body = options.mode == .http ? EventFactory.json(events[0])
                    : "[" + events.map(EventFactory.json).joined(separator: ",") + "]"
                // The whole request, so sending costs no encoding.
                var headers = options.browser ? EventFactory.browserHeaders : []
                if let key = options.siteKeys[events[0].siteID] { headers.append(("Authorization", "Bearer " + key)) }
                request = HTTPClientConnection.encode(.POST, options.mode == .http ? "/event" : "/events",
                                                      host: options.httpHost, body: ByteBuffer(string: body), headers: headers)
            case .udp, .tcp, .tcpAck:
                // One site per frame, as an edge proxy batching per site would send.
                let site = factory.nextSite()
                for _ in 0..<n { events.append(factory.next(site: site)) }
                if options.mode == .udp, let key = options.siteKeys[factory.shape.siteID(site)] { FrameEncoder.writeAuth(key: key, into: &b) }
                for f in FrameEncoder.frames(for: events, maxEvents: n) {
                    var f = f
                    f.ackRequested = options.mode == .tcpAck
                    FrameEncoder.writeEvents(f, into: &b)
                }
            }
            ops.append(Op(events: events, payload: b, request: request))
        }
        return ops
    }

    /// Sends `ops` once each, or round and round until the deadline when `cycle`.
    func run(ops: [Op], cycle: Bool) async throws -> LoadResult {
        var result = LoadResult(mode: options.mode)
        var acceptedTimes = [Int](repeating: 0, count: ops.count)
        let clock = ContinuousClock()
        let perOp = options.eventsPerOp
        // Fixed rate: the k-th operation is due at start + k * interval; latency counts from
        // then, so a stall delays the schedule's clock, not just the one request.
        let interval: Duration? = options.rate > 0
            ? .nanoseconds(Int64(Double(perOp * options.connections) / options.rate * 1e9)) : nil

        var http: HTTPClientConnection?
        var udp: WireUDPClient?
        var tcp: WireTCPClient?
        switch options.mode {
        case .http, .httpBatch: http = try await HTTPClientConnection.connect(host: options.httpHost, port: options.httpPort, group: loop)
        case .udp: udp = try await WireUDPClient.connect(host: options.wireHost, port: options.wirePort, group: loop)
        case .tcp, .tcpAck:
            tcp = try await WireTCPClient.connect(host: options.wireHost, port: options.wirePort, group: loop)
            for key in options.wireKeys { try await tcp!.authenticate(key: key) }
        }
        var sequence: UInt64 = 0
        var inflight: [(seq: UInt64, due: ContinuousClock.Instant, op: Int)] = []

        func record(_ due: ContinuousClock.Instant, _ result: inout LoadResult) {
            let us = (clock.now - due).seconds * 1e6
            _ = result.latency.record(UInt64(max(1, us)))
        }

        var k = 0
        while !ops.isEmpty && (cycle || k < ops.count) {
            if let deadline, clock.now >= deadline { break }
            // Another worker failed: stop rather than run to the end.
            try Task.checkCancellation()
            let i = k % ops.count
            let op = ops[i]
            var due = clock.now
            if let interval {
                due = start + interval * k
                try await loop.sleep(until: due)
            }
            k += 1
            result.sentEvents += op.events.count
            do {
                switch options.mode {
                case .http, .httpBatch:
                    let r = try await http!.request(op.request!)
                    if r.status == 202 {
                        acceptedTimes[i] += 1
                    } else {
                        result.errors["HTTP \(r.status)", default: 0] += 1
                    }
                    record(due, &result)
                case .udp:
                    try await udp!.send(op.payload)
                    acceptedTimes[i] += 1
                    record(due, &result)
                case .tcp:
                    try await tcp!.send(op.payload)
                    acceptedTimes[i] += 1
                    record(due, &result)
                case .tcpAck:
                    sequence += 1
                    var payload = op.payload
                    // Frame header (8 bytes), then flags (1), then the u64 sequence.
                    payload.setInteger(sequence, at: payload.readerIndex + 9)
                    try await tcp!.send(payload)
                    inflight.append((sequence, due, i))
                    if inflight.count >= options.window {
                        let first = inflight.removeFirst()
                        try await tcp!.waitForAck(first.seq)
                        acceptedTimes[first.op] += 1
                        record(first.due, &result)
                    }
                }
            } catch {
                result.errors["connection: \(error)".prefix(80).description, default: 0] += 1
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        for f in inflight {
            do {
                try await tcp!.waitForAck(f.seq)
                acceptedTimes[f.op] += 1
                record(f.due, &result)
            } catch {
                result.errors["ack: \(error)".prefix(80).description, default: 0] += 1
            }
        }
        await http?.close()
        await udp?.close()
        await tcp?.close()
        for (i, times) in acceptedTimes.enumerated() where times > 0 {
            result.acceptedEvents += ops[i].events.count * times
        }
        result.acceptedOps = acceptedTimes
        return result
    }
}
