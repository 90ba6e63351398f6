//! The events around the ingest path: evictions, Kafka's state, the writer, the observer's
//! gauges, and HTTP requests.

use std::sync::atomic::Ordering;

use metrics::{counter, gauge, histogram};

use super::prometheus::names;
use super::{add, Events, PipelineEvent};
use crate::store::memory::Evicted;

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

/// The orders of partitions this instance took were read into memory.
#[derive(Debug)]
pub struct PartitionsLoaded<'a> {
    /// The partitions, or `None` for every stored order (this instance owns them all).
    pub partitions: Option<&'a [i32]>,
    /// Orders loaded.
    pub restored: usize,
    /// How long it took.
    pub seconds: f64,
}

impl PipelineEvent for PartitionsLoaded<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::ORDERS_LOADED).increment(self.restored as u64);
        let partitions = match self.partitions {
            Some(partitions) => format!("{partitions:?}"),
            None => "all".to_string(),
        };
        tracing::info!(
            restored = self.restored,
            seconds = self.seconds,
            orders_per_second = (self.restored as f64 / self.seconds.max(1e-9)) as u64,
            partitions,
            "memory restored from PostgreSQL"
        );
    }
}

/// The orders of partitions this instance gave up (released or fenced) left memory.
#[derive(Debug)]
pub struct PartitionsUnloaded<'a> {
    /// The partitions.
    pub partitions: &'a [i32],
    /// Orders evicted.
    pub evicted: usize,
}

impl PipelineEvent for PartitionsUnloaded<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::EVICTIONS, "cause" => "partition_given_up").increment(self.evicted as u64);
        tracing::info!(
            partitions = ?self.partitions,
            evicted = self.evicted,
            "orders of partitions given up left memory"
        );
    }
}

/// Memory holds what this instance took at start-up: it is ready as far as memory goes.
#[derive(Debug, Clone, Copy)]
pub struct MemoryRestored;

impl PipelineEvent for MemoryRestored {
    fn emit(self, events: &Events) {
        events.restored.store(true, Ordering::Relaxed);
    }
}

/// The broker answered a request.
#[derive(Debug, Clone, Copy)]
pub struct KafkaAnswered;

impl PipelineEvent for KafkaAnswered {
    fn emit(self, events: &Events) {
        // A load on every answer; the store only when it changes.
        if !events.kafka_reachable.load(Ordering::Relaxed) {
            events.kafka_reachable.store(true, Ordering::Relaxed);
        }
    }
}

/// Why a lease changed hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCause {
    /// Taken while free (at start-up, or released by another instance).
    Taken,
    /// Taken after another instance's lease expired (it crashed, froze or was cut off).
    TakenExpired,
    /// Given up: above the fair share, so a newcomer gets its part.
    Released,
    /// Lost: another instance took it after this one's lease expired.
    Fenced,
}

impl LeaseCause {
    fn as_str(self) -> &'static str {
        match self {
            LeaseCause::Taken => "taken",
            LeaseCause::TakenExpired => "taken_expired",
            LeaseCause::Released => "released",
            LeaseCause::Fenced => "fenced",
        }
    }
}

/// A partition lease was taken, given up or lost.
#[derive(Debug, Clone, Copy)]
pub struct LeaseChanged {
    /// The lease.
    pub lease: crate::store::postgres::leases::Lease,
    /// Why.
    pub cause: LeaseCause,
}

impl PipelineEvent for LeaseChanged {
    fn emit(self, _events: &Events) {
        counter!(names::LEASE_CHANGES, "cause" => self.cause.as_str()).increment(1);
        tracing::info!(
            partition = self.lease.partition,
            epoch = self.lease.epoch,
            cause = self.cause.as_str(),
            "partition lease changed"
        );
    }
}

/// A session of an instance whose leases expired was ended: it was frozen in the middle of a
/// batch transaction, whose locks would hold up the takeover (`leases.rs`
/// `end_stale_transactions`).
#[derive(Debug)]
pub struct StaleSessionEnded<'a> {
    /// The session, its owner and pid.
    pub session: &'a crate::store::postgres::leases::EndedSession,
}

impl PipelineEvent for StaleSessionEnded<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::STALE_SESSIONS_ENDED).increment(1);
        tracing::warn!(
            owner = self.session.owner,
            pid = self.session.pid,
            ended = self.session.ended,
            "ended a PostgreSQL transaction left open by an instance whose leases expired"
        );
    }
}

/// Rejects of a partition were produced to the dead-letter topic and marked published.
#[derive(Debug, Clone, Copy)]
pub struct DeadLettersPublished {
    /// The source partition.
    pub partition: i32,
    /// How many.
    pub n_records: usize,
}

impl PipelineEvent for DeadLettersPublished {
    fn emit(self, _events: &Events) {
        counter!(names::DEAD_LETTERS).increment(self.n_records as u64);
        tracing::debug!(
            partition = self.partition,
            n_records = self.n_records,
            "rejects published to the dead-letter topic"
        );
    }
}

/// Publishing rejects (or deleting old ones) failed; it is retried with backoff, and the
/// rejects stay pending meanwhile.
#[derive(Debug)]
pub struct DeadLettersFailed<'a> {
    /// What failed.
    pub error: &'a str,
}

impl PipelineEvent for DeadLettersFailed<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::DEAD_LETTER_FAILURES).increment(1);
        tracing::warn!(
            error = self.error,
            "the dead-letter topic is behind, retrying; the rejects stay recorded"
        );
    }
}

/// Published rejects past `REJECTS_RETENTION` were deleted.
#[derive(Debug, Clone, Copy)]
pub struct PublishedRejectsDeleted {
    /// How many.
    pub n_records: u64,
}

impl PipelineEvent for PublishedRejectsDeleted {
    fn emit(self, _events: &Events) {
        counter!(names::REJECTS_DELETED).increment(self.n_records);
        tracing::info!(
            n_records = self.n_records,
            "published rejects past their retention deleted"
        );
    }
}

/// `ON_REJECT=halt` stopped a partition at a rejected record.
#[derive(Debug)]
pub struct PartitionHalted<'a> {
    /// The partition.
    pub partition: i32,
    /// The rejected record's offset, which the stored offset will not pass.
    pub offset: i64,
    /// Why it was rejected.
    pub reason: &'a str,
}

impl PipelineEvent for PartitionHalted<'_> {
    fn emit(self, events: &Events) {
        counter!(names::PARTITIONS_HALTED).increment(1);
        tracing::error!(
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            "partition halted at a rejected record (ON_REJECT=halt); it resumes after a \
             restart, and passes this record once `orderstore rejects skip` allows it"
        );
        events
            .halted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(self.partition, (self.offset, self.reason.to_string()));
        events.any_halted.store(true, Ordering::Relaxed);
    }
}

/// The partitions this instance holds after a lease round.
#[derive(Debug, Clone)]
pub struct LeasesHeld {
    /// The partitions, sorted.
    pub partitions: Vec<i32>,
}

impl PipelineEvent for LeasesHeld {
    fn emit(self, events: &Events) {
        gauge!(names::PARTITIONS_OWNED).set(self.partitions.len() as f64);
        *events
            .owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.partitions;
    }
}

/// Connecting to the brokers failed; the connection is retried with backoff.
#[derive(Debug)]
pub struct KafkaConnectFailed<'a> {
    /// The bootstrap brokers.
    pub brokers: &'a [String],
    /// What failed, in a phrase (`KafkaSecurity::failure_kind`).
    pub what: &'a str,
    /// rskafka's message.
    pub error: &'a str,
}

impl PipelineEvent for KafkaConnectFailed<'_> {
    fn emit(self, events: &Events) {
        let brokers = self.brokers.join(",");
        events.kafka_failed(format!("{} at {brokers}: {}", self.what, self.error));
        tracing::warn!(
            brokers,
            error = self.error,
            "connecting to Kafka failed, retrying: {}",
            self.what
        );
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
        events.kafka_failed(format!(
            "fetching partition {} at offset {} failed: {}",
            self.partition, self.offset, self.error
        ));
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
    /// Seconds each partition has had records to read without its stored offset moving.
    pub stalled: &'a [(i32, f64)],
}

impl PipelineEvent for StateObserved<'_> {
    fn emit(self, _: &Events) {
        gauge!(names::IN_MEMORY).set(self.orders_in_memory as f64);
        gauge!(names::CHANNEL_FILL).set(self.channel_fill as f64);
        gauge!(names::CHANNEL_CAPACITY).set(self.channel_capacity as f64);
        for (partition, lag) in self.lags {
            gauge!(names::LAG, "partition" => partition.to_string()).set(*lag as f64);
        }
        for (partition, seconds) in self.stalled {
            gauge!(names::STALLED, "partition" => partition.to_string()).set(*seconds);
        }
    }
}

/// The instance started, under this id.
#[derive(Debug, Clone, Copy)]
pub struct InstanceStarted<'a> {
    /// `INSTANCE_ID`, or the default picked.
    pub instance: &'a str,
}

impl PipelineEvent for InstanceStarted<'_> {
    fn emit(self, _: &Events) {
        gauge!(names::INSTANCE, "instance" => self.instance.to_string()).set(1.0);
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
    fn emit(self, _: &Events) {
        self.record();
    }
}

impl HttpRequestServed {
    /// Records the request's metrics. It touches no per-instance state, so the HTTP middleware
    /// calls it without an [`Events`] at hand: sharing one `Arc` between workers would cost an
    /// atomic increment and decrement on a contended cache line per request.
    ///
    /// Metric handles are looked up in the registry once per worker thread and route/status,
    /// then kept: the registry lookup (hashing labels, allocating keys) would otherwise be paid
    /// on every request. Requests are not logged: per-request lines would be the access log
    /// of a busy server.
    pub fn record(self) {
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
