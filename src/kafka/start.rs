//! Where a partition without a stored offset starts (`KAFKA_START_OFFSET`): the earliest
//! record, the end, or the consumer group's committed offset, reached from the start of the
//! record batch that holds it.

use rskafka::client::error::Error as KafkaError;
use rskafka::client::partition::{OffsetAt, PartitionClient};

use super::ReaderContext;
use crate::config::StartOffset;
use crate::consumer_group::GroupError;
use crate::events::StartedFromGroup;
use crate::offsets::StoredOffset;

/// Why the start of a partition without a stored offset could not be found.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// The broker's offsets or records.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The consumer group's committed offset.
    #[error(transparent)]
    Group(#[from] GroupError),
}

/// Where to start a partition when no position is stored: `KAFKA_START_OFFSET`'s earliest
/// record, the end, or the consumer group's committed offset (the earliest when the group has
/// none, or one the partition no longer holds). The high watermark comes from a fetch
/// response: some brokers (tansu) answer ListOffsets(latest) with the last batch's base
/// offset + 1 instead.
pub(super) async fn start_position(
    context: &ReaderContext,
    client: &PartitionClient,
    partition: i32,
) -> Result<StoredOffset, StartError> {
    let earliest = client.get_offset(OffsetAt::Earliest).await?;
    let group = match (context.start_offset, &context.group) {
        (StartOffset::Earliest, _) => return Ok(StoredOffset::at(earliest)),
        (StartOffset::Latest, _) => {
            return Ok(StoredOffset::at(high_watermark(client, earliest).await?));
        }
        // Settings refuse `group` without a group id, so this is the earliest by default.
        (StartOffset::Group, None) => return Ok(StoredOffset::at(earliest)),
        (StartOffset::Group, Some(group)) => group,
    };
    let committed = group
        .committed(&[partition])
        .await?
        .get(&partition)
        .copied();
    let end = high_watermark(client, earliest).await?;
    let start = match committed.filter(|offset| (earliest..=end).contains(offset)) {
        Some(offset) => StoredOffset {
            next_offset: offset,
            fetch_from: fetch_start_for(client, offset, earliest).await?,
        },
        None => StoredOffset::at(earliest),
    };
    context.events.emit(StartedFromGroup {
        group: group.group(),
        partition,
        committed,
        offset: start.next_offset,
    });
    Ok(start)
}

/// The partition's high watermark, from a fetch response (see [`start_position`]).
async fn high_watermark(client: &PartitionClient, earliest: i64) -> Result<i64, KafkaError> {
    let (_, high_watermark) = client.fetch_records(earliest, 1..2, 0).await?;
    Ok(high_watermark)
}

/// A fetch start from which reading brings the record at `target` and every one after it.
/// A consumer commits the offset after the last record it read, which may be inside a record
/// batch. Kafka answers a fetch from inside a batch with the whole batch, so `target` itself
/// would do; tansu skips to the next batch, so this looks for the start of the batch holding
/// `target`: fetching from further and further back (1, 8, 64 ... records) until a fetch
/// brings a record at or before `target`, whose offset is a batch start on both brokers. The
/// reader drops the records fetched below `target`.
async fn fetch_start_for(
    client: &PartitionClient,
    target: i64,
    earliest: i64,
) -> Result<i64, KafkaError> {
    let mut back = 0_i64;
    loop {
        let from = (target - back).max(earliest);
        let (records, _) = client.fetch_records(from, 1..65_536, 0).await?;
        match records.first() {
            Some(first) if first.offset <= target => return Ok(first.offset),
            // Nothing at or after `from`: `target` is the partition's end, where the next
            // record will start a batch of its own.
            None => return Ok(from),
            Some(_) if from == earliest => return Ok(earliest),
            Some(_) => back = if back == 0 { 1 } else { back.saturating_mul(8) },
        }
    }
}
