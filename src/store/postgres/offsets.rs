//! The stored Kafka positions, per partition of the topic: `next_offset`, below which every
//! record is durable (Kafka's committed offset), and `fetch_from`, the record batch boundary
//! reading resumes at (`offsets/tracker.rs` says why the two differ).

use std::collections::HashMap;

use super::{Database, DbError};
use crate::offsets::{OffsetToStore, StoredOffset};

/// Stores each position only while this instance ($4) holds the partition's lease at the
/// epoch the position was read under: an instance that lost a partition cannot move its
/// offset.
const UPSERT_OFFSETS: &str = "\
INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset, fetch_from)
SELECT $1, batch.part, batch.next, batch.fetch_from
FROM unnest($2::int4[], $3::int8[], $5::int8[], $6::int8[])
     AS batch (part, next, epoch, fetch_from)
JOIN partition_leases AS lease
  ON lease.kafka_topic = $1 AND lease.kafka_partition = batch.part
 AND lease.owner = $4 AND lease.epoch = batch.epoch
ON CONFLICT (kafka_topic, kafka_partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, fetch_from = EXCLUDED.fetch_from,
              updated_at = now()
RETURNING kafka_partition";

/// `fetch_from` is empty in a row written by something other than orderstore (an operator
/// setting an offset by hand), and is never above `next_offset`: reading from below
/// `next_offset` only reads durable records again, which the reader drops.
const LOAD_OFFSETS: &str = "\
SELECT kafka_partition, next_offset, least(coalesce(fetch_from, next_offset), next_offset)
FROM kafka_offsets WHERE kafka_topic = $1";

impl Database {
    /// The stored position of each partition that has one.
    pub async fn load_offsets(&self) -> Result<HashMap<i32, StoredOffset>, DbError> {
        let client = self.pool.get().await?;
        let rows = client.query(LOAD_OFFSETS, &[&self.topic]).await?;
        let mut offsets = HashMap::with_capacity(rows.len());
        for row in rows {
            offsets.insert(
                row.try_get(0)?,
                StoredOffset {
                    next_offset: row.try_get(1)?,
                    fetch_from: row.try_get(2)?,
                },
            );
        }
        Ok(offsets)
    }

    /// Records the positions given, each where `instance` still holds the partition's lease
    /// at its epoch; returns those stored (the others' partitions have moved to another
    /// instance).
    pub async fn store_offsets(
        &self,
        instance: &str,
        offsets: &[OffsetToStore],
    ) -> Result<Vec<OffsetToStore>, DbError> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(UPSERT_OFFSETS).await?;
        let partitions: Vec<i32> = offsets.iter().map(|offset| offset.partition).collect();
        let next: Vec<i64> = offsets
            .iter()
            .map(|offset| offset.offset.next_offset)
            .collect();
        let epochs: Vec<i64> = offsets.iter().map(|offset| offset.epoch).collect();
        let fetch_from: Vec<i64> = offsets
            .iter()
            .map(|offset| offset.offset.fetch_from)
            .collect();
        let stored: Vec<i32> = client
            .query(
                &statement,
                &[
                    &self.topic,
                    &partitions,
                    &next,
                    &instance,
                    &epochs,
                    &fetch_from,
                ],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        Ok(offsets
            .iter()
            .filter(|offset| stored.contains(&offset.partition))
            .copied()
            .collect())
    }
}
