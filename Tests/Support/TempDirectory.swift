import Foundation

/// A fresh temporary directory for `body`, removed afterwards.
public func withTempDir<T>(_ body: (String) async throws -> T) async throws -> T {
    let dir = NSTemporaryDirectory() + "tally-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try await body(dir)
}
