//! The group mirror: once a second it commits the offsets stored in PostgreSQL to the consumer
//! group `KAFKA_GROUP_ID`, so that Kafka's own tools (`kafka-consumer-groups.sh --describe`,
//! Kafka UI, Burrow, lag exporters) see orderstore's progress and lag.
//!
//! PostgreSQL stays the only source of truth: the mirror reads only positions already stored
//! there (`OffsetTracker::stored_offsets`), runs beside the pipeline, and a failed or slow
//! commit is an event and a retry with backoff, never a wait for ingest. Each instance commits
//! the partitions it reads. Every round first reads what the group holds (OffsetFetch), which
//! is also what the lag gauges show, and commits a partition only when the group's offset
//! differs from the stored one, or every minute for all of them, so that the broker's offset
//! retention never drops an idle group's offsets. A group offset ahead of the stored one is
//! never moved back: a late commit of an instance whose partition was taken over, or a group
//! committed by someone else ahead of what is stored, stays as it is (and is reported). A
//! group with active members of its own refuses standalone commits; that is reported and the
//! group left alone, checked again every 30 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{GroupClient, GroupError};
use super::wire;
use crate::backoff::Backoff;
use crate::events::{
    Events, GroupAhead, GroupCommitFailed, GroupCommitted, GroupInUse, GroupOffsetsObserved,
};
use crate::offsets::OffsetTracker;
use crate::status::StatusBoard;

/// How often the mirror commits what moved: the "at most every second per partition".
const ROUND_EVERY: Duration = Duration::from_secs(1);

/// How often every partition is committed again, moved or not, so that an idle group's
/// offsets are renewed long before any broker's retention (Kafka's default is 7 days).
const RECOMMIT_EVERY: Duration = Duration::from_secs(60);

/// How long the mirror leaves a group that has members of its own before asking again.
const GROUP_IN_USE_RECHECK: Duration = Duration::from_secs(30);

/// How long the last round at shutdown may wait for the final offsets and for the broker.
const LAST_ROUND_LIMIT: Duration = Duration::from_secs(5);

/// What the mirror needs.
#[derive(Debug)]
pub struct MirrorContext {
    /// The group's client.
    pub client: Arc<GroupClient>,
    /// This instance, named in each commit's metadata.
    pub instance: String,
    /// Where the stored positions are read.
    pub tracker: Arc<OffsetTracker>,
    /// Where commits and failures are reported.
    pub events: Arc<Events>,
    /// Where the status page finds the group's offsets.
    pub status: Arc<StatusBoard>,
}

/// Why a round ended early.
enum RoundFailed {
    /// The group has members of its own.
    GroupInUse,
    /// The broker could not be reached or refused.
    Failed,
}

/// What the mirror keeps between rounds.
struct Mirror {
    context: MirrorContext,
    /// When every partition was last committed, moved or not.
    last_full_commit: Option<Instant>,
    /// Partitions whose group offset is ahead of the stored one, reported once until it is not.
    ahead: BTreeSet<i32>,
    /// Partitions whose gauges were set last round: one given up since is set once more, its
    /// lag to zero, so it does not keep this instance's last reading.
    reported: Vec<i32>,
}

/// Runs rounds until the batch writers are done; then waits (a few seconds at most) for the
/// committer to store the last offsets and commits them in a last round.
pub async fn run_group_mirror(context: MirrorContext, batch_writers_done: CancellationToken) {
    let mut mirror = Mirror {
        context,
        last_full_commit: None,
        ahead: BTreeSet::new(),
        reported: Vec::new(),
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = batch_writers_done.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = match mirror.round(false).await {
            Ok(()) => {
                backoff.reset();
                ROUND_EVERY
            }
            Err(RoundFailed::GroupInUse) => GROUP_IN_USE_RECHECK,
            Err(RoundFailed::Failed) => backoff.next_delay().max(ROUND_EVERY),
        };
    }
    let last_round = async {
        while !mirror.context.tracker.offsets_to_store().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = mirror.round(true).await;
    };
    let _ = tokio::time::timeout(LAST_ROUND_LIMIT, last_round).await;
}

impl Mirror {
    async fn round(&mut self, last: bool) -> Result<(), RoundFailed> {
        let stored = self.context.tracker.stored_offsets();
        if stored.is_empty() {
            self.report(&stored, &BTreeMap::new());
            return Ok(());
        }
        let partitions: Vec<i32> = stored.iter().map(|stored| stored.partition).collect();
        let mut group_offsets = match self.context.client.committed(&partitions).await {
            Ok(offsets) => offsets,
            Err(error) => return Err(self.failed(&error, partitions.len())),
        };
        let full = last
            || self
                .last_full_commit
                .is_none_or(|at| at.elapsed() >= RECOMMIT_EVERY);
        let mut to_commit = Vec::new();
        for partition in &stored {
            let group = group_offsets.get(&partition.partition).copied();
            if let Some(group) = group.filter(|group| *group > partition.next_offset) {
                if self.ahead.insert(partition.partition) {
                    self.context.events.emit(GroupAhead {
                        group: self.context.client.group(),
                        partition: partition.partition,
                        group_offset: group,
                        stored_offset: partition.next_offset,
                    });
                }
                continue;
            }
            self.ahead.remove(&partition.partition);
            if full || group != Some(partition.next_offset) {
                to_commit.push((partition.partition, partition.next_offset));
            }
        }
        if !to_commit.is_empty() {
            let metadata = format!("orderstore {}", self.context.instance);
            let answers = match self.context.client.commit(&to_commit, &metadata).await {
                Ok(answers) => answers,
                Err(error) => return Err(self.failed(&error, to_commit.len())),
            };
            let mut refused: Vec<(i32, i16)> = Vec::new();
            for (partition, offset) in &to_commit {
                match answers.get(partition) {
                    Some(Ok(())) => {
                        group_offsets.insert(*partition, *offset);
                    }
                    Some(Err(code)) => refused.push((*partition, *code)),
                    None => refused.push((*partition, -1)),
                }
            }
            let committed = to_commit.len() - refused.len();
            if committed > 0 {
                self.context.events.emit(GroupCommitted {
                    n_partitions: committed,
                });
            }
            self.report(&stored, &group_offsets);
            if let Some((_, code)) = refused
                .iter()
                .find(|(_, code)| wire::is_group_in_use(*code))
            {
                self.group_in_use(&wire::error_name(*code));
                return Err(RoundFailed::GroupInUse);
            }
            if !refused.is_empty() {
                let answers: Vec<String> = refused
                    .iter()
                    .map(|(partition, code)| {
                        format!("partition {partition}: {}", wire::error_name(*code))
                    })
                    .collect();
                let error = answers.join(", ");
                self.context.events.emit(GroupCommitFailed {
                    group: self.context.client.group(),
                    n_partitions: refused.len(),
                    error: &error,
                });
                self.context
                    .status
                    .group_failed(self.context.client.group(), error);
                return Err(RoundFailed::Failed);
            }
            if full {
                self.last_full_commit = Some(Instant::now());
            }
            return Ok(());
        }
        self.report(&stored, &group_offsets);
        Ok(())
    }

    /// Reports a failed request; a group in use is told apart.
    fn failed(&self, error: &GroupError, n_partitions: usize) -> RoundFailed {
        let group = self.context.client.group();
        if error.is_group_in_use() {
            self.group_in_use(&error.to_string());
            return RoundFailed::GroupInUse;
        }
        self.context.events.emit(GroupCommitFailed {
            group,
            n_partitions,
            error: error as &dyn std::fmt::Display,
        });
        self.context.status.group_failed(group, error.to_string());
        RoundFailed::Failed
    }

    /// Reports a group with members of its own, which refused the commit with `answer`.
    fn group_in_use(&self, answer: &str) {
        let group = self.context.client.group();
        self.context.events.emit(GroupInUse {
            group,
            answer,
            recheck: GROUP_IN_USE_RECHECK,
        });
        self.context.status.group_failed(
            group,
            format!("the group has active members of its own ({answer}); not committing to it"),
        );
    }

    /// Sets the gauges and the status page from the group's offsets: per partition read here
    /// that the group has an offset for, the committed offset and the lag as Kafka's tools
    /// compute it (the high watermark minus the group's committed offset).
    fn report(
        &mut self,
        stored: &[crate::offsets::StoredPartition],
        group_offsets: &BTreeMap<i32, i64>,
    ) {
        let readings: BTreeMap<i32, (i64, i64)> = stored
            .iter()
            .filter_map(|partition| {
                let committed = *group_offsets.get(&partition.partition)?;
                let lag = (partition.high_watermark - committed).max(0);
                Some((partition.partition, (committed, lag)))
            })
            .collect();
        let given_up: Vec<i32> = self
            .reported
            .iter()
            .copied()
            .filter(|partition| !readings.contains_key(partition))
            .collect();
        self.context.events.emit(GroupOffsetsObserved {
            readings: &readings,
            given_up: &given_up,
        });
        self.reported = readings.keys().copied().collect();
        self.context
            .status
            .observe_group(self.context.client.group(), readings);
    }
}
