//! What the pipeline does, as one typed event per happening (as vector does with its internal
//! events). Emitting an event is the only way to count it: the same call counts for this
//! instance ([`Counters`], read by the progress log, readiness and tests), records the
//! Prometheus metric and writes the log line, so logs and metrics cannot drift apart.
//!
//! Per-record happenings log at DEBUG. Rejected records are also summed up in one WARN line at
//! most every 10 s (`rejections.rs`), so a flood of hostile records cannot flood the log.

mod consumer_group;
mod dead_letters;
mod failures;
mod fleet;
mod ingest;
pub mod prometheus;
mod rejections;
mod service;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

pub use consumer_group::{
    GroupAhead, GroupCommitFailed, GroupCommitted, GroupInUse, GroupOffsetsObserved,
    StartedFromGroup,
};
pub use dead_letters::{
    DeadLettersFailed, DeadLettersPublished, PartitionHalted, PublishedRejectsDeleted,
};
pub use failures::{
    ComponentStopped, ExitForced, HttpReadFailed, LeaseStepFailed, OffsetOutOfRange,
    OffsetsNotStored, RestoreRowSkipped, RetryScheduled,
};
pub use fleet::{
    LeaseCause, LeaseChanged, LeasesHeld, PartitionsLoaded, PartitionsUnloaded, StaleSessionEnded,
};
pub use ingest::{
    BatchRefused, BatchStored, RecordRejected, RecordsConsumed, RejectKeptInHex,
    RejectWriteRetried, WriteRetried,
};
pub use rejections::{RejectionSummary, SummaryLine, SUMMARY_EVERY};
pub use service::{
    FetchAnswered, HttpRequestServed, InstanceStarted, KafkaConnectFailed, KafkaFetchFailed,
    OrdersEvicted, StateObserved, WriterProduced,
};

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

/// Where events go: this instance's counters and the rejection summary. Live state that
/// components decide by (Kafka health, owned and halted partitions, the restore) is
/// [`crate::state::ServiceState`], not here.
#[derive(Debug, Default)]
pub struct Events {
    counters: Counters,
    rejections: Mutex<RejectionSummary>,
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

    /// Writes the rejection summary if one is due (called every second by the observer) or,
    /// with `force`, whenever rejections are pending (at shutdown).
    pub fn flush_rejection_summary(&self, force: bool) {
        self.summarize(|summary, now| summary.flush(now, force));
    }

    /// Updates the rejection summary under its lock and writes the line it gives, if any.
    fn summarize(
        &self,
        update: impl FnOnce(&mut RejectionSummary, tokio::time::Instant) -> Option<SummaryLine>,
    ) {
        let line = update(
            &mut self
                .rejections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            tokio::time::Instant::now(),
        );
        if let Some(line) = line {
            line.log();
        }
    }
}
