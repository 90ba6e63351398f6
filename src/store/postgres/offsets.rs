//! The stored Kafka offsets: the next offset to read per partition of the topic.

use std::collections::HashMap;

use super::{Database, DbError};

/// Stores each offset only while this instance ($4) holds the partition's lease at the epoch
/// the offset was read under: an instance that lost a partition cannot move its offset.
const UPSERT_OFFSETS: &str = "\
INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset)
SELECT $1, batch.part, batch.next
FROM unnest($2::int4[], $3::int8[], $5::int8[]) AS batch (part, next, epoch)
JOIN partition_leases AS lease
  ON lease.kafka_topic = $1 AND lease.kafka_partition = batch.part
 AND lease.owner = $4 AND lease.epoch = batch.epoch
ON CONFLICT (kafka_topic, kafka_partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
RETURNING kafka_partition";

impl Database {
    /// The next offset to read for each partition that has one stored.
    pub async fn load_offsets(&self) -> Result<HashMap<i32, i64>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE kafka_topic = $1",
                &[&self.topic],
            )
            .await?;
        let mut offsets = HashMap::with_capacity(rows.len());
        for row in rows {
            offsets.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(offsets)
    }

    /// Records the next offset to read for each given (partition, offset, epoch), where
    /// `instance` still holds the partition's lease at that epoch; returns those stored (the
    /// others' partitions have moved to another instance).
    pub async fn store_offsets(
        &self,
        instance: &str,
        offsets: &[(i32, i64, i64)],
    ) -> Result<Vec<(i32, i64, i64)>, DbError> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(UPSERT_OFFSETS).await?;
        let partitions: Vec<i32> = offsets.iter().map(|offset| offset.0).collect();
        let next: Vec<i64> = offsets.iter().map(|offset| offset.1).collect();
        let epochs: Vec<i64> = offsets.iter().map(|offset| offset.2).collect();
        let stored: Vec<i32> = client
            .query(
                &statement,
                &[&self.topic, &partitions, &next, &instance, &epochs],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        Ok(offsets
            .iter()
            .filter(|offset| stored.contains(&offset.0))
            .copied()
            .collect())
    }
}
