#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TallyStore

/// A batch file for the loader, with its decoded contents when still in memory.
struct SpooledBatch: Sendable {
    var path: String
    var batch: StoreBatch?
}

/// The spool directory: durable batch files waiting for the loader, plus `tmp/` for files
/// being written and `quarantine/` for files that failed verification.
final class Spool: @unchecked Sendable {
    let directory: String
    let tmpDirectory: String
    let quarantineDirectory: String
    /// Guards the counters below; flushers wait on it for backlog room or a stop.
    private let lock = NSCondition()
    // Guarded by lock.
    private var _backlogFiles = 0
    private var _backlogBytes = 0
    private var _writeHealthy = true
    private var _stopping = false
    private var _injectedFault: String?
    private var onWritten: (@Sendable (SpooledBatch) -> Void)?

    init(directory: String) throws {
        self.directory = directory
        self.tmpDirectory = directory + "/tmp"
        self.quarantineDirectory = directory + "/quarantine"
        try FileOps.makeDirectory(tmpDirectory)
        try FileOps.makeDirectory(quarantineDirectory)
        // Leftovers in tmp/ are writes a crash interrupted; they were never acknowledged.
        for name in FileOps.list(tmpDirectory, suffix: ".tmp") { unlink(tmpDirectory + "/" + name) }
    }

    func path(of id: String) -> String { directory + "/" + id + ".batch" }

    /// Batch files present now, oldest name first (recovery on start).
    func pendingFiles() -> [String] {
        FileOps.list(directory, suffix: ".batch").map { directory + "/" + $0 }
    }

    func setHandoff(_ handoff: @escaping @Sendable (SpooledBatch) -> Void) {
        lock.withLock { onWritten = handoff }
    }

    /// Counts an existing file into the backlog (recovery).
    func adopt(_ path: String) {
        let size = FileOps.size(path)
        lock.withLock {
            _backlogFiles += 1
            _backlogBytes += size
        }
    }

    /// While the loader keeps up, it gets the batch itself with the path, so it need not read,
    /// decompress and decode what was just written; past this backlog it reads from disk, so
    /// memory stays bounded however far the store falls behind (32 batches of the default 8192
    /// events are about 25 MiB). Reading a batch back costs about a microsecond per event, so a
    /// short burst should not push the loader onto the disk path.
    static let inMemoryBacklog = 32

    func write(_ id: String, bytes: [UInt8], batch: StoreBatch? = nil) throws {
        if let fault = lock.withLock({ _injectedFault }) { throw SpoolError.io(fault) }
        let final = path(of: id)
        try FileOps.writeDurably(bytes, tmp: tmpDirectory + "/" + id + ".tmp", final: final, directory: directory)
        let (handoff, keep) = lock.withLock { () -> ((@Sendable (SpooledBatch) -> Void)?, Bool) in
            _backlogFiles += 1
            _backlogBytes += bytes.count
            return (onWritten, _backlogFiles <= Self.inMemoryBacklog)
        }
        handoff?(SpooledBatch(path: final, batch: keep ? batch : nil))
    }

    /// The loader is done with `path`: it is in the store (or moved aside).
    func remove(_ path: String) {
        let size = FileOps.size(path)
        unlink(path)
        lock.withLock {
            _backlogFiles -= 1
            _backlogBytes -= size
            lock.broadcast()
        }
    }

    func quarantine(_ path: String) {
        let size = FileOps.size(path)
        let name = path.split(separator: "/").last.map(String.init) ?? "unknown"
        if rename(path, quarantineDirectory + "/" + name) != 0 { unlink(path) }
        try? FileOps.fsyncDirectory(directory)
        lock.withLock {
            _backlogFiles -= 1
            _backlogBytes -= size
            lock.broadcast()
        }
    }

    /// Blocks until fewer than `limit` files wait for the loader, or the spool is stopping.
    func waitForBacklog(below limit: Int) {
        lock.withLock {
            while _backlogFiles >= limit && !_stopping { lock.wait() }
        }
    }

    /// Blocks for `timeout`, or less when the spool starts stopping (a retry back-off).
    func waitUntilStopping(timeout: Duration) {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.nanoseconds) / 1e9)
        lock.withLock {
            while !_stopping, lock.wait(until: deadline) {}
        }
    }

    var backlogFiles: Int { lock.withLock { _backlogFiles } }
    var backlogBytes: Int { lock.withLock { _backlogBytes } }
    var writeHealthy: Bool { lock.withLock { _writeHealthy } }
    func setWriteHealthy(_ v: Bool) { lock.withLock { _writeHealthy = v } }
    var isStopping: Bool { lock.withLock { _stopping } }
    func setStopping() {
        lock.withLock {
            _stopping = true
            lock.broadcast()
        }
    }
    func injectFault(_ message: String?) { lock.withLock { _injectedFault = message } }
    var quarantinedCount: Int { FileOps.list(quarantineDirectory, suffix: ".batch").count }
}
