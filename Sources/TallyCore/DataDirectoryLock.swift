#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// One collector per data directory: `tally serve` holds an exclusive `flock` on
/// `<data dir>/lock` while it runs, and `tally restore` while it writes. Two collectors on one
/// directory would share a spool and its batch ids; a restore under a running one would swap
/// its store. The kernel drops the lock when the process ends, however it ends (`kill -9`
/// included), so a stale lock file never blocks a start.
public final class DataDirectoryLock: Sendable {
    public static let fileName = "lock"
    private let fd: Mutex<Int32>

    /// Takes the lock or throws, naming the process that holds it. Tries for half a second
    /// first: `tally sites purge` looks at the lock by taking it for an instant.
    public init(directory: String) throws(DataDirectoryLockError) {
        let path = directory + "/" + Self.fileName
        let fd: Int32
        do {
            fd = try PrivateFiles.open(path, O_RDWR)
        } catch {
            throw DataDirectoryLockError(description: "cannot open \(path): \(error)")
        }
        var locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<10 where !locked {
            usleep(50_000)
            locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            var bytes = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &bytes, bytes.count)
            close(fd)
            let digits = bytes.prefix(max(n, 0)).prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            let holder = digits.isEmpty ? "?" : String(decoding: digits, as: UTF8.self)
            throw DataDirectoryLockError(description: "\(directory) is in use by another tally process (pid \(holder)): one collector per data directory")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        self.fd = Mutex(fd)
    }

    /// Whether a process holds the directory's lock: tried and let go at once. A collector
    /// starting in that instant does not fail for it (``init(directory:)`` tries again for
    /// half a second first). Throws when the lock file cannot be opened.
    public static func isHeld(directory: String) throws(DataDirectoryLockError) -> Bool {
        let path = directory + "/" + fileName
        let fd: Int32
        do {
            fd = try PrivateFiles.open(path, O_RDWR)
        } catch {
            throw DataDirectoryLockError(description: "cannot open \(path): \(error)")
        }
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) != 0
    }

    /// Lets the lock go (also on deinit); a second call does nothing.
    public func release() {
        fd.withLock { fd in
            guard fd >= 0 else { return }
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}

public struct DataDirectoryLockError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
