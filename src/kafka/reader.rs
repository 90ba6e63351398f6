//! The reader tasks: each owns a disjoint set of the topic's partitions and runs one fetch loop
//! per partition, registering every record with the [`OffsetTracker`] before it enters the
//! bounded channel to the batch writers. A full channel makes the reader wait: records are never
//! dropped. A broker outage is waited out with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{FetchPlan, KafkaRecord};
use crate::backoff::{retry_until_ok, Backoff};
use crate::config::StartOffset;
use crate::events::{Events, KafkaAnswered, KafkaFetchFailed};
use crate::offsets::OffsetTracker;

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
    /// Where fetches are reported, and whether Kafka answers.
    pub events: Arc<Events>,
    /// Cancelled when the service stops.
    pub shutdown: CancellationToken,
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
    context.tracker.start_partition(partition, offset, stored);

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
                context.events.emit(KafkaAnswered);
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
                context.events.emit(KafkaFetchFailed {
                    topic,
                    partition,
                    offset,
                    error: &error,
                });
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
        context.tracker.register_fetch(
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
    context.tracker.start_partition(partition, earliest, None);
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
}
