/// Tunables of the queue, the flushers and the spool.
public struct PipelineConfiguration: Sendable {
    /// Holds `*.batch` files; `tmp/` and `quarantine/` live inside it.
    public var spoolDirectory: String
    public var shards: Int
    /// Events per shard held in memory before producers are refused.
    public var queueCapacity: Int
    /// A batch is cut when it has this many events ...
    public var flushEvents: Int
    /// ... or when its oldest event has waited this long.
    public var flushIntervalMilliseconds: Int
    /// Spool files waiting for the loader before flushers stop taking from the queue.
    public var maxSpoolFiles: Int
    /// Prefix of every batch id; unique per collector (see ``InstanceID``).
    public var instanceID: String
    /// zstd compression level of spool files.
    public var compressionLevel: Int32

    public init(spoolDirectory: String, shards: Int = 2, queueCapacity: Int = 65_536, flushEvents: Int = 8192,
                flushIntervalMilliseconds: Int = 50, maxSpoolFiles: Int = 512, instanceID: String,
                compressionLevel: Int32 = 1) {
        self.spoolDirectory = spoolDirectory
        self.shards = shards
        self.queueCapacity = queueCapacity
        self.flushEvents = flushEvents
        self.flushIntervalMilliseconds = flushIntervalMilliseconds
        self.maxSpoolFiles = maxSpoolFiles
        self.instanceID = instanceID
        self.compressionLevel = compressionLevel
    }
}
