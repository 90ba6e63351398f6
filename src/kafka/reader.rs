//! The reader tasks: each runs one fetch loop per partition it is told to read (by the lease
//! keeper, `fleet/keeper.rs`, as leases are taken and given up), registering every record with
//! the [`OffsetTracker`] before it enters the bounded channel to the batch writers. A full
//! channel makes the reader wait: records are never dropped. A broker outage is waited out
//! with backoff.
//!
//! A partition with a stored position is read from its `fetch_from` (a record batch boundary:
//! `offsets/tracker.rs` says why), and the records fetched below its `next_offset`, durable
//! already, are dropped before the channel: each record goes to the batch writers once per
//! start.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::start::start_position;
use super::{FetchPlan, KafkaRecord};
use crate::backoff::{retry_until_ok, Backoff};
use crate::config::StartOffset;
use crate::consumer_group::GroupClient;
use crate::events::{Events, FetchAnswered, KafkaFetchFailed, OffsetOutOfRange};
use crate::offsets::{OffsetTracker, StoredOffset};
use crate::state::ServiceState;

/// What every partition loop shares.
#[derive(Debug)]
pub struct ReaderContext {
    /// The Kafka client.
    pub client: Arc<Client>,
    /// The topic.
    pub topic: String,
    /// Where partitions without a stored offset start.
    pub start_offset: StartOffset,
    /// The consumer group, which `KAFKA_START_OFFSET=group` starts from.
    pub group: Option<Arc<GroupClient>>,
    /// Most bytes per fetch, which fetches grow to.
    pub fetch_max_bytes: i32,
    /// Longest a fetch waits for records once its partition has caught up.
    pub fetch_max_wait: Duration,
    /// In-flight and done offsets.
    pub tracker: Arc<OffsetTracker>,
    /// Where fetches are reported, and whether Kafka answers.
    pub events: Arc<Events>,
    /// Where fetches say whether Kafka answers, and where halted partitions are looked up.
    pub state: Arc<ServiceState>,
    /// Cancelled when the service stops.
    pub shutdown: CancellationToken,
}

/// What the lease keeper tells a reader.
#[derive(Debug)]
pub enum PartitionCommand {
    /// Read `partition` under the lease taken at `epoch`, from `stored` (the position stored
    /// in PostgreSQL) or, without one, from `KAFKA_START_OFFSET`.
    Start {
        /// The partition.
        partition: i32,
        /// The lease's epoch, which every record read is stamped with.
        epoch: i64,
        /// The stored position, if any.
        stored: Option<StoredOffset>,
    },
    /// Stop reading `partition`; `done` is told once its loop has ended, so nothing more of
    /// it enters the channel.
    Stop {
        /// The partition.
        partition: i32,
        /// Told when the loop has ended.
        done: oneshot::Sender<()>,
    },
}

/// Splits `partitions` over `n_readers` readers: reader `i` reads every partition at an
/// index congruent to `i`. Readers beyond the number of partitions read none.
pub fn assign_partitions(partitions: &[i32], n_readers: usize) -> Vec<Vec<i32>> {
    let mut assignment = vec![Vec::new(); n_readers.max(1)];
    for (index, partition) in partitions.iter().enumerate() {
        assignment[index % n_readers.max(1)].push(*partition);
    }
    assignment
}

/// One reader task: runs the fetch loops of the partitions it is told to read, until
/// shutdown or until the keeper's side of `commands` is gone.
pub async fn run_reader(
    context: Arc<ReaderContext>,
    mut commands: mpsc::UnboundedReceiver<PartitionCommand>,
    sender: mpsc::Sender<KafkaRecord>,
) {
    let mut loops = FuturesUnordered::new();
    let mut running: HashMap<i32, CancellationToken> = HashMap::new();
    let mut stopping: HashMap<i32, oneshot::Sender<()>> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            _ = context.shutdown.cancelled() => break,
            Some(partition) = loops.next(), if !loops.is_empty() => {
                running.remove(&partition);
                if let Some(done) = stopping.remove(&partition) {
                    let _ = done.send(());
                }
            }
            command = commands.recv() => match command {
                None => break,
                Some(PartitionCommand::Start { partition, epoch, stored }) => {
                    let token = context.shutdown.child_token();
                    running.insert(partition, token.clone());
                    let context = Arc::clone(&context);
                    let sender = sender.clone();
                    loops.push(async move {
                        read_partition(context, partition, epoch, stored, token, sender).await;
                        partition
                    });
                }
                Some(PartitionCommand::Stop { partition, done }) => match running.get(&partition) {
                    Some(token) => {
                        token.cancel();
                        stopping.insert(partition, done);
                    }
                    None => {
                        let _ = done.send(());
                    }
                },
            },
        }
    }
    // Every loop sees the shutdown through its token's parent.
    while loops.next().await.is_some() {}
}

async fn read_partition(
    context: Arc<ReaderContext>,
    partition: i32,
    epoch: i64,
    stored: Option<StoredOffset>,
    stop: CancellationToken,
    sender: mpsc::Sender<KafkaRecord>,
) {
    let shutdown = &stop;
    let topic = context.topic.as_str();
    let Some(client) = retry_until_ok("opening a Kafka partition", shutdown, || {
        context
            .client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
    })
    .await
    else {
        return;
    };
    let start = match stored {
        Some(stored) => stored,
        None => {
            let Some(start) = retry_until_ok("finding the start offset", shutdown, || {
                start_position(&context, &client, partition)
            })
            .await
            else {
                return;
            };
            start
        }
    };
    tracing::info!(
        topic,
        partition,
        offset = start.next_offset,
        fetch_from = start.fetch_from,
        epoch,
        stored = stored.is_some(),
        "reading partition"
    );
    context
        .tracker
        .start_partition(partition, start, stored, epoch);
    // Where the next fetch starts, and below which the records fetched are durable already.
    let mut offset = start.fetch_from;
    let mut durable_below = start.next_offset;

    let mut plan = FetchPlan::new(
        context.fetch_max_bytes,
        context.fetch_max_wait,
        Instant::now(),
    );
    let mut backoff = Backoff::for_outages();
    loop {
        if context.state.halted_at(partition).is_some() {
            // ON_REJECT=halt stopped the partition at a reject: nothing more is read of it
            // until a restart (or until it is given up).
            shutdown.cancelled().await;
            return;
        }
        let wait_ms = plan.max_wait_ms();
        let limit = fetch_time_limit(wait_ms);
        let fetched = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            fetched = tokio::time::timeout(
                limit,
                client.fetch_records(offset, plan.bytes(), wait_ms),
            ) => fetched,
        };
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(_) => {
                fetch_failed(&context, partition, offset, &FetchTimedOut(limit));
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = backoff.wait() => continue,
                }
            }
        };
        let mut records = match fetched {
            // Kafka answers a fetch past the end with OffsetOutOfRange; tansu answers it with
            // no records and a high watermark below the offset, which says the same. So does
            // a high watermark below the stored next offset, whose records were read before.
            Ok((records, high_watermark))
                if !(records.is_empty() && high_watermark < offset)
                    && high_watermark >= durable_below =>
            {
                backoff.reset();
                context.state.kafka_answered();
                context.events.emit(FetchAnswered {
                    n_records: records.len(),
                });
                context
                    .tracker
                    .observe_high_watermark(partition, high_watermark);
                let next_offset = records.last().map_or(offset, |record| record.offset + 1);
                plan.answered(records.len(), next_offset, high_watermark, Instant::now());
                records
            }
            Ok(_)
            | Err(KafkaError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }) => {
                match restart_from_earliest(&context, &client, partition, offset, epoch, shutdown)
                    .await
                {
                    Some(earliest) => {
                        offset = earliest;
                        durable_below = earliest;
                        continue;
                    }
                    None => return,
                }
            }
            Err(error) => {
                fetch_failed(&context, partition, offset, &error);
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = backoff.wait() => continue,
                }
            }
        };
        let Some(last) = records.last().map(|record| record.offset) else {
            if let Some(pause) = plan.pause() {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            continue;
        };
        let fetch_end = last + 1;
        if records
            .first()
            .is_some_and(|record| record.offset < durable_below)
        {
            // Reading resumed at the start of the fetch that brought the first record not
            // durable; the records before it are stored already.
            records.retain(|record| record.offset >= durable_below);
        }
        context.tracker.register_fetch(
            partition,
            offset,
            fetch_end,
            records.iter().map(|record| record.offset),
        );
        for record in records {
            let record = KafkaRecord {
                partition,
                offset: record.offset,
                epoch,
                value: record.record.value,
                key: record.record.key,
                headers: record.record.headers,
            };
            tokio::select! {
                biased;
                // The unsent records stay registered as in flight, so the stored offset never
                // moves past them.
                _ = shutdown.cancelled() => return,
                sent = sender.send(record) => {
                    if sent.is_err() {
                        return;
                    }
                }
            }
        }
        offset = fetch_end;
    }
}

/// How long a fetch may take beyond the wait it asks the broker for. rskafka retries a lost
/// connection inside the call, with a deadline counted in its own sleeps only, so during a
/// broker cut a fetch can go unanswered for minutes; past this limit it counts as failed:
/// readiness says Kafka does not answer, and the reader retries with backoff.
const FETCH_GRACE: Duration = Duration::from_secs(5);

/// The time limit of a fetch that asks the broker to wait up to `wait_ms`.
fn fetch_time_limit(wait_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)) + FETCH_GRACE
}

/// A fetch that got no answer within its time limit.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
struct FetchTimedOut(Duration);

/// Tells readiness why Kafka does not answer, and reports the failed fetch.
fn fetch_failed(
    context: &ReaderContext,
    partition: i32,
    offset: i64,
    error: &(dyn std::error::Error + 'static),
) {
    context.state.kafka_failed(format!(
        "fetching partition {partition} at offset {offset} failed: {error}"
    ));
    context.events.emit(KafkaFetchFailed {
        topic: &context.topic,
        partition,
        offset,
        error,
    });
}

/// The partition does not hold `offset`. Behind its earliest record, retention deleted records
/// before they were read; ahead of its end, the topic was recreated. Either way, reading from
/// the earliest record kept loses nothing more, and reading again is harmless. Returns that
/// offset, or `None` on shutdown.
async fn restart_from_earliest(
    context: &ReaderContext,
    client: &PartitionClient,
    partition: i32,
    offset: i64,
    epoch: i64,
    shutdown: &CancellationToken,
) -> Option<i64> {
    let earliest = retry_until_ok("finding the earliest offset", shutdown, || {
        client.get_offset(OffsetAt::Earliest)
    })
    .await?;
    context.events.emit(OffsetOutOfRange {
        topic: &context.topic,
        partition,
        offset,
        earliest,
    });
    context
        .tracker
        .start_partition(partition, StoredOffset::at(earliest), None, epoch);
    Some(earliest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_split_without_overlap() {
        let assignment = assign_partitions(&[0, 1, 2, 3, 4], 2);
        assert_eq!(assignment, vec![vec![0, 2, 4], vec![1, 3]]);
        let assignment = assign_partitions(&[0, 1], 3);
        assert_eq!(assignment, vec![vec![0], vec![1], vec![]]);
    }
}
