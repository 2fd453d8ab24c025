/// Called once the events it was registered for are durable (`true`), or when they can no
/// longer become durable in this process (`false`: the server is stopping).
public typealias DurabilityCallback = @Sendable (Bool) -> Void

/// Why a sink refused events. Nothing of a refused call was taken.
public enum EnqueueRefusal: Error, Sendable, Equatable {
    /// No room now: push back on the sender (503, TCP backpressure), or wait with
    /// ``EventSink/whenSpace(for:_:)``.
    case full
    /// The sink is shutting down and takes nothing more.
    case closed
    /// These events can never be taken at once (more of one site's events than a queue shard
    /// holds): send them in smaller parts.
    case tooLarge
}

/// Where every transport hands its validated events: "take these, and tell me when they are
/// durable". Ingest depends on this protocol only, not on the queue, spool or store behind it
/// (the pipeline conforms; tests use a fake).
///
/// Invariant: `enqueue` takes all of `events` or none, never blocks, and never calls
/// `onDurable` before it returns (except for an empty `events`, durable at once).
public protocol EventSink: Sendable {
    /// Takes all events or none. `onDurable`, when given, is called once (from any thread)
    /// when every one of them is durable, or can no longer become durable.
    func enqueue(_ events: [Event], onDurable: DurabilityCallback?) throws(EnqueueRefusal)

    /// Calls `callback` once (from any thread) when an `enqueue` of `events` that was refused
    /// with ``EnqueueRefusal/full`` may now succeed, or when the sink closed; at once when that
    /// is already so, or when they can never fit (the retry then says ``EnqueueRefusal/tooLarge``).
    /// Lets a sender that must not drop events (TCP) wait without polling.
    func whenSpace(for events: [Event], _ callback: @escaping @Sendable () -> Void)

    /// Whether durable acknowledgements can be given now (false while the spool cannot write).
    var canMakeDurable: Bool { get }
}

extension EventSink {
    public func enqueue(_ events: [Event]) throws(EnqueueRefusal) {
        try enqueue(events, onDurable: nil)
    }
}
