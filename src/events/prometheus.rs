//! The Prometheus side of the events: metric names in one place, and the process-wide
//! recorder that `/metrics` renders.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names, in one place.
pub mod names {
    /// Records taken from the channel by batch writers.
    pub const CONSUMED: &str = "orderstore_records_consumed_total";
    /// Orders newly stored.
    pub const STORED: &str = "orderstore_orders_stored_total";
    /// Orders whose uid was already stored.
    pub const DUPLICATES: &str = "orderstore_orders_duplicate_total";
    /// Records rejected, by `reason`.
    pub const REJECTED: &str = "orderstore_records_rejected_total";
    /// Partition fetches answered, by `answer` (`records` or `empty`).
    pub const FETCHES: &str = "orderstore_kafka_fetches_total";
    /// Failed batch writes that were retried.
    pub const WRITE_RETRIES: &str = "orderstore_postgres_write_retries_total";
    /// Orders evicted from memory, by `cause` (`age` or `count`).
    pub const EVICTIONS: &str = "orderstore_evictions_total";
    /// Time from taking a batch off the channel to acknowledging it.
    pub const BATCH_SECONDS: &str = "orderstore_batch_processing_seconds";
    /// Records per handled batch.
    pub const BATCH_SIZE: &str = "orderstore_batch_size_records";
    /// Time of one batch transaction in PostgreSQL.
    pub const POSTGRES_WRITE_SECONDS: &str = "orderstore_postgres_write_seconds";
    /// High watermark minus stored offset, by `partition`.
    pub const LAG: &str = "orderstore_consumer_lag_records";
    /// Commits of stored offsets to the consumer group `KAFKA_GROUP_ID`, by `result` (`ok`,
    /// `failed`, `group_in_use`, `group_ahead`).
    pub const GROUP_COMMITS: &str = "orderstore_consumer_group_commits_total";
    /// The consumer group's committed offset, by `partition`, for the partitions read here.
    pub const GROUP_OFFSET: &str = "orderstore_consumer_group_committed_offset";
    /// High watermark minus the consumer group's committed offset (the lag Kafka's tools
    /// show), by `partition`.
    pub const GROUP_LAG: &str = "orderstore_consumer_group_lag_records";
    /// Records waiting in the channel between readers and batch writers.
    pub const CHANNEL_FILL: &str = "orderstore_channel_records";
    /// The channel's capacity.
    pub const CHANNEL_CAPACITY: &str = "orderstore_channel_capacity_records";
    /// Orders in memory.
    pub const IN_MEMORY: &str = "orderstore_orders_in_memory";
    /// The process's resident memory (what an in-memory store costs), in bytes.
    pub const RESIDENT_MEMORY: &str = "orderstore_resident_memory_bytes";
    /// Seconds a partition has had records to read without its stored offset moving, by
    /// `partition`.
    pub const STALLED: &str = "orderstore_partition_stalled_seconds";
    /// 1, labelled with this instance's `instance` id.
    pub const INSTANCE: &str = "orderstore_instance_info";
    /// Partition leases this instance holds.
    pub const PARTITIONS_OWNED: &str = "orderstore_partitions_owned";
    /// Lease changes, by `cause` (`taken`, `taken_expired`, `released`, `fenced`).
    pub const LEASE_CHANGES: &str = "orderstore_lease_changes_total";
    /// Partitions `ON_REJECT=halt` stopped at a rejected record.
    pub const PARTITIONS_HALTED: &str = "orderstore_partitions_halted_total";
    /// Rejects produced to the dead-letter topic.
    pub const DEAD_LETTERS: &str = "orderstore_dead_letters_published_total";
    /// Failed attempts to publish rejects (retried).
    pub const DEAD_LETTER_FAILURES: &str = "orderstore_dead_letter_failures_total";
    /// Published rejects deleted after `REJECTS_RETENTION`.
    pub const REJECTS_DELETED: &str = "orderstore_rejects_deleted_total";
    /// Orders read from PostgreSQL into memory, at start-up and when partitions are taken.
    pub const ORDERS_LOADED: &str = "orderstore_orders_loaded_total";
    /// Transactions of instances whose leases expired, ended so a takeover need not wait.
    pub const STALE_SESSIONS_ENDED: &str = "orderstore_stale_sessions_ended_total";
    /// HTTP requests, by `route` and `status`.
    pub const HTTP_REQUESTS: &str = "orderstore_http_requests_total";
    /// HTTP request latency, by `route`.
    pub const HTTP_SECONDS: &str = "orderstore_http_request_duration_seconds";
    /// Records produced by the built-in writer, by `kind` (`valid` or `invalid`).
    pub const WRITER_PRODUCED: &str = "orderstore_writer_records_total";
    /// Failed operations retried with backoff, by `operation`.
    pub const RETRIES: &str = "orderstore_retries_total";
    /// Failed steps of the lease protocol, by `step`.
    pub const LEASE_ERRORS: &str = "orderstore_lease_errors_total";
    /// Components that panicked, failed or ended early (each stops the service), by
    /// `component`.
    pub const COMPONENT_FAILURES: &str = "orderstore_component_failures_total";
    /// Exits forced by a second signal during an orderly stop.
    pub const FORCED_EXITS: &str = "orderstore_forced_exits_total";
    /// Stored orders left out of memory because they could not be read back.
    pub const RESTORE_ROWS_SKIPPED: &str = "orderstore_restore_rows_skipped_total";
    /// Failed requests to Kafka, by `operation` (`connect` or `fetch`); each is retried.
    pub const KAFKA_ERRORS: &str = "orderstore_kafka_errors_total";
    /// Batches PostgreSQL refused as a whole (their records are written one by one).
    pub const BATCHES_REFUSED: &str = "orderstore_batches_refused_total";
    /// Failed writes of the durable offsets (retried).
    pub const OFFSET_STORE_FAILURES: &str = "orderstore_offset_store_failures_total";
    /// Partitions whose stored offset the broker no longer had, restarted from the earliest.
    pub const OFFSETS_OUT_OF_RANGE: &str = "orderstore_offsets_out_of_range_total";
    /// Rejects whose bytes PostgreSQL refused as text, kept in hex.
    pub const REJECTS_IN_HEX: &str = "orderstore_rejects_kept_in_hex_total";
    /// Reads of PostgreSQL for an HTTP request that failed (each answered 503), by `read`
    /// (`order` or `rejects`).
    pub const HTTP_READ_FAILURES: &str = "orderstore_http_read_failures_total";
}

/// The process-wide Prometheus recorder, installed on first use. Latencies get buckets from
/// 100 µs to 10 s, batch sizes from 1 to 10,000 records, so they render as histograms.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ];
        let sizes = [
            1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Suffix("_records".into()), &sizes)
            });
        match builder {
            Ok(builder) => {
                let recorder = builder.build_recorder();
                let handle = recorder.handle();
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!(
                        "a metrics recorder was already installed; /metrics will be empty"
                    );
                }
                handle
            }
            Err(error) => {
                tracing::warn!(%error, "metrics buckets are invalid, using summaries");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}
