//! The events around the ingest path: evictions, Kafka's state, the writer, the observer's
//! gauges, and HTTP requests.

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

/// A partition's fetch was answered, with `n_records` records: the fetches are counted by whether they brought records, which tells how often an idle
/// instance polls the broker.
#[derive(Debug, Clone, Copy)]
pub struct FetchAnswered {
    /// Records in the answer.
    pub n_records: usize,
}

impl PipelineEvent for FetchAnswered {
    fn emit(self, _: &Events) {
        let answer = if self.n_records == 0 {
            "empty"
        } else {
            "records"
        };
        counter!(names::FETCHES, "answer" => answer).increment(1);
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
    fn emit(self, _: &Events) {
        let brokers = self.brokers.join(",");
        counter!(names::KAFKA_ERRORS, "operation" => "connect").increment(1);
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
    fn emit(self, _: &Events) {
        counter!(names::KAFKA_ERRORS, "operation" => "fetch").increment(1);
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
    /// The process's resident memory, when the system tells it (`/proc/self/status`).
    pub resident_bytes: Option<u64>,
}

impl PipelineEvent for StateObserved<'_> {
    fn emit(self, _: &Events) {
        gauge!(names::IN_MEMORY).set(self.orders_in_memory as f64);
        gauge!(names::CHANNEL_FILL).set(self.channel_fill as f64);
        gauge!(names::CHANNEL_CAPACITY).set(self.channel_capacity as f64);
        if let Some(bytes) = self.resident_bytes {
            gauge!(names::RESIDENT_MEMORY).set(bytes as f64);
        }
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
