//! The events of the consumer group mirror (`consumer_group/`): commits made, refused or
//! failed, the group's offsets and lag as Kafka's tools see them, and where a partition
//! started when `KAFKA_START_OFFSET=group`. Commits are counted in one metric by `result`:
//! `ok`, `failed`, `group_in_use` and `group_ahead`.

use std::collections::BTreeMap;
use std::time::Duration;

use metrics::{counter, gauge};

use super::prometheus::names;
use super::{Events, PipelineEvent};

/// Offsets of `n_partitions` partitions were committed to the group.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitted {
    /// Partitions committed in one request.
    pub n_partitions: usize,
}

impl PipelineEvent for GroupCommitted {
    fn emit(self, _: &Events) {
        counter!(names::GROUP_COMMITS, "result" => "ok").increment(1);
        tracing::debug!(
            partitions = self.n_partitions,
            "offsets committed to the consumer group"
        );
    }
}

/// A commit to the group failed (the broker unreachable, or refusing); it is retried with
/// backoff, and ingest goes on.
pub struct GroupCommitFailed<'a> {
    /// The group.
    pub group: &'a str,
    /// Partitions whose offsets were not committed.
    pub n_partitions: usize,
    /// Why.
    pub error: &'a dyn std::fmt::Display,
}

impl PipelineEvent for GroupCommitFailed<'_> {
    fn emit(self, _: &Events) {
        counter!(names::GROUP_COMMITS, "result" => "failed").increment(1);
        tracing::warn!(
            group = self.group,
            partitions = self.n_partitions,
            error = %self.error,
            "committing offsets to the consumer group failed; ingest goes on, and the commit \
             is retried"
        );
    }
}

/// The group has members of its own (someone else's consumers use this group id), which
/// refuse a standalone commit: the group is left alone and asked again later.
pub struct GroupInUse<'a> {
    /// The group.
    pub group: &'a str,
    /// The broker's answer.
    pub answer: &'a str,
    /// When the group is asked again.
    pub recheck: Duration,
}

impl PipelineEvent for GroupInUse<'_> {
    fn emit(self, _: &Events) {
        counter!(names::GROUP_COMMITS, "result" => "group_in_use").increment(1);
        tracing::warn!(
            group = self.group,
            answer = self.answer,
            recheck_in = ?self.recheck,
            "the consumer group has active members of its own, so orderstore does not commit \
             to it; stop those consumers, or set KAFKA_GROUP_ID to another group (or empty)"
        );
    }
}

/// The group's offset of a partition is ahead of the offset stored in PostgreSQL; it is not
/// moved back. Reported once until the stored offset catches up.
#[derive(Debug, Clone, Copy)]
pub struct GroupAhead<'a> {
    /// The group.
    pub group: &'a str,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset.
    pub group_offset: i64,
    /// The offset stored in PostgreSQL.
    pub stored_offset: i64,
}

impl PipelineEvent for GroupAhead<'_> {
    fn emit(self, _: &Events) {
        counter!(names::GROUP_COMMITS, "result" => "group_ahead").increment(1);
        tracing::warn!(
            group = self.group,
            partition = self.partition,
            group_offset = self.group_offset,
            stored_offset = self.stored_offset,
            "the consumer group's offset is ahead of the offset stored in PostgreSQL; it is \
             left as it is (never moved back) until the stored offset passes it"
        );
    }
}

/// The group's offsets and lag, read each round.
#[derive(Debug, Clone, Copy)]
pub struct GroupOffsetsObserved<'a> {
    /// Per partition read here: the group's committed offset and the lag (high watermark
    /// minus it).
    pub readings: &'a BTreeMap<i32, (i64, i64)>,
    /// Partitions read here before and not any more: their lag is set to zero.
    pub given_up: &'a [i32],
}

impl PipelineEvent for GroupOffsetsObserved<'_> {
    fn emit(self, _: &Events) {
        for (partition, (committed, lag)) in self.readings {
            let partition = partition.to_string();
            gauge!(names::GROUP_OFFSET, "partition" => partition.clone()).set(*committed as f64);
            gauge!(names::GROUP_LAG, "partition" => partition).set(*lag as f64);
        }
        for partition in self.given_up {
            gauge!(names::GROUP_LAG, "partition" => partition.to_string()).set(0.0);
        }
    }
}

/// A partition without an offset in PostgreSQL starts from the group
/// (`KAFKA_START_OFFSET=group`): at its committed offset, or at the earliest when the group has
/// none.
#[derive(Debug, Clone, Copy)]
pub struct StartedFromGroup<'a> {
    /// The group.
    pub group: &'a str,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
    /// Where reading starts.
    pub offset: i64,
}

impl PipelineEvent for StartedFromGroup<'_> {
    fn emit(self, _: &Events) {
        match self.committed {
            Some(committed) if committed == self.offset => tracing::info!(
                group = self.group,
                partition = self.partition,
                offset = committed,
                "starting the partition at the consumer group's committed offset"
            ),
            Some(committed) => tracing::info!(
                group = self.group,
                partition = self.partition,
                committed,
                offset = self.offset,
                "the consumer group's committed offset is outside the partition's records \
                 (deleted by retention, or the topic was recreated); starting at the earliest"
            ),
            None => tracing::info!(
                group = self.group,
                partition = self.partition,
                offset = self.offset,
                "the consumer group has no committed offset for the partition; starting at the \
                 earliest"
            ),
        }
    }
}
