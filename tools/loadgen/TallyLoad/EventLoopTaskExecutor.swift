import NIOCore

/// Runs a worker's task on the event loop its connection lives on.
///
/// A fixed-rate worker otherwise wakes on Swift's global executor, hops to the event loop to
/// write, and hops back for the response: two cross-thread wake-ups per request, which on a
/// small VM cost more than the server's own work and blur the latency being measured.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

extension EventLoop {
    /// Sleeps until `instant` on this loop's own timer, so the task resumes on this loop.
    func sleep(until instant: ContinuousClock.Instant) async throws {
        let wait = ContinuousClock.now.duration(to: instant)
        guard wait > .zero else { return }
        try await scheduleTask(in: TimeAmount(wait)) {}.futureResult.get()
    }
}
