//! Reading orders back into memory, at start-up and when this instance takes partitions:
//! planned on the `(date_created, id)` index, then read as id ranges over several connections
//! at once.
//!
//! The ranges cover only the ids from the lowest kept to the newest, so a restore of the
//! newest million out of many reads the end of the table, not all of it; and they are many
//! small ranges taken in turn by the connections, so that one connection never reads every
//! order kept while the others find none (orders kept cluster at the high ids).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{pin_mut, TryStreamExt};

use super::lookup::row_order;
use super::{Database, DbError};
use crate::events::RestoreRowSkipped;
use crate::store::memory::MemoryStore;
use crate::store::RowOrder;

/// What a restore will read: see [`Database::plan_restore`].
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// Orders that will be loaded.
    pub n_orders: usize,
    /// The lowest id of an order kept.
    min_id: i64,
    /// The highest id of an order kept.
    max_id: i64,
    /// The oldest order to keep, as `(date_created, id)`: everything at or after it.
    oldest_kept: (Option<DateTime<Utc>>, i64),
    /// Only orders of this topic's partitions, or (`None`) every order.
    partitions: Option<Vec<i32>>,
}

/// How many id ranges each connection takes in turn, about: enough that the connections
/// finish together however the orders kept spread over the ids, few enough that each range
/// is a scan of thousands of rows, not a query per handful.
const RANGES_PER_CONNECTION: usize = 8;

/// The ids `min_id ..= max_id` cut into ranges of about equal span, handed out in order, each
/// once, to whichever connection asks next.
#[derive(Debug)]
struct IdRanges {
    next_start: AtomicI64,
    end: i64,
    step: i64,
}

impl IdRanges {
    fn new(min_id: i64, max_id: i64, n_ranges: usize) -> Self {
        let end = max_id.saturating_add(1);
        let span = end.saturating_sub(min_id).max(0);
        let n_ranges = i64::try_from(n_ranges.max(1)).unwrap_or(1);
        Self {
            next_start: AtomicI64::new(min_id),
            end,
            step: (span / n_ranges + 1).max(1),
        }
    }

    /// The next range, as `(start, end)` with `end` excluded; `None` once all are handed out.
    fn next(&self) -> Option<(i64, i64)> {
        let start = self.next_start.fetch_add(self.step, Ordering::Relaxed);
        (start < self.end).then(|| (start, start.saturating_add(self.step).min(self.end)))
    }
}

impl Database {
    /// Plans a restore of the newest `limit` orders created at or after `created_after` (any
    /// age, if `None`) read from `partitions` of this topic (`None`: every stored order, for
    /// an instance that owns every partition): how many there are, and which rows to read.
    ///
    /// When more orders qualify than `limit`, the oldest to keep, and the lowest id among the
    /// ones kept, are found in one walk of the `(date_created, id)` index, newest first,
    /// which reads `limit` index entries and no row; the reads are then plain filtered scans
    /// of the kept ids, never a sort. A table PostgreSQL estimates to hold more than `limit`
    /// orders is walked first, so a restore of the newest out of many never counts them all.
    pub async fn plan_restore(
        &self,
        limit: usize,
        created_after: Option<DateTime<Utc>>,
        partitions: Option<&[i32]>,
    ) -> Result<RestorePlan, DbError> {
        let partitions_owned = partitions.map(<[i32]>::to_vec);
        if limit == 0 {
            return Ok(RestorePlan {
                n_orders: 0,
                min_id: 0,
                max_id: -1,
                oldest_kept: (None, i64::MAX),
                partitions: partitions_owned,
            });
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Before this plan takes its connection: the estimate takes one of its own, and with
        // DB_POOL_SIZE=1 asking for a second while holding the first would wait for nothing.
        let many = self
            .estimate_orders()
            .await?
            .is_some_and(|estimate| i64::try_from(estimate).unwrap_or(i64::MAX) > limit);
        let client = self.pool.get().await?;
        let count = || async {
            let row = client
                .query_one(
                    "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), -1) FROM orders \
                     WHERE ($1::timestamptz IS NULL OR date_created >= $1) \
                     AND ($3::integer[] IS NULL OR (kafka_topic = $2 AND kafka_partition = ANY($3)))",
                    &[&created_after, &self.topic, &partitions],
                )
                .await?;
            Ok::<(i64, i64, i64), DbError>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        };
        let counted = if many { None } else { Some(count().await?) };
        if let Some((n_orders, min_id, max_id)) = counted.filter(|(n, _, _)| *n <= limit) {
            return Ok(RestorePlan {
                n_orders: usize::try_from(n_orders).unwrap_or(0),
                min_id,
                max_id,
                oldest_kept: (created_after, i64::MIN),
                partitions: partitions_owned,
            });
        }
        // The running minimum of the ids walked, read at the oldest order kept, is the lowest
        // id kept: the reads start there. No row: fewer than `limit` qualify after all.
        let newest = client
            .query_opt(
                "SELECT date_created, id, min(id) OVER (ORDER BY date_created DESC, id DESC \
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM orders \
                 WHERE ($4::timestamptz IS NULL OR date_created >= $4) \
                 AND ($3::integer[] IS NULL OR (kafka_topic = $2 AND kafka_partition = ANY($3))) \
                 ORDER BY date_created DESC, id DESC OFFSET $1 LIMIT 1",
                &[&(limit - 1), &self.topic, &partitions, &created_after],
            )
            .await?;
        let Some(oldest) = newest else {
            let (n_orders, min_id, max_id) = count().await?;
            return Ok(RestorePlan {
                n_orders: usize::try_from(n_orders.min(limit)).unwrap_or(0),
                min_id,
                max_id,
                oldest_kept: (created_after, i64::MIN),
                partitions: partitions_owned,
            });
        };
        let max_id: i64 = client
            .query_one(
                "SELECT coalesce(max(id), -1) FROM orders \
                 WHERE $2::integer[] IS NULL OR (kafka_topic = $1 AND kafka_partition = ANY($2))",
                &[&self.topic, &partitions],
            )
            .await?
            .try_get(0)?;
        Ok(RestorePlan {
            n_orders: usize::try_from(limit).unwrap_or(0),
            min_id: oldest.try_get(2)?,
            max_id,
            oldest_kept: (Some(oldest.try_get(0)?), oldest.try_get(1)?),
            partitions: partitions_owned,
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
    /// read over `parallelism` connections at once, each in its own task, each taking the
    /// next of [`RANGES_PER_CONNECTION`] × `parallelism` id ranges until none is left. A row
    /// that cannot be read as an order is logged at ERROR and skipped: one bad row must not
    /// keep the service down.
    pub async fn restore_into(
        &self,
        memory: &Arc<MemoryStore>,
        plan: &RestorePlan,
        parallelism: usize,
    ) -> Result<usize, DbError> {
        let ranges = Arc::new(IdRanges::new(
            plan.min_id,
            plan.max_id,
            parallelism.max(1) * RANGES_PER_CONNECTION,
        ));
        // One task per connection, so turning rows into memory entries runs on every core too.
        let loads: Vec<_> = (0..parallelism.max(1))
            .map(|_| {
                let database = self.clone();
                let memory = Arc::clone(memory);
                let ranges = Arc::clone(&ranges);
                let (oldest_kept, partitions) = (plan.oldest_kept, plan.partitions.clone());
                tokio::spawn(async move {
                    let mut n_loaded = 0;
                    while let Some((start, end)) = ranges.next() {
                        n_loaded += database
                            .restore_range(&memory, start, end, oldest_kept, partitions.as_deref())
                            .await?;
                    }
                    Ok::<_, DbError>(n_loaded)
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

    /// Loads the orders of `plan` with ids in `start_id .. end_id`.
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
        loop {
            let row = rows.try_next().await?;
            let end = row.is_none();
            chunk.extend(row);
            if chunk.len() == CHUNK || (end && !chunk.is_empty()) {
                // The orders borrow from their rows: memory copies each once.
                let orders: Vec<RowOrder<'_>> = chunk
                    .iter()
                    .filter_map(|row| {
                        row_order(row)
                            .inspect_err(|error| RestoreRowSkipped { error }.record())
                            .ok()
                    })
                    .collect();
                n_loaded += orders.len();
                memory.insert_rows(&orders);
                drop(orders);
                chunk.clear();
            }
            if end {
                return Ok(n_loaded);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdRanges;

    fn all(ranges: &IdRanges) -> Vec<(i64, i64)> {
        std::iter::from_fn(|| ranges.next()).collect()
    }

    #[test]
    fn ranges_cover_every_id_once_in_order() {
        for (min_id, max_id, n_ranges) in
            [(1, 100, 16), (5, 5, 16), (1, 7, 16), (40, 1_000_003, 16)]
        {
            let ranges = all(&IdRanges::new(min_id, max_id, n_ranges));
            assert_eq!(ranges.first().map(|range| range.0), Some(min_id));
            assert_eq!(ranges.last().map(|range| range.1), Some(max_id + 1));
            assert!(ranges.windows(2).all(|pair| pair[0].1 == pair[1].0));
            assert!(ranges.iter().all(|(start, end)| start < end));
            assert!(ranges.len() <= n_ranges, "{} ranges", ranges.len());
        }
    }

    #[test]
    fn an_empty_plan_hands_out_no_range() {
        assert!(all(&IdRanges::new(10, 9, 4)).is_empty());
        assert!(all(&IdRanges::new(0, -1, 4)).is_empty());
    }
}
