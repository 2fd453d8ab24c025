/// Tunables of the queue, the flushers and the spool. No defaults here: `tally serve`'s
/// settings table (``TallyServer/Settings``) is the one place they are defined.
public struct PipelineConfiguration: Sendable {
    /// Holds `*.batch` files; `tmp/` and `quarantine/` live inside it.
    public var spoolDirectory: String
    public var shards: Int
    /// Events per shard held in memory before producers are refused.
    public var queueCapacity: Int
    /// A batch is cut when it has this many events ...
    public var flushEvents: Int
    /// ... or when its oldest event has waited this long.
    public var flushInterval: Duration
    /// Spool files waiting for the loader before flushers stop taking from the queue.
    public var maxSpoolFiles: Int
    /// Prefix of every batch id; unique per collector (see ``InstanceID``).
    public var instanceID: String
    /// zstd compression level of spool files.
    public var compressionLevel: Int32 = 1

    public init(spoolDirectory: String, shards: Int, queueCapacity: Int, flushEvents: Int,
                flushInterval: Duration, maxSpoolFiles: Int, instanceID: String) {
        self.spoolDirectory = spoolDirectory
        self.shards = shards
        self.queueCapacity = queueCapacity
        self.flushEvents = flushEvents
        self.flushInterval = flushInterval
        self.maxSpoolFiles = maxSpoolFiles
        self.instanceID = instanceID
    }
}
