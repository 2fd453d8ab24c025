import Foundation
import TallyCore
import TallyPipeline
import TallyStore

/// What a backup directory holds, written last as `manifest.json`: a directory without one is
/// an interrupted backup, and `restore` refuses it.
public struct BackupManifest: Codable, Sendable, Equatable {
    public static let fileName = "manifest.json"
    public static let currentFormat = 1

    public var format: Int
    /// RFC 3339, UTC.
    public var createdAt: String
    /// The data directory it was taken from.
    public var source: String
    public var store: SQLiteSnapshot.Facts
    /// Batch files that were durable in the spool but not yet loaded, and their events.
    public var spooledBatches: Int
    public var spooledEvents: Int
    /// Spool files that did not check out (the collector's loader sets them aside too).
    public var unreadableBatches: Int

    enum CodingKeys: String, CodingKey {
        case format, source, store
        case createdAt = "created_at"
        case spooledBatches = "spooled_batches"
        case spooledEvents = "spooled_events"
        case unreadableBatches = "unreadable_batches"
    }
}

/// A refusal or failure of `tally backup` / `tally restore`, worded for the person running it.
public struct LifecycleError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `tally backup`: a consistent copy of a collector's SQLite store and its spool, taken while
/// the collector runs.
///
/// Order matters. The spool's batch files are copied first, then the store is copied in one
/// read transaction. Every event acknowledged before the backup began is then in one or the
/// other: a batch loaded before the store copy is in the copy (its spooled copy, if taken, is
/// left out by its id in `loaded_batches`), and a batch loaded after it was copied from the
/// spool before. Copying the store first would lose batches loaded and removed in between.
public enum Backup {
    public static func run(dataDirectory: String, destination: String, now: Date = Date()) throws -> BackupManifest {
        let storePath = dataDirectory + "/tally.sqlite"
        guard FileManager.default.fileExists(atPath: storePath) else {
            throw LifecycleError("no store at \(storePath) (check --data-dir)")
        }
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw LifecycleError("\(destination) exists; a backup goes into a new directory")
        }
        do {
            try PrivateFiles.makeDirectory(destination)
        } catch {
            throw LifecycleError("cannot create \(destination): \(error)")
        }
        // A backup that fails leaves nothing behind: a directory without a manifest is of no use,
        // and would make the retry refuse `destination` as existing.
        do {
            let manifest = try copy(dataDirectory: dataDirectory, destination: destination, now: now)
            syncDirectory((destination as NSString).deletingLastPathComponent)
            return manifest
        } catch {
            try? FileManager.default.removeItem(atPath: destination)
            throw LifecycleError("backup failed, \(destination) removed: \(error)")
        }
    }

    static func copy(dataDirectory: String, destination: String, now: Date) throws -> BackupManifest {
        let spool = dataDirectory + "/spool", spoolCopy = destination + "/spool"
        var copied: [String] = []
        for name in SpoolFiles.pending(in: spool) where try SpoolFiles.copy(name, from: spool, to: spoolCopy) {
            copied.append(name)
        }
        let storeCopy = destination + "/tally.sqlite"
        try SQLiteSnapshot.copy(dataDirectory + "/tally.sqlite", to: storeCopy)
        let loaded = try SQLiteSnapshot.loaded(copied.map(SpoolFiles.batchID(ofFile:)), in: storeCopy)
        var spooledEvents = 0, kept = 0, unreadable = 0
        for name in copied {
            let path = spoolCopy + "/" + name
            if loaded.contains(SpoolFiles.batchID(ofFile: name)) {
                guard unlink(path) == 0 else { throw LifecycleError("cannot remove \(path)") }
                continue
            }
            do {
                spooledEvents += try SpoolFiles.check(path)
                kept += 1
            } catch {
                // The collector's loader sets such a file aside (quarantine) and loads nothing
                // of it; the backup leaves it out likewise, and says so.
                guard unlink(path) == 0 else { throw LifecycleError("cannot remove \(path)") }
                unreadable += 1
            }
        }
        if !copied.isEmpty { syncDirectory(spoolCopy) }
        let manifest = BackupManifest(format: BackupManifest.currentFormat, createdAt: rfc3339(now), source: dataDirectory,
                                      store: try SQLiteSnapshot.check(storeCopy), spooledBatches: kept, spooledEvents: spooledEvents,
                                      unreadableBatches: unreadable)
        try write(manifest, to: destination + "/" + BackupManifest.fileName)
        return manifest
    }

    static func write(_ manifest: BackupManifest, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(manifest) + Data("\n".utf8)
        do {
            try PrivateFiles.writeDurably(Array(data), tmp: path + ".tmp", final: path, directory: (path as NSString).deletingLastPathComponent)
        } catch {
            throw LifecycleError("cannot write \(path): \(error)")
        }
    }

    static func rfc3339(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}

/// Copies a file of any size in 1 MiB steps into a new private file, fsynced.
func copyDurably(_ source: String, to destination: String) throws {
    let input = open(source, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else { throw LifecycleError("cannot read \(source)") }
    defer { close(input) }
    let output = try PrivateFiles.open(destination, O_WRONLY | O_TRUNC)
    defer { close(output) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw LifecycleError("cannot read \(source)") }
        if n == 0 { break }
        var failure: PrivateFileError?
        buffer.withUnsafeBytes { b in
            do throws(PrivateFileError) {
                try PrivateFiles.writeAll(output, UnsafeRawBufferPointer(rebasing: b[..<n]), path: destination)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }
    guard fsync(output) == 0 else { throw LifecycleError("cannot fsync \(destination)") }
}

/// ``PrivateFiles/syncDirectory(_:)`` where a failure to sync is no reason to fail the
/// backup or restore (what it protects against is a crash right after).
func syncDirectory(_ path: String) {
    try? PrivateFiles.syncDirectory(path)
}

/// `tally restore`: puts a backup back into a data directory no collector uses yet, after
/// checking every part of it against its manifest.
public enum Restore {
    /// Present in a data directory while a restore writes into it (``TallyServer`` refuses to start).
    public static let incompleteMarker = "restore-incomplete"

    public static func run(source: String, dataDirectory: String) throws -> BackupManifest {
        let manifestPath = source + "/" + BackupManifest.fileName
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw LifecycleError("\(manifestPath) is missing: \(source) is not a finished backup")
        }
        let manifest: BackupManifest
        do {
            manifest = try JSONDecoder().decode(BackupManifest.self, from: data)
        } catch {
            throw LifecycleError("\(manifestPath) is not a backup manifest: \(error)")
        }
        guard manifest.format == BackupManifest.currentFormat else {
            throw LifecycleError("\(source) is a backup of format \(manifest.format); this tally restores format \(BackupManifest.currentFormat)")
        }
        // Checked before anything is written, so a bad backup leaves the data directory alone.
        let facts: SQLiteSnapshot.Facts
        do {
            facts = try SQLiteSnapshot.check(source + "/tally.sqlite")
        } catch {
            throw LifecycleError("the backup's store does not check out: \(error)")
        }
        guard facts == manifest.store else {
            throw LifecycleError("the backup's store holds \(facts.events) events at schema version \(facts.schemaVersion); its manifest says \(manifest.store.events) at \(manifest.store.schemaVersion)")
        }
        let spool = source + "/spool"
        let names = SpoolFiles.pending(in: spool)
        var events = 0
        for name in names {
            do {
                events += try SpoolFiles.check(spool + "/" + name)
            } catch {
                throw LifecycleError("the backup's spool file \(name) does not check out: \(error)")
            }
        }
        guard names.count == manifest.spooledBatches, events == manifest.spooledEvents else {
            throw LifecycleError("the backup's spool holds \(names.count) batches of \(events) events; its manifest says \(manifest.spooledBatches) of \(manifest.spooledEvents)")
        }

        let target = dataDirectory + "/tally.sqlite"
        let marker = dataDirectory + "/" + Self.incompleteMarker
        // Held while this writes: no collector starts here meanwhile, and none runs here now.
        let lock: DataDirectoryLock
        do {
            try PrivateFiles.makeDirectory(dataDirectory)
            lock = try DataDirectoryLock(directory: dataDirectory)
        } catch {
            throw LifecycleError("cannot restore into \(dataDirectory): \(error)")
        }
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: marker) {
            // A restore here was cut short: what it wrote goes, and this one starts over.
            for f in [target, target + "-wal", target + "-shm"] { unlink(f) }
            for name in SpoolFiles.pending(in: dataDirectory + "/spool") { unlink(dataDirectory + "/spool/" + name) }
        } else {
            for existing in [target, target + "-wal"] where FileManager.default.fileExists(atPath: existing) {
                throw LifecycleError("\(existing) exists: restore into a new or empty data directory (move the old one aside), with no collector running on it")
            }
            if !SpoolFiles.pending(in: dataDirectory + "/spool").isEmpty {
                throw LifecycleError("\(dataDirectory)/spool holds batches: restore into a new or empty data directory")
            }
        }
        do {
            // Until the marker goes, `tally serve` refuses the directory: a store without its
            // spool (or the reverse) would pass for a whole one.
            try PrivateFiles.touch(marker)
        } catch {
            throw LifecycleError("cannot restore into \(dataDirectory): \(error)")
        }
        syncDirectory(dataDirectory)
        for name in names { _ = try SpoolFiles.copy(name, from: spool, to: dataDirectory + "/spool") }
        let tmp = target + ".restoring"
        do {
            try copyDurably(source + "/tally.sqlite", to: tmp)
            guard try SQLiteSnapshot.check(tmp) == manifest.store else {
                throw LifecycleError("the copy at \(tmp) does not match the backup")
            }
            // link, not rename: it fails if a store appeared at `target` meanwhile, where rename
            // would replace it.
            guard link(tmp, target) == 0 else { throw LifecycleError("cannot put the store at \(target) (does it exist now?)") }
        } catch {
            unlink(tmp)
            throw error
        }
        unlink(tmp)
        unlink(marker)
        syncDirectory(dataDirectory)
        return manifest
    }
}
