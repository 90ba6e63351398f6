//! The stored Kafka offsets: the next offset to read per partition of the topic.

use std::collections::HashMap;

use super::{Database, DbError};

const UPSERT_OFFSETS: &str = "\
INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset)
SELECT $1, part, next FROM unnest($2::int4[], $3::int8[]) AS batch (part, next)
ON CONFLICT (kafka_topic, kafka_partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()";

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

    /// Records the next offset to read for each given partition.
    pub async fn store_offsets(&self, offsets: &[(i32, i64)]) -> Result<(), DbError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(UPSERT_OFFSETS).await?;
        let partitions: Vec<i32> = offsets.iter().map(|(partition, _)| *partition).collect();
        let next: Vec<i64> = offsets.iter().map(|(_, next)| *next).collect();
        client
            .execute(&statement, &[&self.topic, &partitions, &next])
            .await?;
        Ok(())
    }
}
