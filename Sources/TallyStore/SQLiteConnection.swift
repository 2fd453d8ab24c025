import CSQLite
import Glibc
import TallyCore

/// A thin owner of one sqlite3 handle. Not thread-safe: ``SQLiteStore`` serialises access.
/// Public for `tally store-ceiling`, which measures plain appends with the same binding code.
public final class SQLiteConnection {
    let db: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    /// Multi-row INSERT texts by prefix and row count (see `insertRows`).
    private var bulkSQL: [String: [Int: String]] = [:]

    public init(path: String) throws {
        // 0600 before SQLite opens it: SQLite gives its WAL, shared-memory and journal files the
        // database file's mode. Files an older version left readable are tightened too.
        do {
            try PrivateFiles.touch(path)
        } catch {
            throw StoreError("cannot open \(path): \(error)")
        }
        for suffix in ["-wal", "-shm", "-journal"] { _ = chmod(path + suffix, PrivateFiles.fileMode) }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError("cannot open \(path): \(msg)")
        }
        db = handle
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        for (_, s) in statements { sqlite3_finalize(s) }
        sqlite3_close_v2(db)
    }

    public func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "error \(rc)"
            sqlite3_free(err)
            throw StoreError("\(msg) (in: \(sql.prefix(80)))")
        }
    }

    /// A cached prepared statement, reset and with bindings cleared.
    public func statement(_ sql: String) throws -> Statement {
        if let s = statements[sql] {
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
            return Statement(handle: s, connection: self)
        }
        var s: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &s, nil)
        guard rc == SQLITE_OK, let s else { throw error(rc, sql) }
        statements[sql] = s
        return Statement(handle: s, connection: self)
    }

    /// Resets every cached statement: a statement left mid-result keeps its read transaction
    /// open, which would pin a reader to an old snapshot and block COMMIT.
    /// Runs `body` in a `BEGIN IMMEDIATE` transaction: committed when it returns, rolled back
    /// when it throws (statements reset either way).
    func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let result = try body()
            resetAll()
            try exec("COMMIT")
            return result
        } catch {
            resetAll()
            try? exec("ROLLBACK")
            throw error
        }
    }

    func resetAll() {
        for (_, s) in statements { sqlite3_reset(s) }
    }

    @usableFromInline func error(_ rc: Int32, _ context: String) -> StoreError {
        StoreError("\(String(cString: sqlite3_errmsg(db))) (in: \(context.prefix(80)))")
    }

}

// SQLITE_TRANSIENT tells SQLite to copy the bytes, which we need as Swift strings are temporary.
@usableFromInline let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A prepared statement borrowed from its connection. Binding and stepping are inlinable:
/// they run once per column per row, where a cross-module call is a measurable share.
public struct Statement {
    @usableFromInline let handle: OpaquePointer
    @usableFromInline unowned let connection: SQLiteConnection

    @inlinable public func bind(_ index: Int32, _ value: String?) {
        guard var value else {
            sqlite3_bind_null(handle, index)
            return
        }
        value.withUTF8 { buf in
            _ = sqlite3_bind_text(handle, index, UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self),
                                  Int32(buf.count), transient)
        }
    }

    @inlinable public func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(handle, index, value)
    }

    func bind(_ index: Int32, blob: [UInt8]) {
        blob.withUnsafeBytes { b in
            _ = sqlite3_bind_blob(handle, index, b.baseAddress, Int32(b.count), transient)
        }
    }

    /// Steps a statement that returns no rows.
    @inlinable public func run() throws {
        let rc = sqlite3_step(handle)
        guard rc == SQLITE_DONE else { throw connection.error(rc, String(cString: sqlite3_sql(handle))) }
        sqlite3_reset(handle)
    }

    /// Steps once; true while a row is available.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        guard rc == SQLITE_DONE else { throw connection.error(rc, String(cString: sqlite3_sql(handle))) }
        return false
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    var columnCount: Int32 { sqlite3_column_count(handle) }

    /// The column's bytes, valid until the statement steps or is reset.
    func blob(_ column: Int32) -> UnsafeRawBufferPointer {
        let n = Int(sqlite3_column_bytes(handle, column))
        guard n > 0, let p = sqlite3_column_blob(handle, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: n)
    }

    /// The column's text, all `sqlite3_column_bytes` of it: a name may contain NUL, which
    /// `String(cString:)` would cut it at.
    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(handle, column) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }
}

extension SQLiteConnection {
    /// Inserts `count` rows with multi-row `VALUES` lists of up to `rowsPerStatement` rows:
    /// one statement execution (cursor open, halt, reset) per chunk instead of per row.
    /// `bind(statement, firstParameter, row)` binds one row's `columns` values from
    /// `firstParameter` on. `sql` is the statement up to and including `VALUES`, and
    /// `suffix` (e.g. an `ON CONFLICT` clause) follows the value lists.
    func insertRows(_ sql: String, columns: Int, count: Int, suffix: String = "", rowsPerStatement: Int = 128,
                    bind: (Statement, Int32, Int) -> Void) throws {
        var row = 0
        while row < count {
            let n = min(rowsPerStatement, count - row)
            let statement = try self.statement(bulkText(sql, columns: columns, rows: n, suffix: suffix))
            for i in 0..<n { bind(statement, Int32(i * columns + 1), row + i) }
            try statement.run()
            row += n
        }
    }

    private func bulkText(_ sql: String, columns: Int, rows: Int, suffix: String) -> String {
        let key = sql + suffix
        if let text = bulkSQL[key]?[rows] { return text }
        let tuple = "(" + Array(repeating: "?", count: columns).joined(separator: ",") + ")"
        let text = sql + " " + Array(repeating: tuple, count: rows).joined(separator: ",") + " " + suffix
        bulkSQL[key, default: [:]][rows] = text
        return text
    }
}
