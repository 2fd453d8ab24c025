import ArgumentParser
import Foundation
import TallyLifecycle
import TallyServer

/// `tally backup DEST`: a consistent copy of a running collector's SQLite store and spool.
public struct BackupCommand: AsyncParsableCommand, AsyncCommandBody {
    public static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a collector's SQLite store and its unloaded spool into a new directory, while it runs.",
        discussion: "Takes the same --data-dir / --config (or TALLY_* variables) as `tally serve`. The copy holds every event acknowledged before the backup began, checked, with a manifest.json. For PostgreSQL, use pg_dump (see the README's Data lifecycle section).")

    @Argument(help: "The directory to create for the backup (it must not exist).") var destination: String
    @OptionGroup var storeOptions: SitesCommand.StoreOptions

    public init() {}

    public func body() async throws {
        let dataDirectory = try await storeOptions.sqliteDataDirectory(for: "backup")
        let m = try Backup.run(dataDirectory: dataDirectory, destination: destination)
        print("backup of \(dataDirectory) in \(destination): \(m.store.events) stored events (schema version \(m.store.schemaVersion)), \(m.spooledBatches) spooled batches of \(m.spooledEvents) events not yet loaded; \(m.createdAt)")
    }
}

/// `tally restore SRC`: a backup put back into a new data directory, checked first.
public struct RestoreCommand: AsyncParsableCommand, AsyncCommandBody {
    public static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Put a backup made by `tally backup` into a new or empty data directory (no collector running on it).",
        discussion: "Checks the backup's store (SQLite integrity_check, schema version, event count) and every spool file against its manifest before writing anything. Takes the same --data-dir / --config as `tally serve`; start `tally serve` on that directory afterwards: it loads the restored spool.")

    @Argument(help: "The backup directory (made by `tally backup`).") var source: String
    @OptionGroup var storeOptions: SitesCommand.StoreOptions

    public init() {}

    public func body() async throws {
        let dataDirectory = try await storeOptions.sqliteDataDirectory(for: "restore")
        let m = try Restore.run(source: source, dataDirectory: dataDirectory)
        print("restored \(source) (taken \(m.createdAt) from \(m.source)) into \(dataDirectory): \(m.store.events) stored events, \(m.spooledBatches) spooled batches of \(m.spooledEvents) events to load at the next start")
    }
}

extension SitesCommand.StoreOptions {
    /// The data directory of the SQLite store these options name; PostgreSQL has its own tools.
    func sqliteDataDirectory(for command: String) async throws -> String {
        let c = try await configuration()
        guard c.storeURL == nil else {
            throw ValidationError("`tally \(command)` copies the embedded SQLite store; a PostgreSQL store is backed up with pg_dump and restored with pg_restore (README: Data lifecycle)")
        }
        return c.dataDirectory
    }
}
