//! Reading orders back into memory, at start-up and when this instance takes partitions:
//! planned on the `date_created` index, then read as id ranges over several connections at
//! once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{pin_mut, TryStreamExt};

use super::lookup::served_order;
use super::{Database, DbError};
use crate::events::RestoreRowSkipped;
use crate::store::memory::MemoryStore;

/// What a restore will read: see [`Database::plan_restore`].
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// Orders that will be loaded.
    pub n_orders: usize,
    min_id: i64,
    max_id: i64,
    /// The oldest order to keep, as `(date_created, id)`: everything at or after it.
    oldest_kept: (Option<DateTime<Utc>>, i64),
    /// Only orders of this topic's partitions, or (`None`) every order.
    partitions: Option<Vec<i32>>,
}

impl Database {
    /// Plans a restore of the newest `limit` orders created at or after `created_after` (any
    /// age, if `None`) read from `partitions` of this topic (`None`: every stored order, for
    /// an instance that owns every partition): how many there are, and which rows to read.
    /// When more orders qualify than `limit`, the oldest to keep is found here (on the
    /// `date_created` index), so the reads are plain filtered scans, never a sort.
    pub async fn plan_restore(
        &self,
        limit: usize,
        created_after: Option<DateTime<Utc>>,
        partitions: Option<&[i32]>,
    ) -> Result<RestorePlan, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), -1) FROM orders \
                 WHERE ($1::timestamptz IS NULL OR date_created >= $1) \
                 AND ($3::integer[] IS NULL OR (kafka_topic = $2 AND kafka_partition = ANY($3)))",
                &[&created_after, &self.topic, &partitions],
            )
            .await?;
        let (count, min_id, max_id): (i64, i64, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let oldest_kept = if limit == 0 {
            (None, i64::MAX)
        } else if count > limit {
            let row = client
                .query_one(
                    "SELECT date_created, id FROM orders \
                     WHERE $3::integer[] IS NULL OR (kafka_topic = $2 AND kafka_partition = ANY($3)) \
                     ORDER BY date_created DESC, id DESC OFFSET $1 LIMIT 1",
                    &[&(limit - 1), &self.topic, &partitions],
                )
                .await?;
            (Some(row.try_get(0)?), row.try_get(1)?)
        } else {
            (created_after, i64::MIN)
        };
        Ok(RestorePlan {
            n_orders: usize::try_from(count.min(limit)).unwrap_or(0),
            min_id,
            max_id: if limit == 0 { min_id - 1 } else { max_id },
            oldest_kept,
            partitions: partitions.map(<[i32]>::to_vec),
        })
    }

    /// PostgreSQL's estimate of the rows in `orders` (from its last `ANALYZE`, autovacuum's
    /// or anyone's), read without touching the table; `None` before the first.
    pub async fn estimate_orders(&self) -> Result<Option<usize>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT reltuples::int8 FROM pg_class WHERE oid = 'orders'::regclass",
                &[],
            )
            .await?;
        Ok(usize::try_from(row.try_get::<_, i64>(0)?).ok())
    }

    /// Loads into `memory` the orders of `plan`. Returns how many were loaded.
    ///
    /// PostgreSQL sending the rows and memory taking them in are the cost, so the rows are
    /// read over `parallelism` connections at once, each an id range, each in its own task. A
    /// row that cannot be read as an order is logged at ERROR and skipped: one bad row must
    /// not keep the service down.
    pub async fn restore_into(
        &self,
        memory: &Arc<MemoryStore>,
        plan: &RestorePlan,
        parallelism: usize,
    ) -> Result<usize, DbError> {
        let (min_id, max_id, oldest_kept) = (plan.min_id, plan.max_id, plan.oldest_kept);
        let partitions = &plan.partitions;
        let parallelism = i64::try_from(parallelism.max(1)).unwrap_or(1);
        let span = (max_id - min_id + 1).max(0);
        let step = (span + parallelism - 1) / parallelism;
        let ranges = (0..parallelism)
            .map(|index| {
                (
                    min_id + index * step,
                    (min_id + (index + 1) * step).min(max_id + 1),
                )
            })
            .filter(|(start, end)| start < end);
        // One task per range, so turning rows into memory entries runs on every core too.
        let loads: Vec<_> = ranges
            .map(|(start, end)| {
                let database = self.clone();
                let memory = Arc::clone(memory);
                let partitions = partitions.clone();
                tokio::spawn(async move {
                    database
                        .restore_range(&memory, start, end, oldest_kept, partitions.as_deref())
                        .await
                })
            })
            .collect();
        let mut n_loaded = 0;
        for load in loads {
            n_loaded += load
                .await
                .map_err(|error| DbError::Task(error.to_string()))??;
        }
        Ok(n_loaded)
    }

    async fn restore_range(
        &self,
        memory: &MemoryStore,
        start_id: i64,
        end_id: i64,
        oldest_kept: (Option<DateTime<Utc>>, i64),
        partitions: Option<&[i32]>,
    ) -> Result<usize, DbError> {
        const CHUNK: usize = 4096;
        let client = self.pool.get().await?;
        let rows = client
            .query_raw(
                "SELECT id, kafka_partition, order_uid, date_created, body_text FROM orders \
                 WHERE id >= $1 AND id < $2 \
                 AND ($3::timestamptz IS NULL OR (date_created, id) >= ($3, $4)) \
                 AND ($6::integer[] IS NULL OR (kafka_topic = $5 AND kafka_partition = ANY($6)))",
                [
                    &start_id as &(dyn tokio_postgres::types::ToSql + Sync),
                    &end_id,
                    &oldest_kept.0,
                    &oldest_kept.1,
                    &self.topic,
                    &partitions,
                ],
            )
            .await?;
        pin_mut!(rows);
        let mut n_loaded = 0;
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(row) = rows.try_next().await? {
            match served_order(&row) {
                Ok(order) => chunk.push(order),
                Err(error) => RestoreRowSkipped { error: &error }.record(),
            }
            if chunk.len() == CHUNK {
                n_loaded += chunk.len();
                memory.insert_many(chunk.drain(..));
            }
        }
        n_loaded += chunk.len();
        memory.insert_many(chunk);
        Ok(n_loaded)
    }
}
