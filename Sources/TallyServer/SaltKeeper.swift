import Logging
import ServiceLifecycle
import TallyCore
import TallyEnrich
import TallyStore

/// Keeps the daily salts of visitor ids in step with the store: today's (and, in the last hour
/// of a UTC day, tomorrow's) salt is the store's, offered from here when it has none, so every
/// collector sharing a PostgreSQL store hashes a visitor the same way. Salts older than
/// yesterday are dropped from memory and from the store. If the store cannot be reached, the
/// enricher makes a salt of its own for the day and it is offered again on the next round.
struct SaltKeeper: Service {
    let store: any EventStore
    let enricher: Enricher
    let logger: Logger
    static let interval = Duration.seconds(300)

    /// One round: fetch or set the salts needed now.
    func sync(now: Int64 = Timestamp.now()) async {
        let today = UTCDay(containing: now)
        let yesterday = UTCDay(number: today.number - 1)
        var days = [today]
        if now % 86_400_000_000 >= 23 * 3_600_000_000 { days.append(UTCDay(number: today.number + 1)) }
        for day in days {
            let mine = enricher.salts.bytes(for: day) ?? enricher.salts.key(for: day).withUnsafeBytes { Array($0) }
            do {
                let stored = try await store.visitorSalt(for: day, proposed: mine, keepFrom: yesterday)
                if stored != mine { enricher.salts.set(stored, for: day) }
            } catch {
                logger.warning("visitor salt not shared through the store yet; using this collector's own for now",
                               metadata: ["day": "\(day)", "error": "\(error)"])
            }
        }
        enricher.forget(before: yesterday)
    }

    /// The first round runs in `TallyServer.init`, before any listener takes an event.
    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // Wakes early on shutdown (cancellation ends the sleep).
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            if Task.isShuttingDownGracefully { return }
            await sync()
        }
    }
}
