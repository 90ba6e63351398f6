//! Kafka readers: `KAFKA_READERS` tasks, each owning a disjoint set of the topic's partitions,
//! fetch records with rskafka and push them into the bounded channel to the handlers.
//!
//! rskafka has no consumer groups and no offset tracking. Each partition resumes from the
//! offset stored in PostgreSQL (or `KAFKA_START_OFFSET` when none is), and every fetched record
//! is registered with the [`OffsetTracker`] before it enters the channel. A full channel makes
//! the reader wait: records are never dropped. A broker outage is waited out with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::BackoffConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{Settings, StartOffset};
use crate::offsets::OffsetTracker;
use crate::stats::Stats;

/// One Kafka record on its way to a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its value; `None` for a record without one (a tombstone).
    pub value: Option<Vec<u8>>,
}

/// rskafka's own retries inside one call: short steps, and a deadline so that a long outage
/// comes back to our loop, which logs it and keeps retrying.
fn client_backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
        deadline: Some(Duration::from_secs(20)),
    }
}

/// Retries `attempt` with backoff until it succeeds; `None` if shutdown came first.
/// Each failure is logged at WARN with `what` failed.
pub async fn retry_until_ok<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::for_outages();
    loop {
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            result = attempt() => result,
        };
        match result {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::warn!(%error, "{what} failed, retrying");
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return None,
                    _ = backoff.wait() => {}
                }
            }
        }
    }
}

/// Connects to the brokers, waiting out an outage; `None` if shutdown came first.
pub async fn connect(brokers: &[String], shutdown: &CancellationToken) -> Option<Client> {
    retry_until_ok("connecting to Kafka", shutdown, || {
        ClientBuilder::new(brokers.to_vec())
            .client_id("orderstore")
            .backoff_config(client_backoff())
            .build()
    })
    .await
}

/// Makes sure the topic exists, creating it with the configured partitions when it does not,
/// and returns its partitions.
pub async fn ensure_topic(client: &Client, settings: &Settings) -> Result<Vec<i32>, KafkaError> {
    let topic = &settings.kafka_topic;
    for attempt in 0.. {
        let topics = client.list_topics().await?;
        if let Some(found) = topics.into_iter().find(|found| &found.name == topic) {
            if !found.partitions.is_empty() {
                return Ok(found.partitions.into_iter().collect());
            }
        } else if attempt == 0 {
            tracing::info!(
                topic,
                partitions = settings.kafka_partitions,
                "creating the missing topic"
            );
            let controller = client.controller_client()?;
            let created = controller.create_topic(
                topic.as_str(),
                settings.kafka_partitions,
                settings.kafka_replication_factor,
                10_000,
            );
            match created.await {
                Ok(()) => {}
                Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::TopicAlreadyExists,
                    ..
                }) => {}
                Err(error) => return Err(error),
            }
        }
        // A new topic takes a moment to show in the metadata.
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
    }
    unreachable!("the loop above only ends by returning")
}

/// What every partition loop shares.
#[derive(Debug)]
pub struct ReaderContext {
    /// The Kafka client.
    pub client: Arc<Client>,
    /// The topic.
    pub topic: String,
    /// Next offset per partition as stored in PostgreSQL.
    pub stored_offsets: HashMap<i32, i64>,
    /// Where partitions without a stored offset start.
    pub start_offset: StartOffset,
    /// Most bytes per fetch, which fetches grow to.
    pub fetch_max_bytes: i32,
    /// Longest a fetch waits for records once its partition has caught up.
    pub fetch_max_wait: Duration,
    /// In-flight and done offsets.
    pub tracker: Arc<OffsetTracker>,
    /// Counters, and whether Kafka answers.
    pub stats: Arc<Stats>,
    /// Cancelled when the service stops.
    pub shutdown: CancellationToken,
}

/// Most bytes the first fetch of a partition asks for.
const FIRST_FETCH_BYTES: i32 = 64 << 10;

/// What a partition's next fetch asks the broker for: how many bytes, and how long the broker
/// may hold it open waiting for records.
///
/// - Bytes: 64 KiB (`FIRST_FETCH_BYTES`) first, then twice the size of the fetch before, up to
///   `KAFKA_FETCH_MAX_BYTES`. On a backlog, nothing reaches PostgreSQL (the slowest stage)
///   before the first fetches are decoded and checked; small first fetches give the handlers
///   work within milliseconds, and six doublings later fetches are full size.
/// - Wait: none while the partition is behind its high watermark, `KAFKA_FETCH_MAX_WAIT` once
///   it has caught up. Kafka answers as soon as it has records whatever the wait, but tansu
///   holds every fetch for about half of the wait even when it has records: with the default
///   500 ms wait, a backlog was read 250 ms per fetch. An answer with no records below the
///   high watermark counts as caught up (see [`FetchPlan::pause`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPlan {
    bytes: i32,
    max_bytes: i32,
    max_wait: Duration,
    behind: bool,
    pause: bool,
}

impl FetchPlan {
    /// The plan for a partition's first fetch: it may be behind, so it does not wait.
    pub fn new(max_bytes: i32, max_wait: Duration) -> Self {
        Self {
            bytes: FIRST_FETCH_BYTES.min(max_bytes),
            max_bytes,
            max_wait,
            behind: true,
            pause: false,
        }
    }

    /// The byte range for the next fetch.
    pub fn bytes(&self) -> std::ops::Range<i32> {
        1..self.bytes
    }

    /// How long the broker may hold the next fetch, in milliseconds.
    pub fn max_wait_ms(&self) -> i32 {
        if self.behind {
            0
        } else {
            i32::try_from(self.max_wait.as_millis()).unwrap_or(i32::MAX)
        }
    }

    /// How long to wait before the next fetch, if at all: after a full-size fetch came back
    /// empty below the high watermark. rskafka reads committed records only, so what is there
    /// is a transaction still open (Kafka holds such a fetch for its wait) or a transaction
    /// marker, which rskafka leaves out of its answers. Kafka answers a fetch for a marker at
    /// once whatever its wait: without a pause the reader would spin until the producer writes
    /// again.
    pub fn pause(&self) -> Option<Duration> {
        self.pause.then_some(self.max_wait)
    }

    /// Plans the next fetch after an answer of `n_records` records: `next_offset` is where it
    /// reads from and `high_watermark` the one the answer gave. Every answer doubles the size,
    /// empty ones too, so that a record larger than the current size is fetched once the size
    /// holds it. An empty answer below the high watermark makes the next fetch wait as a
    /// caught-up one does, after a [`pause`](Self::pause).
    pub fn answered(&mut self, n_records: usize, next_offset: i64, high_watermark: i64) {
        let empty_below_watermark = n_records == 0 && next_offset < high_watermark;
        self.pause = empty_below_watermark && self.bytes == self.max_bytes;
        self.bytes = self.bytes.saturating_mul(2).min(self.max_bytes);
        self.behind = n_records > 0 && next_offset < high_watermark;
    }
}

/// Splits `partitions` over `n_readers` readers: reader `i` owns every partition at an index
/// congruent to `i`. Readers beyond the number of partitions own none.
pub fn assign_partitions(partitions: &[i32], n_readers: usize) -> Vec<Vec<i32>> {
    let mut assignment = vec![Vec::new(); n_readers.max(1)];
    for (index, partition) in partitions.iter().enumerate() {
        assignment[index % n_readers.max(1)].push(*partition);
    }
    assignment
}

/// One reader task: reads all of its partitions concurrently until shutdown.
pub async fn run_reader(
    context: Arc<ReaderContext>,
    partitions: Vec<i32>,
    sender: mpsc::Sender<KafkaRecord>,
) {
    let loops = partitions
        .into_iter()
        .map(|partition| read_partition(Arc::clone(&context), partition, sender.clone()));
    futures_util::future::join_all(loops).await;
}

async fn read_partition(
    context: Arc<ReaderContext>,
    partition: i32,
    sender: mpsc::Sender<KafkaRecord>,
) {
    let shutdown = &context.shutdown;
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
    let stored = context.stored_offsets.get(&partition).copied();
    let mut offset = match stored {
        Some(offset) => offset,
        None => {
            let start = context.start_offset;
            let Some(offset) = retry_until_ok("finding the start offset", shutdown, || {
                start_offset(&client, start)
            })
            .await
            else {
                return;
            };
            offset
        }
    };
    tracing::info!(
        topic,
        partition,
        offset,
        stored = stored.is_some(),
        "reading partition"
    );
    context.tracker.start(partition, offset, stored);

    let mut plan = FetchPlan::new(context.fetch_max_bytes, context.fetch_max_wait);
    let mut backoff = Backoff::for_outages();
    loop {
        let fetched = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            fetched = client.fetch_records(offset, plan.bytes(), plan.max_wait_ms()) => fetched,
        };
        let records = match fetched {
            // Kafka answers a fetch past the end with OffsetOutOfRange; tansu answers it with
            // no records and a high watermark below the offset, which says the same.
            Ok((records, high_watermark)) if !(records.is_empty() && high_watermark < offset) => {
                backoff.reset();
                context.stats.kafka_answered(true);
                context
                    .tracker
                    .observe_high_watermark(partition, high_watermark);
                let next_offset = records.last().map_or(offset, |record| record.offset + 1);
                plan.answered(records.len(), next_offset, high_watermark);
                records
            }
            Ok(_)
            | Err(KafkaError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }) => match restart_from_earliest(&context, &client, partition, offset).await {
                Some(earliest) => {
                    offset = earliest;
                    continue;
                }
                None => return,
            },
            Err(error) => {
                context.stats.kafka_answered(false);
                tracing::warn!(topic, partition, offset, %error, "Kafka fetch failed, retrying");
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
        context.tracker.register(
            partition,
            offset,
            records.iter().map(|record| record.offset),
        );
        for record in records {
            let record = KafkaRecord {
                partition,
                offset: record.offset,
                value: record.record.value,
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
        offset = last + 1;
    }
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
) -> Option<i64> {
    let earliest = retry_until_ok("finding the earliest offset", &context.shutdown, || {
        client.get_offset(OffsetAt::Earliest)
    })
    .await?;
    tracing::error!(
        topic = context.topic,
        partition,
        offset,
        earliest,
        "offset is outside the partition, restarting from the earliest record"
    );
    context.tracker.start(partition, earliest, None);
    Some(earliest)
}

/// The offset to start a partition from when none is stored. For `latest`, the high watermark
/// comes from a fetch response: some brokers (tansu) answer ListOffsets(latest) with the last
/// batch's base offset + 1 instead.
async fn start_offset(client: &PartitionClient, start: StartOffset) -> Result<i64, KafkaError> {
    let earliest = client.get_offset(OffsetAt::Earliest).await?;
    match start {
        StartOffset::Earliest => Ok(earliest),
        StartOffset::Latest => {
            let (_, high_watermark) = client.fetch_records(earliest, 1..2, 0).await?;
            Ok(high_watermark)
        }
    }
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

    #[test]
    fn fetches_start_small_and_double_up_to_the_maximum() {
        let mut plan = FetchPlan::new(300 << 10, Duration::from_millis(500));
        let mut ends = Vec::new();
        for _ in 0..6 {
            ends.push(plan.bytes().end);
            plan.answered(100, 0, 10);
        }
        assert_eq!(
            ends,
            [
                64 << 10,
                128 << 10,
                256 << 10,
                300 << 10,
                300 << 10,
                300 << 10
            ]
        );

        let mut growing = FetchPlan::new(4 << 20, Duration::from_millis(500));
        growing.answered(0, 0, 10);
        assert_eq!(
            growing.pause(),
            None,
            "a larger fetch may hold a larger record"
        );

        let below_first = FetchPlan::new(1024, Duration::ZERO);
        assert_eq!(below_first.bytes(), 1..1024);

        let mut at_limit = FetchPlan::new(i32::MAX, Duration::from_secs(3600 * 24 * 365));
        for _ in 0..40 {
            at_limit.answered(100, 0, 10);
        }
        assert_eq!(at_limit.bytes(), 1..i32::MAX);
        assert_eq!(at_limit.max_wait_ms(), 0);
        at_limit.answered(0, 10, 10);
        assert_eq!(
            at_limit.max_wait_ms(),
            i32::MAX,
            "a wait beyond i32 milliseconds is capped"
        );
    }

    #[test]
    fn fetches_wait_only_once_caught_up() {
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500));
        assert_eq!(plan.max_wait_ms(), 0, "the first fetch may be behind");
        plan.answered(3000, 3000, 10_000);
        assert_eq!(plan.max_wait_ms(), 0, "records remain");
        plan.answered(7000, 10_000, 10_000);
        assert_eq!(plan.max_wait_ms(), 500, "caught up");
        plan.answered(0, 10_000, 10_000);
        assert_eq!(plan.max_wait_ms(), 500, "still caught up");
        plan.answered(1, 10_001, 10_050);
        assert_eq!(plan.max_wait_ms(), 0, "new records arrived");
        assert_eq!(plan.pause(), None);
        plan.answered(0, 10_001, 10_050);
        assert_eq!(
            plan.max_wait_ms(),
            500,
            "nothing came back below the watermark"
        );
        assert_eq!(
            plan.pause(),
            Some(Duration::from_millis(500)),
            "a transaction marker"
        );
        plan.answered(0, 10_050, 10_050);
        assert_eq!(plan.pause(), None, "caught up: the fetch itself waits");
        plan.answered(10, 10_060, 10_060);
        assert_eq!(plan.pause(), None);
    }
}
