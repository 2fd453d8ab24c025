import ArgumentParser
import Configuration
import Foundation
import TallyCore
import TallyLifecycle
import TallyServer
import TallySites
import TallyStore

/// `tally sites …`: the site registry, changed in the store a server uses while it runs (a
/// running server picks a change up within seconds).
public struct SitesCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sites",
        abstract: "Register sites: their allowed origins, write and read keys, and rate limit.",
        discussion: "Every command works on the store that `tally serve` uses with the same --data-dir / --store / --config (or TALLY_* variables); servers running on it pick changes up within 2 seconds.",
        subcommands: [Add.self, List.self, Show.self, Update.self, Remove.self, Keys.self, Purge.self])

    public init() {}

    /// Which store: the same settings as `tally serve`.
    struct StoreOptions: ParsableArguments {
        @Option(help: Serve.help("data-dir")) var dataDir: String?
        @Option(help: Serve.help("store")) var store: String?
        @Option(help: Serve.help("config")) var config: String?

        /// The settings these options (over `TALLY_*` variables and the config file) give.
        func configuration() async throws -> ServerConfiguration {
            var flags: [String: ConfigContent] = [:]
            if let dataDir { flags["data-dir"] = .string(dataDir) }
            if let store { flags["store"] = .string(store) }
            return try await Serve.resolve(flags: flags, config: config, environment: ProcessInfo.processInfo.environment)
        }

        /// `create`: make the data directory and SQLite file when missing (only `sites add`
        /// does; the other commands on a mistyped `--data-dir` say so instead).
        func open(create: Bool = false) async throws -> any LifecycleStore & SiteRegistryStore {
            let c = try await configuration()
            let s: any LifecycleStore & SiteRegistryStore
            if let url = c.storeURL {
                s = try PostgresStore(url: url)
            } else {
                let path = c.dataDirectory + "/tally.sqlite"
                if create {
                    try PrivateFiles.makeDirectory(c.dataDirectory)
                } else if !FileManager.default.fileExists(atPath: path) {
                    throw SitesError("no store at \(path): no site is registered there (check --data-dir)")
                }
                s = SQLiteStore(path: path)
            }
            do {
                try await s.prepare()
            } catch {
                try? await s.close()
                throw SitesError("cannot open the store: \(error)")
            }
            return s
        }

        /// Runs `body` on the store and closes it, whatever happens.
        func with<T: Sendable>(create: Bool = false, _ body: (any LifecycleStore & SiteRegistryStore) async throws -> T) async throws -> T {
            let s = try await open(create: create)
            do {
                let r = try await body(s)
                try? await s.close()
                return r
            } catch let e as SiteRegistryError {
                try? await s.close()
                throw SitesError(e.description)
            } catch {
                try? await s.close()
                throw error
            }
        }
    }

    struct Add: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(abstract: "Register a site.")
        @Argument(help: "The site's id: the site_id its events carry.") var id: String
        @Option(name: .customLong("origin"), help: "An allowed origin (https://shop.example) or wildcard (https://*.example.com); repeat for more. None: any origin.")
        var origins: [String] = []
        @Option(help: "Events per second this site may send (with a burst of as many).") var rate: Int?
        @Option(help: "Days of this site's raw rows kept besides today, over the server's --raw-retention-days.") var rawRetentionDays: Int?
        @OptionGroup var storeOptions: StoreOptions

        func body() async throws {
            let id = try SiteCLIInput.id(id)
            let origins = try SiteCLIInput.origins(origins)
            if let rate { try SiteCLIInput.rate(rate) }
            if let rawRetentionDays { try SiteCLIInput.retention(rawRetentionDays) }
            let now = Timestamp.now()
            let site = SiteRecord(id: id, origins: origins, rate: rate, rawRetentionDays: rawRetentionDays, createdAt: now, updatedAt: now)
            try await storeOptions.with(create: true) { try await $0.apply(.add(site)) }
            print("registered site \(JSONText.quote(id))")
        }
    }

    struct List: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(abstract: "List the registered sites.")
        @Flag(help: "One JSON array instead of a table.") var json = false
        @OptionGroup var storeOptions: StoreOptions

        func body() async throws {
            let sites = try await storeOptions.with { try await $0.registeredSites().sites }
            if json { return print("[" + sites.map(SiteJSON.render).joined(separator: ",") + "]") }
            guard !sites.isEmpty else { return print("no registered sites") }
            print(SiteOutput.table(sites))
        }
    }

    struct Show: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(abstract: "Show one site: origins, rate and its keys (by id; keys are never shown again).")
        @Argument var id: String
        @Flag(help: "JSON instead of text.") var json = false
        @OptionGroup var storeOptions: StoreOptions

        func body() async throws {
            let sites = try await storeOptions.with { try await $0.registeredSites().sites }
            guard let site = sites.first(where: { $0.id.utf8Equals(id) }) else { throw SitesError(SiteRegistryError.noSuchSite(id).description) }
            print(json ? SiteJSON.render(site) : SiteOutput.text(site))
        }
    }

    struct Update: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(abstract: "Change a site's origins, rate limit or raw-row retention.")
        @Argument var id: String
        @Option(name: .customLong("origin"), help: "The site's allowed origins from now on (repeat for more); replaces the list.")
        var origins: [String] = []
        @Flag(help: "Allow any origin again.") var anyOrigin = false
        @Option(help: "Events per second this site may send.") var rate: Int?
        @Flag(help: "Remove the site's rate limit.") var noRate = false
        @Option(help: "Days of this site's raw rows kept besides today, over the server's --raw-retention-days.") var rawRetentionDays: Int?
        @Flag(help: "Keep this site's raw rows as long as the server's --raw-retention-days says again.") var serverRetention = false
        @OptionGroup var storeOptions: StoreOptions

        func validate() throws {
            if anyOrigin && !origins.isEmpty { throw ValidationError("--any-origin and --origin contradict each other") }
            if noRate && rate != nil { throw ValidationError("--no-rate and --rate contradict each other") }
            if serverRetention && rawRetentionDays != nil { throw ValidationError("--server-retention and --raw-retention-days contradict each other") }
            if !anyOrigin && origins.isEmpty && !noRate && rate == nil && !serverRetention && rawRetentionDays == nil {
                throw ValidationError("nothing to change: give --origin, --any-origin, --rate, --no-rate, --raw-retention-days or --server-retention")
            }
        }

        func body() async throws {
            let newOrigins: [String]? = anyOrigin ? [] : origins.isEmpty ? nil : try SiteCLIInput.origins(origins)
            if let rate { try SiteCLIInput.rate(rate) }
            if let rawRetentionDays { try SiteCLIInput.retention(rawRetentionDays) }
            let newRate: Int?? = noRate ? .some(nil) : rate.map { .some($0) }
            let newDays: Int?? = serverRetention ? .some(nil) : rawRetentionDays.map { .some($0) }
            try await storeOptions.with {
                try await $0.apply(.update(id: id, origins: newOrigins, rate: newRate, rawRetentionDays: newDays, at: Timestamp.now()))
            }
            print("updated site \(JSONText.quote(id))")
        }
    }

    struct Remove: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(abstract: "Unregister a site and revoke its keys (its events and numbers stay).")
        @Argument var id: String
        @OptionGroup var storeOptions: StoreOptions

        func body() async throws {
            try await storeOptions.with { try await $0.apply(.remove(id: id)) }
            print("removed site \(JSONText.quote(id))")
        }
    }

    struct Purge: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(
            abstract: "Delete a site's data, registered or not: its numbers at once, its raw rows in a sweep.",
            discussion: """
                Works while servers run on the store. The reports read the site as purged as soon as this says so, and \
                batches of the site still spooled by any collector (cut before the purge) are dropped when loaded; events \
                sent after it are kept. The raw rows are then deleted and the space given back; interned names nothing \
                uses any more go too. Run it again to finish a sweep that was interrupted (a server also finishes it).
                """)
        @Argument(help: "The site_id whose data goes.") var id: String
        @Option(help: "Delete only the data of UTC days before this date (YYYY-MM-DD).") var before: String?
        @OptionGroup var storeOptions: StoreOptions

        func validate() throws {
            if let before, UTCDay(parsing: before) == nil { throw ValidationError("--before must be a date as YYYY-MM-DD (UTC)") }
        }

        func body() async throws {
            let id = try SiteCLIInput.id(id)
            let day = before.flatMap(UTCDay.init(parsing:))
            let c = try await storeOptions.configuration()
            // SQLite: a collector serving the directory deletes the raw rows itself, on its own
            // writer (a second process writing the file would make its loads wait for the
            // lock); without one, this command does it at full speed. PostgreSQL: this command
            // does it, paced like a collector's sweep (collectors cannot be seen from here). The
            // directory lock is taken only for an instant to look: a collector may start meanwhile.
            func serverRuns() throws -> Bool { try DataDirectoryLock.isHeld(directory: c.dataDirectory) }
            let sqlite = c.storeURL == nil
            try await storeOptions.with { store in
                let p = try await store.recordPurge(site: id, before: day, leaseUntil: sqlite ? 0 : Sweep.leaseEnd())
                let scope = day.map { "days before \($0)" } ?? "all data"
                print("purged \(scope) of site \(JSONText.quote(id)) from the reports; deleting its raw rows")
                if sqlite {
                    var told = false
                    while try serverRuns() {
                        if try await store.purges(unfinishedOnly: false).contains(where: { $0.id == p.id && $0.done }) {
                            return print("the collector serving \(c.dataDirectory) deleted them")
                        }
                        if !told { print("the collector serving \(c.dataDirectory) is deleting them; waiting") }
                        told = true
                        try await Task.sleep(for: .milliseconds(500))
                    }
                }
                // Purges of earlier runs that nobody finished go in the same sweep.
                let (_, out) = try await Sweep.purges([p.id], retention: RetentionPolicy(), store: store, busy: { !sqlite })
                let pages = try await DataJanitor.reclaim(store, busy: { !sqlite }).freed
                print("deleted \(out.deletedByPurges) raw rows\(pages > 0 ? "; \(pages) pages given back to the file system" : "")")
            }
        }
    }

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add or revoke a site's keys.", subcommands: [AddKey.self, RevokeKey.self])
    }

    struct AddKey: AsyncParsableCommand, AsyncCommandBody {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Make a key; it is printed once, alone on the last line, and only its hash is stored.")
        @Argument var id: String
        @Flag(help: "A key that reads the site's numbers.") var read = false
        @Flag(help: "A key that sends the site's events.") var write = false
        @OptionGroup var storeOptions: StoreOptions

        func validate() throws {
            guard read != write else { throw ValidationError("give exactly one of --read and --write") }
        }

        func body() async throws {
            let (key, record) = AccessKey.generate(read ? .read : .write, at: Timestamp.now())
            try await storeOptions.with { try await $0.apply(.addKey(siteID: id, record)) }
            print("\(record.kind.rawValue) key \(record.id) for site \(JSONText.quote(id)); it is not shown again:")
            print(key)
        }
    }

    struct RevokeKey: AsyncParsableCommand, AsyncCommandBody {
        /// What revoking the last key of a kind opens, said before it is done.
        static func warning(_ site: SiteRecord, revoked: SiteKeyRecord) -> String? {
            guard !site.keys.contains(where: { $0.kind == revoked.kind && $0.id != revoked.id }) else { return nil }
            return revoked.kind == .read
                ? "site \(JSONText.quote(site.id)) has no read key left: its numbers can be read by anyone; add a read key to make them private again"
                : "site \(JSONText.quote(site.id)) has no write key left: \(site.origins.isEmpty ? "anyone" : "servers (no Origin)") may send its events without a key"
        }

        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a key, named by its id (from `sites show`) or by the key itself.")
        @Argument var id: String
        @Argument(help: "The key id (k…) or the key.") var key: String
        @OptionGroup var storeOptions: StoreOptions

        func body() async throws {
            // A key itself is never stored: it is looked up by its hash.
            let name = key.hasPrefix("tally_") ? AccessKey.hash(key) : key
            let site = id
            let warning = try await storeOptions.with { store -> String? in
                let before = try await store.registeredSites().sites.first { $0.id.utf8Equals(site) }
                try await store.apply(.revokeKey(siteID: site, idOrHash: name))
                guard let before, let revoked = before.keys.first(where: { $0.id == name || $0.hash == name }) else { return nil }
                return Self.warning(before, revoked: revoked)
            }
            print("revoked key \(key.hasPrefix("tally_") ? AccessKey.id(ofHash: name) : key) of site \(JSONText.quote(id))")
            if let warning { print("warning: " + warning) }
        }
    }
}

/// A command whose work is async, run by main.swift through ``AsyncCommandBody/body()``: called
/// through an existential, `run()` resolves to ParsableCommand's synchronous requirement, which
/// only prints the help.
public protocol AsyncCommandBody {
    func body() async throws
}

extension AsyncCommandBody {
    public func run() async throws { try await body() }
}

struct SitesError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The CLI's spelling of ``TallySites/SiteInput``'s checks: usage errors.
enum SiteCLIInput {
    static func id(_ id: String) throws -> String {
        let problems = SiteInput.idProblems(id)
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
        return id
    }

    static func origins(_ texts: [String]) throws -> [String] {
        do { return try SiteInput.origins(texts).get() } catch { throw ValidationError(error.description) }
    }

    static func rate(_ rate: Int) throws {
        let problems = SiteInput.rateProblems(rate)
        guard problems.isEmpty else { throw ValidationError("--" + problems.joined(separator: "; ")) }
    }

    static func retention(_ days: Int) throws {
        let problems = SiteInput.retentionProblems(days)
        guard problems.isEmpty else { throw ValidationError("--" + problems.joined(separator: "; ").replacingOccurrences(of: "raw_retention_days", with: "raw-retention-days")) }
    }
}

enum SiteOutput {
    static func time(_ micros: Int64) -> String { Timestamp.format(micros) }

    static func text(_ s: SiteRecord) -> String {
        var lines = [
            "site:       \(s.id)",
            "origins:    \(s.origins.isEmpty ? "any" : s.origins.joined(separator: " "))",
            "rate:       \(s.rate.map { "\($0) events/s" } ?? "no limit of its own")",
            "raw rows:   \(s.rawRetentionDays.map { "kept \($0) days besides today" } ?? "kept as long as the server's --raw-retention-days says")",
            "created:    \(time(s.createdAt))",
            "updated:    \(time(s.updatedAt))",
        ]
        lines.append(s.keys.isEmpty ? "keys:       none" : "keys:")
        for k in s.keys { lines.append("  \(k.id)  \(k.kind.rawValue)  created \(time(k.createdAt))") }
        return lines.joined(separator: "\n")
    }

    static func table(_ sites: [SiteRecord]) -> String {
        var rows = [["SITE", "ORIGINS", "RATE", "READ KEYS", "WRITE KEYS", "UPDATED"]]
        for s in sites {
            rows.append([s.id, s.origins.isEmpty ? "any" : s.origins.joined(separator: ","), s.rate.map(String.init) ?? "-",
                         String(s.keys.filter { $0.kind == .read }.count), String(s.keys.filter { $0.kind == .write }.count), time(s.updatedAt)])
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max()! }
        return rows.map { r in
            r.indices.map { i in i == r.count - 1 ? r[i] : r[i].padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
