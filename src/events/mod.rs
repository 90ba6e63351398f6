//! What the pipeline does, as one typed event per happening (as vector does with its internal
//! events). Emitting an event is the only way to count it: the same call counts for this
//! instance ([`Counters`], read by the progress log, readiness and tests), records the
//! Prometheus metric and writes the log line, so logs and metrics cannot drift apart.
//!
//! Per-record happenings log at DEBUG. Rejected records are also summed up in one WARN line at
//! most every 10 s ([`rejections`]), so a flood of hostile records cannot flood the log.

pub mod prometheus;
mod rejections;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use metrics::{counter, gauge, histogram};

use crate::order::Rejection;
use crate::store::memory::Evicted;
use prometheus::names;
pub use rejections::{RejectionSummary, SUMMARY_EVERY};

/// Something the pipeline did, which [`Events::emit`] counts, records and logs.
pub trait PipelineEvent {
    /// Counts, records and logs the event.
    fn emit(self, events: &Events);
}

/// Counts of one running instance, for the progress log, readiness and tests.
#[derive(Debug, Default)]
pub struct Counters {
    consumed: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    write_retries: AtomicU64,
    evicted_by_count: AtomicU64,
    evicted_by_age: AtomicU64,
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Records taken from the channel by batch writers.
    pub fn consumed(&self) -> u64 {
        read(&self.consumed)
    }

    /// Orders newly stored in PostgreSQL.
    pub fn stored(&self) -> u64 {
        read(&self.stored)
    }

    /// Orders whose `order_uid` was already stored.
    pub fn duplicates(&self) -> u64 {
        read(&self.duplicates)
    }

    /// Records rejected by the contract or refused by PostgreSQL.
    pub fn rejected(&self) -> u64 {
        read(&self.rejected)
    }

    /// Batch writes to PostgreSQL that failed and were retried.
    pub fn write_retries(&self) -> u64 {
        read(&self.write_retries)
    }

    /// Orders evicted from memory by the count limit.
    pub fn evicted_by_count(&self) -> u64 {
        read(&self.evicted_by_count)
    }

    /// Orders evicted from memory by age.
    pub fn evicted_by_age(&self) -> u64 {
        read(&self.evicted_by_age)
    }
}

/// Where events go: this instance's counters, the rejection summary, and whether Kafka
/// answered the last request made by any reader.
#[derive(Debug, Default)]
pub struct Events {
    counters: Counters,
    rejections: Mutex<RejectionSummary>,
    kafka_reachable: AtomicBool,
}

impl Events {
    /// Emits `event`.
    pub fn emit(&self, event: impl PipelineEvent) {
        event.emit(self);
    }

    /// This instance's counts.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether the last Kafka request of any reader was answered (one flag for all of them:
    /// readiness asks whether the broker answers, not which partition was read last).
    pub fn is_kafka_reachable(&self) -> bool {
        self.kafka_reachable.load(Ordering::Relaxed)
    }

    /// Writes the rejection summary if one is due (called every second by the observer) or,
    /// with `force`, whenever rejections are pending (at shutdown).
    pub fn flush_rejection_summary(&self, force: bool) {
        let line = self
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush(tokio::time::Instant::now(), force);
        if let Some(line) = line {
            line.log();
        }
    }
}

/// Batch writers took records off the channel.
#[derive(Debug, Clone, Copy)]
pub struct RecordsConsumed {
    /// How many.
    pub n_records: usize,
}

impl PipelineEvent for RecordsConsumed {
    fn emit(self, events: &Events) {
        add(&events.counters.consumed, self.n_records as u64);
        counter!(names::CONSUMED).increment(self.n_records as u64);
    }
}

/// A batch is durable and in memory.
#[derive(Debug, Clone, Copy)]
pub struct BatchStored {
    /// Records in the batch.
    pub n_records: usize,
    /// Orders newly stored.
    pub n_stored: usize,
    /// Orders whose uid was already stored.
    pub n_duplicates: usize,
    /// Records rejected.
    pub n_rejected: usize,
    /// From taking the batch to acknowledging it.
    pub seconds: f64,
    /// Of which writing to PostgreSQL.
    pub write_seconds: f64,
}

impl PipelineEvent for BatchStored {
    fn emit(self, events: &Events) {
        add(&events.counters.stored, self.n_stored as u64);
        add(&events.counters.duplicates, self.n_duplicates as u64);
        counter!(names::STORED).increment(self.n_stored as u64);
        counter!(names::DUPLICATES).increment(self.n_duplicates as u64);
        histogram!(names::BATCH_SIZE).record(self.n_records as f64);
        histogram!(names::BATCH_SECONDS).record(self.seconds);
        histogram!(names::POSTGRES_WRITE_SECONDS).record(self.write_seconds);
        tracing::debug!(
            records = self.n_records,
            stored = self.n_stored,
            duplicates = self.n_duplicates,
            rejected = self.n_rejected,
            seconds = self.seconds,
            "batch done"
        );
    }
}

/// A record is not an order; it is kept in `rejected_records`.
#[derive(Debug, Clone, Copy)]
pub struct RecordRejected<'a> {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Why.
    pub rejection: &'a Rejection,
}

impl PipelineEvent for RecordRejected<'_> {
    fn emit(self, events: &Events) {
        let kind = self.rejection.kind();
        add(&events.counters.rejected, 1);
        counter!(names::REJECTED, "reason" => kind).increment(1);
        tracing::debug!(
            partition = self.partition,
            offset = self.offset,
            reason = %self.rejection,
            "record rejected, it is kept in rejected_records"
        );
        let line = events
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(
                self.rejection,
                self.partition,
                self.offset,
                tokio::time::Instant::now(),
            );
        if let Some(line) = line {
            line.log();
        }
    }
}

/// PostgreSQL refused a whole batch's data; its records are written one by one.
#[derive(Debug)]
pub struct BatchRefused<'a> {
    /// PostgreSQL's reason.
    pub error: &'a dyn std::error::Error,
    /// Records in the batch.
    pub n_records: usize,
}

impl PipelineEvent for BatchRefused<'_> {
    fn emit(self, _: &Events) {
        tracing::warn!(
            error = %self.error,
            records = self.n_records,
            "PostgreSQL refused a batch, writing its records one by one"
        );
    }
}

/// PostgreSQL refused a record's bytes even as a reject; they are kept in hex instead.
#[derive(Debug)]
pub struct RejectKeptInHex<'a> {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// PostgreSQL's reason.
    pub error: &'a dyn std::error::Error,
}

impl PipelineEvent for RejectKeptInHex<'_> {
    fn emit(self, _: &Events) {
        tracing::warn!(
            partition = self.partition,
            offset = self.offset,
            error = %self.error,
            "PostgreSQL refused a rejected record's bytes; they are kept in rejected_records in hex"
        );
    }
}

/// A write to PostgreSQL failed and is retried with backoff.
#[derive(Debug)]
pub struct WriteRetried<'a> {
    /// What failed.
    pub error: &'a dyn std::error::Error,
    /// Orders in the write.
    pub n_orders: usize,
    /// Rejects in the write.
    pub n_rejects: usize,
}

impl PipelineEvent for WriteRetried<'_> {
    fn emit(self, events: &Events) {
        add(&events.counters.write_retries, 1);
        counter!(names::WRITE_RETRIES).increment(1);
        tracing::warn!(
            error = %self.error,
            orders = self.n_orders,
            rejects = self.n_rejects,
            "writing to PostgreSQL failed, retrying"
        );
    }
}

/// A sweep evicted orders from memory.
#[derive(Debug, Clone, Copy)]
pub struct OrdersEvicted {
    /// How many, by cause.
    pub evicted: Evicted,
    /// Orders left in memory.
    pub in_memory: usize,
}

impl PipelineEvent for OrdersEvicted {
    fn emit(self, events: &Events) {
        let Evicted { by_age, by_count } = self.evicted;
        add(&events.counters.evicted_by_age, by_age as u64);
        add(&events.counters.evicted_by_count, by_count as u64);
        counter!(names::EVICTIONS, "cause" => "age").increment(by_age as u64);
        counter!(names::EVICTIONS, "cause" => "count").increment(by_count as u64);
        if by_age + by_count > 0 {
            tracing::debug!(
                by_age,
                by_count,
                in_memory = self.in_memory,
                "sweep evicted orders"
            );
        }
    }
}

/// The broker answered a request.
#[derive(Debug, Clone, Copy)]
pub struct KafkaAnswered;

impl PipelineEvent for KafkaAnswered {
    fn emit(self, events: &Events) {
        events.kafka_reachable.store(true, Ordering::Relaxed);
    }
}

/// A fetch failed; the reader retries with backoff.
#[derive(Debug)]
pub struct KafkaFetchFailed<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset fetched from.
    pub offset: i64,
    /// What failed.
    pub error: &'a dyn std::error::Error,
}

impl PipelineEvent for KafkaFetchFailed<'_> {
    fn emit(self, events: &Events) {
        events.kafka_reachable.store(false, Ordering::Relaxed);
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            error = %self.error,
            "Kafka fetch failed, retrying"
        );
    }
}

/// The fake-data writer produced records.
#[derive(Debug, Clone, Copy)]
pub struct WriterProduced {
    /// Valid orders.
    pub n_valid: u64,
    /// Records the contract rejects.
    pub n_invalid: u64,
}

impl PipelineEvent for WriterProduced {
    fn emit(self, _: &Events) {
        counter!(names::WRITER_PRODUCED, "kind" => "valid").increment(self.n_valid);
        counter!(names::WRITER_PRODUCED, "kind" => "invalid").increment(self.n_invalid);
    }
}

/// The pipeline's state now, set every second by the observer.
#[derive(Debug, Clone, Copy)]
pub struct StateObserved<'a> {
    /// Orders in memory.
    pub orders_in_memory: usize,
    /// Records waiting in the channel.
    pub channel_fill: usize,
    /// The channel's capacity.
    pub channel_capacity: usize,
    /// High watermark minus stored offset, per partition.
    pub lags: &'a [(i32, i64)],
}

impl PipelineEvent for StateObserved<'_> {
    fn emit(self, _: &Events) {
        gauge!(names::IN_MEMORY).set(self.orders_in_memory as f64);
        gauge!(names::CHANNEL_FILL).set(self.channel_fill as f64);
        gauge!(names::CHANNEL_CAPACITY).set(self.channel_capacity as f64);
        for (partition, lag) in self.lags {
            gauge!(names::LAG, "partition" => partition.to_string()).set(*lag as f64);
        }
    }
}

/// An HTTP request was answered.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestServed {
    /// The route pattern, a bounded label.
    pub route: &'static str,
    /// The status code.
    pub status: u16,
    /// From the request's arrival to its answer.
    pub seconds: f64,
}

impl PipelineEvent for HttpRequestServed {
    /// Metric handles are looked up in the registry once per worker thread and route/status,
    /// then kept: the registry lookup (hashing labels, allocating keys) would otherwise be paid
    /// on every request. Requests are not logged: per-request lines would be the access log
    /// of a busy server.
    fn emit(self, _: &Events) {
        type Handles = (metrics::Counter, metrics::Histogram);
        thread_local! {
            static HANDLES: std::cell::RefCell<std::collections::HashMap<(&'static str, u16), Handles>> =
                std::cell::RefCell::new(std::collections::HashMap::new());
        }
        let Self {
            route,
            status,
            seconds,
        } = self;
        HANDLES.with(|handles| {
            let mut handles = handles.borrow_mut();
            let (requests, latency) = handles.entry((route, status)).or_insert_with(|| {
                (
                    counter!(names::HTTP_REQUESTS, "route" => route, "status" => status.to_string()),
                    histogram!(names::HTTP_SECONDS, "route" => route),
                )
            });
            requests.increment(1);
            latency.record(seconds);
        });
    }
}
