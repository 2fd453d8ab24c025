import Foundation
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
    /// The registry as last read, kept in the data directory: a collector that starts while
    /// its PostgreSQL is down enforces what it last knew instead of nothing.
    let snapshotPath: String
    /// Told every registry read (sites' own retention reaches the ``DataJanitor`` this way).
    var onSites: @Sendable ([SiteRecord]) -> Void = { _ in }
    let logger: Logger
    static let interval = Duration.seconds(1)

    struct Snapshot: Codable {
        var version: Int64
        var sites: [SiteRecord]
    }

    /// One round; the first runs in `TallyServer.init`, before any listener takes an event.
    func sync() async {
        do {
            // The source starts at version -1, which no store has: the first round reads all.
            let current = source.rules
            if try await store.registryVersion() == current.version { return }
            let (version, sites) = try await store.registeredSites()
            source.replace(SiteRules(sites, closed: closed, version: version))
            onSites(sites)
            logger.info("site registry loaded", metadata: ["version": "\(version)", "sites": "\(sites.count)"])
            save(Snapshot(version: version, sites: sites))
        } catch {
            logger.warning("site registry not read; the rules last read stay in force", metadata: ["error": "\(error)"])
            if source.rules.version == -1 { useSavedCopy() }
        }
    }

    /// Until the store is read: the copy saved by the last read (version -1 still, so the first
    /// round that reaches the store reads it all). Without a copy, nothing is registered as far
    /// as this collector knows, and it is open (closed with `--closed`).
    func useSavedCopy() {
        guard let snapshot = load() else {
            logger.warning("no saved copy of the site registry; until the store answers, no site has rules here", metadata: ["file": "\(snapshotPath)"])
            return
        }
        source.replace(SiteRules(snapshot.sites, closed: closed, version: -1))
        onSites(snapshot.sites)
        logger.warning("enforcing the site registry as saved at its version \(snapshot.version) until the store answers",
                       metadata: ["sites": "\(snapshot.sites.count)"])
    }

    private func save(_ snapshot: Snapshot) {
        do {
            let data = try JSONEncoder().encode(snapshot)
            try PrivateFiles.writeDurably(Array(data), tmp: snapshotPath + ".tmp", final: snapshotPath,
                                          directory: (snapshotPath as NSString).deletingLastPathComponent)
        } catch {
            logger.warning("cannot save the site registry's copy", metadata: ["file": "\(snapshotPath)", "error": "\(error)"])
        }
    }

    private func load() -> Snapshot? {
        guard let data = FileManager.default.contents(atPath: snapshotPath) else { return nil }
        return try? JSONDecoder().decode(Snapshot.self, from: data)
    }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            if Task.isShuttingDownGracefully { return }
            await sync()
        }
    }
}
