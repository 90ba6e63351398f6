//! The events of things going wrong that the service waits out or reports: a retried
//! operation, a failed lease step, a component that stopped, an unreadable row. Each logs at
//! WARN or ERROR and counts in a metric, so an operator alerting on metrics sees what the log
//! says. None touches per-instance state, so each has a `record` that code without an
//! [`Events`] at hand (the backoff helper, the shutdown supervisor, the store) calls directly.

use metrics::counter;

use super::prometheus::names;
use super::{Events, PipelineEvent};

/// An operation failed and is retried after a backoff (`backoff::retry_until_ok`).
pub struct RetryScheduled<'a> {
    /// The operation, a bounded label (`connect_postgres`, `find_topic`, ...).
    pub operation: &'static str,
    /// What was being done, in words, for the log line.
    pub what: &'a str,
    /// Why it failed.
    pub error: &'a dyn std::fmt::Display,
}

impl RetryScheduled<'_> {
    /// Logs and counts the retry.
    pub fn record(self) {
        counter!(names::RETRIES, "operation" => self.operation).increment(1);
        tracing::warn!(
            operation = self.operation,
            error = %self.error,
            "{} failed, retrying",
            self.what
        );
    }
}

impl PipelineEvent for RetryScheduled<'_> {
    fn emit(self, _: &Events) {
        self.record();
    }
}

/// A step of the lease protocol failed; the next lease round tries again (or, at shutdown,
/// the leases expire after `LEASE_TTL`).
pub struct LeaseStepFailed<'a> {
    /// The step, a bounded label: `reclaim`, `reclaim_offsets`, `round`,
    /// `end_stale_transactions` or `release_all`.
    pub step: &'static str,
    /// What failing it means, for the log line.
    pub consequence: &'static str,
    /// Why it failed.
    pub error: &'a dyn std::fmt::Display,
}

impl LeaseStepFailed<'_> {
    /// Logs and counts the failure.
    pub fn record(self) {
        counter!(names::LEASE_ERRORS, "step" => self.step).increment(1);
        tracing::warn!(
            step = self.step,
            error = %self.error,
            "a lease step failed: {}",
            self.consequence
        );
    }
}

impl PipelineEvent for LeaseStepFailed<'_> {
    fn emit(self, _: &Events) {
        self.record();
    }
}

/// A component panicked, failed or ended while the service should run: the service stops,
/// and exits non-zero so that a supervisor restarts it.
pub struct ComponentStopped<'a> {
    /// The component's name (`reader-0`, `lease-keeper`, ...).
    pub component: &'a str,
    /// What happened to it.
    pub failure: &'a dyn std::fmt::Display,
}

impl ComponentStopped<'_> {
    /// Logs and counts the failure.
    pub fn record(self) {
        counter!(names::COMPONENT_FAILURES, "component" => self.component.to_string()).increment(1);
        tracing::error!(
            component = self.component,
            failure = %self.failure,
            "a component stopped, stopping the service"
        );
    }
}

/// A second signal arrived during an orderly stop: the process exits at once, without
/// storing the last offsets (their records are read again on the next start; replays are
/// harmless).
#[derive(Debug, Clone, Copy)]
pub struct ExitForced;

impl ExitForced {
    /// Logs and counts the forced exit.
    pub fn record(self) {
        counter!(names::FORCED_EXITS).increment(1);
        tracing::warn!("second signal received, exiting at once");
    }
}

/// A stored order could not be read back while restoring memory; it is left out of memory
/// (HTTP still reads it from PostgreSQL, where the same read fails the same way).
pub struct RestoreRowSkipped<'a> {
    /// Why the row could not be read.
    pub error: &'a dyn std::fmt::Display,
}

impl RestoreRowSkipped<'_> {
    /// Logs and counts the skipped row.
    pub fn record(self) {
        counter!(names::RESTORE_ROWS_SKIPPED).increment(1);
        tracing::error!(error = %self.error, "skipping an unreadable row while restoring");
    }
}

/// A read of PostgreSQL that an HTTP request needed failed; the request is answered 503 with
/// `Retry-After`, and nothing is retried on the server's side.
pub struct HttpReadFailed<'a> {
    /// The read, a bounded label: `order`, `rejects` or `latest orders`.
    pub read: &'static str,
    /// Why it failed.
    pub error: &'a dyn std::fmt::Display,
}

impl HttpReadFailed<'_> {
    /// Logs and counts the failure.
    pub fn record(self) {
        counter!(names::HTTP_READ_FAILURES, "read" => self.read).increment(1);
        tracing::warn!(
            read = self.read,
            error = %self.error,
            "a read of PostgreSQL for an HTTP request failed"
        );
    }
}

/// Storing the durable offsets in PostgreSQL failed; the committer tries again after `delay`
/// (the records stay durable meanwhile, and a crash only re-reads more).
pub struct OffsetsNotStored<'a> {
    /// Why.
    pub error: &'a dyn std::fmt::Display,
    /// When the committer tries again.
    pub delay: std::time::Duration,
}

impl PipelineEvent for OffsetsNotStored<'_> {
    fn emit(self, _: &Events) {
        counter!(names::OFFSET_STORE_FAILURES).increment(1);
        tracing::warn!(
            error = %self.error,
            delay = ?self.delay,
            "storing offsets failed, will retry"
        );
    }
}

/// A partition's stored offset is outside what the broker keeps (retention deleted the
/// records, or the topic was recreated): reading restarts from the earliest record kept, and
/// the records between were never read. An operator should know.
#[derive(Debug)]
pub struct OffsetOutOfRange<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset reading was to resume at.
    pub offset: i64,
    /// The earliest offset the broker keeps, where reading restarts.
    pub earliest: i64,
}

impl PipelineEvent for OffsetOutOfRange<'_> {
    fn emit(self, _: &Events) {
        counter!(names::OFFSETS_OUT_OF_RANGE).increment(1);
        tracing::error!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            earliest = self.earliest,
            "offset is outside the partition, restarting from the earliest record"
        );
    }
}
