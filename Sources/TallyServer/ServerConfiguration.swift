import Foundation

/// Everything `tally serve` can be told; the CLI fills it from flags and `TALLY_*` variables.
public struct ServerConfiguration: Sendable {
    /// Holds the spool (`spool/`), the SQLite file (`tally.sqlite`) and `instance-id`.
    public var dataDirectory: String = "./data"
    /// Where loaded events live: nil for the embedded SQLite file in the data directory, or a
    /// `postgres://user@host:port/database` URL shared by several collectors.
    public var storeURL: String?
    public var httpHost: String = "0.0.0.0"
    public var httpPort: Int = 8080
    public var wireHost: String = "0.0.0.0"
    public var wirePort: Int = 7070
    public var shards: Int = ProcessInfo.processInfo.activeProcessorCount
    public var queueCapacity: Int = 65_536
    public var flushEvents: Int = 8192
    public var flushIntervalMilliseconds: Int = 50
    public var maxSpoolFiles: Int = 512
    public var udpReceiveBuffer: Int = 8 << 20
    /// How long `?ack=durable` waits before answering 503.
    public var durableTimeoutMilliseconds: Int = 10_000
    /// After a stop signal, how long draining into the store may take before unloaded batches
    /// are left in the spool for the next start.
    public var shutdownTimeoutSeconds: Int = 30

    public init() {}
}
