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
