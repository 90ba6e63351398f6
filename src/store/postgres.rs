//! PostgreSQL: the durable copy of every order, the rejected records, and the Kafka offsets.
//! This is the only module that holds SQL.
//!
//! Orders are JSONB rows keyed by `order_uid`; `id` is an identity column, so PostgreSQL hands
//! out ids and they never change. A handler's whole batch (orders and rejects) is written by
//! one transaction in two statements, whatever its size: arrays go in as parameters and
//! `unnest` turns them into rows, so there is no round trip per order.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::NoTls;

use crate::order::Order;
use crate::store::memory::StoredOrder;

/// Longest rejection reason stored; serde messages can quote a whole hostile value.
const MAX_REASON_CHARS: usize = 1000;

/// Errors of the PostgreSQL layer. All of them are worth retrying except [`DbError::Corrupt`].
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (PostgreSQL down or the pool exhausted).
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A stored order no longer reads as an order; an operator must look at the row.
    #[error("stored order {id} is not a valid order: {reason}")]
    Corrupt {
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        reason: String,
    },
}

impl DbError {
    /// Whether PostgreSQL refused the data itself (a value it cannot hold, a statement too
    /// large), as opposed to being unreachable or busy. Retrying the same rows cannot help.
    pub fn is_refusal(&self) -> bool {
        let DbError::Postgres(error) = self else {
            return false;
        };
        error.code().is_some_and(|code| {
            let class = &code.code()[..2];
            // 22: data exception, 54: program limit exceeded.
            class == "22" || class == "54"
        })
    }
}

/// An accepted order on its way to PostgreSQL, with the Kafka position it came from.
#[derive(Debug, Clone, Copy)]
pub struct OrderRow<'a> {
    /// The order.
    pub order: &'a Order,
    /// Kafka partition of the record.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
}

/// A record that is not an order, as it is kept for operators.
#[derive(Debug, Clone)]
pub struct RejectRow<'a> {
    /// Kafka partition of the record.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
    /// The record value as it arrived (empty for a record without a value).
    pub raw: &'a [u8],
    /// Why it was rejected.
    pub reason: String,
}

/// A newly stored order: the id PostgreSQL gave it and its uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The new id.
    pub id: i64,
    /// The order's uid.
    pub order_uid: String,
}

/// Builds the connection pool. Connections are made lazily, so this succeeds while
/// PostgreSQL is down; [`wait_until_reachable`](Database::wait_until_reachable) waits for it.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    topic: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("topic", &self.topic)
            .finish()
    }
}

const SCHEMA: &str = r#"
SELECT pg_advisory_xact_lock(7341092561);
CREATE TABLE IF NOT EXISTS orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_uid       text        NOT NULL UNIQUE,
    date_created    timestamptz NOT NULL,
    body            jsonb       NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_date_created_idx ON orders (date_created);
CREATE TABLE IF NOT EXISTS rejected_records (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    raw             bytea       NOT NULL,
    reason          text        NOT NULL,
    rejected_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition)
);
"#;

const INSERT_ORDERS: &str = "\
INSERT INTO orders (order_uid, date_created, body, kafka_topic, kafka_partition, kafka_offset)
SELECT uid, created, body::jsonb, $1, part, off
FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::int4[], $6::int8[])
     AS batch (uid, created, body, part, off)
ON CONFLICT (order_uid) DO NOTHING
RETURNING id, order_uid";

const INSERT_REJECTS: &str = "\
INSERT INTO rejected_records (kafka_topic, kafka_partition, kafka_offset, raw, reason)
SELECT $1, part, off, raw, reason
FROM unnest($2::int4[], $3::int8[], $4::bytea[], $5::text[]) AS batch (part, off, raw, reason)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING";

const UPSERT_OFFSETS: &str = "\
INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset)
SELECT $1, part, next FROM unnest($2::int4[], $3::int8[]) AS batch (part, next)
ON CONFLICT (kafka_topic, kafka_partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()";

impl Database {
    /// A pool of at most `pool_size` connections for orders read from `topic`.
    pub fn new(config: tokio_postgres::Config, pool_size: usize, topic: &str) -> Self {
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(10)))
            .build()
            .unwrap_or_else(|_| unreachable!("a pool with a runtime and timeouts always builds"));
        Self {
            pool,
            topic: topic.to_string(),
        }
    }

    /// Creates the tables if they are missing. Safe to run from several instances at once.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction.batch_execute(SCHEMA).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Writes a handler's batch in one transaction: the orders (an `order_uid` already stored
    /// is left as it is) and the rejected records. Returns the orders that were new.
    pub async fn write_batch(
        &self,
        orders: &[OrderRow<'_>],
        rejects: &[RejectRow<'_>],
    ) -> Result<Vec<Inserted>, DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let mut inserted = Vec::with_capacity(orders.len());
        if !orders.is_empty() {
            let statement = transaction.prepare_cached(INSERT_ORDERS).await?;
            let uids: Vec<&str> = orders.iter().map(|row| row.order.order_uid()).collect();
            let created: Vec<DateTime<Utc>> =
                orders.iter().map(|row| row.order.date_created()).collect();
            let bodies: Vec<&str> = orders
                .iter()
                .map(|row| std::str::from_utf8(row.order.json()).unwrap_or_default())
                .collect();
            let partitions: Vec<i32> = orders.iter().map(|row| row.partition).collect();
            let offsets: Vec<i64> = orders.iter().map(|row| row.offset).collect();
            let rows = transaction
                .query(
                    &statement,
                    &[&self.topic, &uids, &created, &bodies, &partitions, &offsets],
                )
                .await?;
            for row in rows {
                inserted.push(Inserted {
                    id: row.try_get(0)?,
                    order_uid: row.try_get(1)?,
                });
            }
        }
        if !rejects.is_empty() {
            let statement = transaction.prepare_cached(INSERT_REJECTS).await?;
            let partitions: Vec<i32> = rejects.iter().map(|row| row.partition).collect();
            let offsets: Vec<i64> = rejects.iter().map(|row| row.offset).collect();
            let raws: Vec<&[u8]> = rejects.iter().map(|row| row.raw).collect();
            let reasons: Vec<String> = rejects
                .iter()
                .map(|row| clean_reason(&row.reason))
                .collect();
            transaction
                .execute(
                    &statement,
                    &[&self.topic, &partitions, &offsets, &raws, &reasons],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(inserted)
    }

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

    /// Streams the newest `limit` orders created at or after `created_after` (all, if `None`)
    /// into `sink`, newest first. Returns how many were read. A row that no longer reads as an
    /// order is logged at ERROR and skipped: one bad row must not keep the service down.
    pub async fn restore(
        &self,
        limit: usize,
        created_after: Option<DateTime<Utc>>,
        mut sink: impl FnMut(StoredOrder),
    ) -> Result<usize, DbError> {
        if limit == 0 {
            return Ok(0);
        }
        let client = self.pool.get().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query_raw(
                "SELECT id, body::text FROM orders \
                 WHERE $1::timestamptz IS NULL OR date_created >= $1 \
                 ORDER BY date_created DESC, id DESC LIMIT $2",
                [
                    &created_after as &(dyn tokio_postgres::types::ToSql + Sync),
                    &limit,
                ],
            )
            .await?;
        pin_mut!(rows);
        let mut n_restored = 0;
        while let Some(row) = rows.try_next().await? {
            match stored_order(row.try_get(0)?, row.try_get(1)?) {
                Ok(order) => {
                    sink(order);
                    n_restored += 1;
                }
                Err(error) => tracing::error!(%error, "skipping a corrupt order while restoring"),
            }
        }
        Ok(n_restored)
    }

    /// The stored order with this id, read from PostgreSQL.
    pub async fn order_by_id(&self, id: i64) -> Result<Option<StoredOrder>, DbError> {
        self.order_where("SELECT id, body::text FROM orders WHERE id = $1", &id)
            .await
    }

    /// The stored order with this uid, read from PostgreSQL.
    pub async fn order_by_uid(&self, order_uid: &str) -> Result<Option<StoredOrder>, DbError> {
        self.order_where(
            "SELECT id, body::text FROM orders WHERE order_uid = $1",
            &order_uid,
        )
        .await
    }

    async fn order_where(
        &self,
        query: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<StoredOrder>, DbError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(query).await?;
        match client.query_opt(&statement, &[key]).await? {
            Some(row) => Ok(Some(stored_order(row.try_get(0)?, row.try_get(1)?)?)),
            None => Ok(None),
        }
    }

    /// Closes the pool: no new connections, idle ones are dropped.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Whether a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}

fn stored_order(id: i64, body: String) -> Result<StoredOrder, DbError> {
    let order = Order::from_stored_json(&body).map_err(|rejection| DbError::Corrupt {
        id,
        reason: rejection.to_string(),
    })?;
    Ok(StoredOrder::new(
        id,
        order.order_uid(),
        order.date_created(),
        order.json().clone(),
    ))
}

/// PostgreSQL text cannot hold NUL, and a reason quoting a hostile value can be long.
fn clean_reason(reason: &str) -> String {
    let mut cleaned: String = reason
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|character| {
            if character == '\0' {
                '\u{FFFD}'
            } else {
                character
            }
        })
        .collect();
    if reason.chars().nth(MAX_REASON_CHARS).is_some() {
        cleaned.push('…');
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_made_storable() {
        assert_eq!(clean_reason("a\0b"), "a\u{FFFD}b");
        let long = "x".repeat(MAX_REASON_CHARS + 5);
        assert_eq!(clean_reason(&long).chars().count(), MAX_REASON_CHARS + 1);
        assert_eq!(clean_reason("short"), "short");
    }
}
