import Logging
import ServiceLifecycle
import TallyCore
import TallySites
import TallyStore

/// Keeps the site rules in force in step with the registry in the store: every ``interval`` it
/// reads the registry's version (one small query) and, when it moved, the whole registry. A
/// change made by the CLI, or by another collector sharing a PostgreSQL store, is in force
/// here within ``interval`` plus one query. If the store cannot be reached, the rules last
/// read stay in force.
struct RegistryWatcher: Service {
    let store: any SiteRegistryStore
    let source: SiteRulesSource
    let closed: Bool
    let logger: Logger
    static let interval = Duration.seconds(1)

    /// One round; the first runs in `TallyServer.init`, before any listener takes an event.
    func sync() async {
        do {
            // The source starts at version -1, which no store has: the first round reads all.
            let current = source.rules
            if try await store.registryVersion() == current.version { return }
            let (version, sites) = try await store.registeredSites()
            source.replace(SiteRules(sites, closed: closed, version: version))
            logger.info("site registry loaded", metadata: ["version": "\(version)", "sites": "\(sites.count)"])
        } catch {
            logger.warning("site registry not read; the rules last read stay in force", metadata: ["error": "\(error)"])
        }
    }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            if Task.isShuttingDownGracefully { return }
            await sync()
        }
    }
}
