import CoreMetrics
import Metrics

/// The pipeline's metrics, created against an explicit factory so several pipelines (tests)
/// can live in one process, each with its own registry.
public struct PipelineMetrics: Sendable {
    let batchesSpooled: Counter
    let eventsSpooled: Counter
    let batchesLoaded: Counter
    let eventsLoaded: Counter
    let batchesDuplicate: Counter
    let batchesQuarantined: Counter
    let spoolWriteErrors: Counter
    let storeErrors: Counter
    let spoolWriteSeconds: Timer
    let loadSeconds: Timer
    let spoolBacklogFiles: Gauge
    let spoolBacklogBytes: Gauge
    let queueDepth: [Gauge]

    public init(factory: any MetricsFactory, shards: Int) {
        batchesSpooled = Counter(label: "tally_spool_batches_written_total", factory: factory)
        eventsSpooled = Counter(label: "tally_spool_events_written_total", factory: factory)
        batchesLoaded = Counter(label: "tally_store_batches_loaded_total", factory: factory)
        eventsLoaded = Counter(label: "tally_store_events_loaded_total", factory: factory)
        batchesDuplicate = Counter(label: "tally_store_batches_duplicate_total", factory: factory)
        batchesQuarantined = Counter(label: "tally_spool_batches_quarantined_total", factory: factory)
        spoolWriteErrors = Counter(label: "tally_spool_write_errors_total", factory: factory)
        storeErrors = Counter(label: "tally_store_errors_total", factory: factory)
        spoolWriteSeconds = Timer(label: "tally_spool_write_seconds", factory: factory)
        loadSeconds = Timer(label: "tally_store_load_seconds", factory: factory)
        spoolBacklogFiles = Gauge(label: "tally_spool_backlog_files", factory: factory)
        spoolBacklogBytes = Gauge(label: "tally_spool_backlog_bytes", factory: factory)
        queueDepth = (0..<shards).map { Gauge(label: "tally_queue_depth", dimensions: [("shard", String($0))], factory: factory) }
    }
}
