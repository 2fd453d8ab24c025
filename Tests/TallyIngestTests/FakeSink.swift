import NIOConcurrencyHelpers
import TallyCore

/// An ``EventSink`` for handler tests: holds up to `capacity` events, and makes them durable
/// only when the test says so (or never), so every acknowledgement path can be driven by hand.
final class FakeSink: EventSink {
    struct State {
        var events: [Event] = []
        var capacity: Int
        /// The most events one enqueue can ever take (a queue shard's capacity).
        var maxBatch: Int
        var closed = false
        var durable = true
        var waiting: [@Sendable (Bool) -> Void] = []
        var spaceWaiters: [@Sendable () -> Void] = []
    }

    let state: NIOLockedValueBox<State>

    init(capacity: Int, maxBatch: Int? = nil) {
        state = NIOLockedValueBox(State(capacity: capacity, maxBatch: maxBatch ?? capacity))
    }

    var depth: Int { state.withLockedValue { $0.events.count } }
    var events: [Event] { state.withLockedValue { $0.events } }

    func enqueue(_ events: [Event], onDurable: DurabilityCallback?) throws(EnqueueRefusal) {
        let refusal: EnqueueRefusal? = state.withLockedValue { s in
            if s.closed { return .closed }
            if events.count > s.maxBatch { return .tooLarge }
            if s.events.count + events.count > s.capacity { return .full }
            s.events += events
            if let onDurable { s.waiting.append(onDurable) }
            return nil
        }
        if let refusal { throw refusal }
    }

    func whenSpace(for events: [Event], _ callback: @escaping @Sendable () -> Void) {
        let now: Bool = state.withLockedValue { s in
            if s.closed || events.count > s.maxBatch || s.events.count + events.count <= s.capacity { return true }
            s.spaceWaiters.append(callback)
            return false
        }
        if now { callback() }
    }

    var canMakeDurable: Bool { state.withLockedValue { $0.durable } }

    /// Reports every event so far durable (or not), as a flusher would.
    func completeDurability(_ ok: Bool = true) {
        let fire = state.withLockedValue { s in
            defer { s.waiting.removeAll() }
            return s.waiting
        }
        for f in fire { f(ok) }
    }

    /// Takes `n` events out, as a flusher would, and wakes waiting senders.
    func take(_ n: Int) {
        let fire = state.withLockedValue { s in
            s.events.removeFirst(min(n, s.events.count))
            defer { s.spaceWaiters.removeAll() }
            return s.spaceWaiters
        }
        for f in fire { f() }
    }
}
