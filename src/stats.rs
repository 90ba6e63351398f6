//! What the pipeline did, as one set of events: each method both counts for this instance
//! (atomics read by the progress log, health and tests) and records the Prometheus metric, so
//! the two never drift apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::memory::Evicted;

/// Metric names, in one place.
pub mod names {
    /// Records taken from the channel by handlers.
    pub const CONSUMED: &str = "orderstore_records_consumed_total";
    /// Orders newly stored.
    pub const STORED: &str = "orderstore_orders_stored_total";
    /// Orders whose uid was already stored.
    pub const DUPLICATES: &str = "orderstore_orders_duplicate_total";
    /// Records rejected, by `reason`.
    pub const REJECTED: &str = "orderstore_records_rejected_total";
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
    /// Records waiting in the channel between readers and handlers.
    pub const CHANNEL_FILL: &str = "orderstore_channel_records";
    /// The channel's capacity.
    pub const CHANNEL_CAPACITY: &str = "orderstore_channel_capacity_records";
    /// Orders in memory.
    pub const IN_MEMORY: &str = "orderstore_orders_in_memory";
    /// HTTP requests, by `route` and `status`.
    pub const HTTP_REQUESTS: &str = "orderstore_http_requests_total";
    /// HTTP request latency, by `route`.
    pub const HTTP_SECONDS: &str = "orderstore_http_request_duration_seconds";
    /// Records produced by the built-in writer, by `kind` (`valid` or `invalid`).
    pub const WRITER_PRODUCED: &str = "orderstore_writer_records_total";
}

/// Counters of one running instance.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records taken from the channel by handlers.
    pub consumed: AtomicU64,
    /// Orders newly stored in PostgreSQL.
    pub stored: AtomicU64,
    /// Orders whose `order_uid` was already stored.
    pub duplicates: AtomicU64,
    /// Records rejected by the contract (or refused by PostgreSQL).
    pub rejected: AtomicU64,
    /// Batch writes to PostgreSQL that failed and were retried.
    pub write_retries: AtomicU64,
    /// Orders evicted from memory by the count limit.
    pub evicted_by_count: AtomicU64,
    /// Orders evicted from memory by age.
    pub evicted_by_age: AtomicU64,
    /// Whether the last Kafka operation of every reader succeeded.
    pub kafka_reachable: AtomicBool,
}

impl Stats {
    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, name: &'static str, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!(name).increment(n as u64);
    }

    /// Handlers took `n` records off the channel.
    pub fn consumed(&self, n: usize) {
        Self::add(&self.consumed, names::CONSUMED, n);
    }

    /// `n` orders were newly stored.
    pub fn stored(&self, n: usize) {
        Self::add(&self.stored, names::STORED, n);
    }

    /// `n` orders were already stored.
    pub fn duplicates(&self, n: usize) {
        Self::add(&self.duplicates, names::DUPLICATES, n);
    }

    /// One record was rejected for `reason` (a short, fixed kind).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        counter!(names::REJECTED, "reason" => reason).increment(1);
    }

    /// A batch write failed and will be retried.
    pub fn write_retry(&self) {
        Self::add(&self.write_retries, names::WRITE_RETRIES, 1);
    }

    /// A sweep evicted orders.
    pub fn evicted(&self, evicted: Evicted) {
        self.evicted_by_age
            .fetch_add(evicted.by_age as u64, Ordering::Relaxed);
        self.evicted_by_count
            .fetch_add(evicted.by_count as u64, Ordering::Relaxed);
        counter!(names::EVICTIONS, "cause" => "age").increment(evicted.by_age as u64);
        counter!(names::EVICTIONS, "cause" => "count").increment(evicted.by_count as u64);
    }

    /// A batch of `n_records` was handled in `seconds`, of which `write_seconds` in PostgreSQL.
    pub fn batch_handled(&self, n_records: usize, seconds: f64, write_seconds: f64) {
        histogram!(names::BATCH_SIZE).record(n_records as f64);
        histogram!(names::BATCH_SECONDS).record(seconds);
        histogram!(names::POSTGRES_WRITE_SECONDS).record(write_seconds);
    }

    /// Notes whether Kafka answered the last request.
    pub fn kafka_answered(&self, reachable: bool) {
        self.kafka_reachable.store(reachable, Ordering::Relaxed);
    }

    /// Whether Kafka answered the last request.
    pub fn is_kafka_reachable(&self) -> bool {
        self.kafka_reachable.load(Ordering::Relaxed)
    }

    /// Sets the gauges that describe the pipeline's state now.
    pub fn observe_state(
        &self,
        orders_in_memory: usize,
        channel_fill: usize,
        channel_capacity: usize,
        lags: &[(i32, i64)],
    ) {
        gauge!(names::IN_MEMORY).set(orders_in_memory as f64);
        gauge!(names::CHANNEL_FILL).set(channel_fill as f64);
        gauge!(names::CHANNEL_CAPACITY).set(channel_capacity as f64);
        for (partition, lag) in lags {
            gauge!(names::LAG, "partition" => partition.to_string()).set(*lag as f64);
        }
    }
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
