//! The events of the ingest path: batches taken, stored, refused and retried, and records
//! rejected.

use metrics::{counter, histogram};

use super::prometheus::names;
use super::{add, Events, PipelineEvent};
use crate::order::Rejection;

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
        events.summarize(|summary, now| {
            summary.add(self.rejection, self.partition, self.offset, now)
        });
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
        counter!(names::BATCHES_REFUSED).increment(1);
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
        counter!(names::REJECTS_IN_HEX).increment(1);
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

/// PostgreSQL refused a rejected record even in hex: the write is retried and the record's
/// offset waits. An operator must look (a constraint or trigger of theirs, most likely).
#[derive(Debug)]
pub struct RejectWriteRetried<'a> {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// PostgreSQL's reason.
    pub error: &'a dyn std::error::Error,
}

impl PipelineEvent for RejectWriteRetried<'_> {
    fn emit(self, events: &Events) {
        add(&events.counters.write_retries, 1);
        counter!(names::WRITE_RETRIES).increment(1);
        tracing::error!(
            partition = self.partition,
            offset = self.offset,
            error = %self.error,
            "PostgreSQL refused a rejected record even in hex; retrying, its offset waits"
        );
    }
}
