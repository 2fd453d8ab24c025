import Foundation
import Histogram
import NIOCore
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

    public init() {}

    var eventsPerOp: Int { mode == .http ? 1 : max(1, batch) }
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

    public var acceptedPerSecond: Double { elapsed > 0 ? Double(acceptedEvents) / elapsed : 0 }
    public var sentPerSecond: Double { elapsed > 0 ? Double(sentEvents) / elapsed : 0 }

    mutating func merge(_ o: LoadResult) {
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
        let start = clock.now
        let deadline = o.duration.map { start + .milliseconds(Int($0 * 1000)) }
        let perWorker = o.events / o.connections
        let remainder = o.events % o.connections
        let now = Timestamp.now()
        var total = LoadResult(mode: o.mode)
        try await withThrowingTaskGroup(of: LoadResult.self) { group in
            for w in 0..<o.connections {
                let quota = o.duration == nil ? perWorker + (w < remainder ? 1 : 0) : Int.max
                group.addTask {
                    var factory = EventFactory(shape: o.shape, seed: o.seed &* 1_000_003 &+ UInt64(w), now: now)
                    return try await Worker(options: o, index: w, start: start, deadline: deadline).run(quota: quota, factory: &factory)
                }
            }
            for try await r in group { total.merge(r) }
        }
        total.elapsed = (clock.now - start).seconds
        if o.verify {
            total.verification = try await verify(o, total)
        }
        return total
    }

    /// Waits for the server to drain, then compares /stats of every site with the ledger.
    static func verify(_ o: LoadOptions, _ r: LoadResult) async throws -> VerifyOutcome {
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
                   j["queue_depth"] as? Int == 0, j["spool_backlog_files"] as? Int == 0 {
                    drained = true
                }
            }
            problems = []
            missing = 0
            for (site, expected) in r.ledger.sites.sorted(by: { $0.key < $1.key }) {
                let resp = try await http.get("/stats?site_id=\(site)&limit=\(limit)")
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

/// One connection's closed (or fixed-rate) loop.
struct Worker {
    let options: LoadOptions
    let index: Int
    let start: ContinuousClock.Instant
    let deadline: ContinuousClock.Instant?

    func run(quota: Int, factory: inout EventFactory) async throws -> LoadResult {
        var result = LoadResult(mode: options.mode)
        let clock = ContinuousClock()
        let perOp = options.eventsPerOp
        // Fixed rate: the k-th operation is due at start + k * interval; latency counts from
        // then, so a stall delays the schedule's clock, not just the one request.
        let interval: Duration? = options.rate > 0
            ? .nanoseconds(Int64(Double(perOp * options.connections) / options.rate * 1e9)) : nil
        var op = 0
        var sent = 0

        var http: HTTPClientConnection?
        var udp: WireUDPClient?
        var tcp: WireTCPClient?
        switch options.mode {
        case .http, .httpBatch: http = try await HTTPClientConnection.connect(host: options.httpHost, port: options.httpPort)
        case .udp: udp = try await WireUDPClient.connect(host: options.wireHost, port: options.wirePort)
        case .tcp, .tcpAck: tcp = try await WireTCPClient.connect(host: options.wireHost, port: options.wirePort)
        }
        var sequence: UInt64 = 0
        var inflight: [(seq: UInt64, due: ContinuousClock.Instant, events: [Event])] = []

        func record(_ due: ContinuousClock.Instant, _ result: inout LoadResult) {
            let us = (clock.now - due).seconds * 1e6
            _ = result.latency.record(UInt64(max(1, us)))
        }

        while sent < quota {
            if let deadline, clock.now >= deadline { break }
            let n = min(perOp, quota - sent)
            var events: [Event] = []
            events.reserveCapacity(n)
            for _ in 0..<n { events.append(factory.next()) }
            var due = clock.now
            if let interval {
                due = start + interval * op
                if due > clock.now { try await Task.sleep(until: due, clock: clock) }
            }
            op += 1
            sent += n
            result.sentEvents += n
            do {
                switch options.mode {
                case .http:
                    let r = try await http!.post("/event", EventFactory.json(events[0]))
                    accept(r.status, events, &result)
                    record(due, &result)
                case .httpBatch:
                    let body = "[" + events.map(EventFactory.json).joined(separator: ",") + "]"
                    let r = try await http!.post("/events", body)
                    accept(r.status, events, &result)
                    record(due, &result)
                case .udp:
                    var b = ByteBuffer()
                    for f in FrameEncoder.frames(for: events.sorted { $0.siteID < $1.siteID }) { FrameEncoder.writeEvents(f, into: &b) }
                    try await udp!.send(b)
                    for e in events { result.ledger.add(e) }
                    result.acceptedEvents += n
                    record(due, &result)
                case .tcp, .tcpAck:
                    let ack = options.mode == .tcpAck
                    var b = ByteBuffer()
                    let frames = FrameEncoder.frames(for: events.sorted { $0.siteID < $1.siteID })
                    for var f in frames {
                        sequence += 1
                        f.sequence = sequence
                        f.ackRequested = ack
                        FrameEncoder.writeEvents(f, into: &b)
                    }
                    try await tcp!.send(b)
                    if ack {
                        inflight.append((sequence, due, events))
                        if inflight.count >= options.window {
                            let first = inflight.removeFirst()
                            try await tcp!.waitForAck(first.seq)
                            for e in first.events { result.ledger.add(e) }
                            result.acceptedEvents += first.events.count
                            record(first.due, &result)
                        }
                    } else {
                        for e in events { result.ledger.add(e) }
                        result.acceptedEvents += n
                        record(due, &result)
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
                for e in f.events { result.ledger.add(e) }
                result.acceptedEvents += f.events.count
                record(f.due, &result)
            } catch {
                result.errors["ack: \(error)".prefix(80).description, default: 0] += 1
            }
        }
        await http?.close()
        await udp?.close()
        await tcp?.close()
        return result
    }

    func accept(_ status: Int, _ events: [Event], _ result: inout LoadResult) {
        if status == 202 {
            result.acceptedEvents += events.count
            for e in events { result.ledger.add(e) }
        } else {
            result.errors["HTTP \(status)", default: 0] += 1
        }
    }
}
