//! The events of rejected records after they are recorded: the dead-letter topic
//! (published, behind, expired) and `ON_REJECT=halt`.

use metrics::counter;

use super::prometheus::names;
use super::{Events, PipelineEvent};

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
    fn emit(self, _: &Events) {
        counter!(names::PARTITIONS_HALTED).increment(1);
        tracing::error!(
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            "partition halted at a rejected record (ON_REJECT=halt); it resumes after a \
             restart, and passes this record once `orderstore rejects skip` allows it"
        );
    }
}
