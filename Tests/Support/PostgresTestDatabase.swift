import Foundation
import Logging
import PostgresNIO

/// Scratch databases on the test PostgreSQL server (`TALLY_TEST_POSTGRES`, which `make test`
/// starts), one per test, so tests never see each other's rows.
public enum PostgresTestDatabase {
    /// The admin URL of the test server, or nil when PostgreSQL tests are off.
    public static var adminURL: String? { ProcessInfo.processInfo.environment["TALLY_TEST_POSTGRES"] }

    /// Creates an empty database named `prefix_<random>` and returns its URL.
    public static func create(prefix: String = "t") async throws -> String {
        guard let admin = adminURL else { throw PostgresTestError("TALLY_TEST_POSTGRES is not set") }
        let name = prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await withAdminClient(admin) { client in
            _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        var parts = URLComponents(string: admin)!
        parts.path = "/" + name
        return parts.string!
    }

    /// The first column of every row of `sql` on the database at `url`, as text.
    public static func query(_ url: String, _ sql: String) async throws -> [String] {
        try await withAdminClient(url) { client in
            var out: [String] = []
            for try await v in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(String.self) { out.append(v) }
            return out
        }
    }

    /// Runs `body` with a client connected to the database at `url` (administrative SQL).
    public static func withAdminClient<T: Sendable>(_ url: String, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let u = URLComponents(string: url)!
        let db = u.path.hasPrefix("/") ? String(u.path.dropFirst()) : u.path
        let config = PostgresClient.Configuration(host: u.host ?? "127.0.0.1", port: u.port ?? 5432, username: u.user ?? "postgres",
                                                  password: u.password, database: db.isEmpty ? nil : db, tls: .disable)
        let client = PostgresClient(configuration: config)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

public struct PostgresTestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
