#if canImport(Glibc)
import Glibc
#endif

/// Everything Tally writes to disk holds user ids and paths: the data directory and every
/// directory in it are 0700 and every file 0600, whatever the process umask (the modes are set
/// explicitly after creation, since a umask can only take bits away). One place for the rule;
/// the spool, the SQLite store and the server call it.
public enum PrivateFiles {
    public static let directoryMode: mode_t = 0o700
    public static let fileMode: mode_t = 0o600

    /// Creates `path` and any missing parents (new ones 0700), and makes `path` itself 0700
    /// even when it existed. Throws the failing call's errno text.
    public static func makeDirectory(_ path: String) throws(PrivateFileError) {
        var current = path.hasPrefix("/") ? "" : "."
        for p in path.split(separator: "/") {
            current += "/" + p
            if mkdir(current, directoryMode) == 0 {
                _ = chmod(current, directoryMode)
            } else if errno != EEXIST {
                throw PrivateFileError("mkdir \(current)")
            }
        }
        guard chmod(path, directoryMode) == 0 else { throw PrivateFileError("chmod \(path)") }
    }

    /// Opens (creating when missing) `path` with `flags`, and makes it 0600. Returns the fd.
    public static func open(_ path: String, _ flags: Int32) throws(PrivateFileError) -> Int32 {
        let fd = Glibc.open(path, flags | O_CREAT | O_CLOEXEC, fileMode)
        guard fd >= 0 else { throw PrivateFileError("open \(path)") }
        guard fchmod(fd, fileMode) == 0 else {
            let e = PrivateFileError("chmod \(path)")
            close(fd)
            throw e
        }
        return fd
    }

    /// Writes every byte of `bytes` to `fd`, going on after short writes and `EINTR`; the error
    /// names `path`.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(PrivateFileError) {
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                throw PrivateFileError("write \(path)")
            }
            written += n
        }
    }

    /// Writes `bytes` to `tmp` (a private file), fsyncs it, renames it to `final` and fsyncs
    /// `directory`, so `final` either does not exist or holds every byte. `tmp` is removed if
    /// anything before the rename fails. The spool's batches, backup manifests and the saved
    /// site registry are written this way.
    public static func writeDurably(_ bytes: [UInt8], tmp: String, final: String, directory: String) throws(PrivateFileError) {
        let fd = try open(tmp, O_WRONLY | O_TRUNC)
        var renamed = false
        defer {
            close(fd)
            if !renamed { unlink(tmp) }
        }
        var failure: PrivateFileError?
        bytes.withUnsafeBytes { b in
            do throws(PrivateFileError) { try writeAll(fd, b, path: tmp) } catch { failure = error }
        }
        if let failure { throw failure }
        guard fsync(fd) == 0 else { throw PrivateFileError("fsync \(tmp)") }
        guard rename(tmp, final) == 0 else { throw PrivateFileError("rename \(tmp)") }
        renamed = true
        try syncDirectory(directory)
    }

    /// fsyncs a directory, so that the entries last made or removed in it survive a crash.
    public static func syncDirectory(_ path: String) throws(PrivateFileError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw PrivateFileError("open dir \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw PrivateFileError("fsync dir \(path)") }
    }

    /// Creates `path` empty when missing and makes it 0600 (files that others write, such as
    /// SQLite's database, whose journal and WAL then take the same mode).
    ///
    /// An existing file is never opened: closing any descriptor of a file drops every POSIX
    /// lock the process holds on it, and SQLite's connections in this process would lose
    /// theirs without knowing. Another process closing the database would then believe itself
    /// the last user and delete the WAL under them.
    public static func touch(_ path: String) throws(PrivateFileError) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        if fd >= 0 {
            // New: nothing in this process can hold a lock on it yet.
            defer { close(fd) }
            guard fchmod(fd, fileMode) == 0 else { throw PrivateFileError("chmod \(path)") }
            return
        }
        guard errno == EEXIST else { throw PrivateFileError("open \(path)") }
        guard chmod(path, fileMode) == 0 else { throw PrivateFileError("chmod \(path)") }
    }
}

public struct PrivateFileError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ what: String) {
        description = "\(what): \(String(cString: strerror(errno)))"
    }
}
