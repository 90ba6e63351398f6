//! Writing a batch writer's batch: the accepted orders and the rejected records of one batch
//! in one transaction, with no round trip per order.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::{pin_mut, SinkExt};

use super::copy::{encode_copy, COPY_ORDERS};
use super::leases::{check_leases, LeaseGuard};
use super::rejects::{encode_headers, hex_digits};
use super::{Database, DbError};
use crate::order::ValidOrder;

/// Longest rejection reason stored; serde messages can quote a whole hostile value.
const MAX_REASON_CHARS: usize = 1000;

/// An accepted order on its way to PostgreSQL, with the Kafka position it came from.
#[derive(Debug, Clone, Copy)]
pub struct IncomingOrder<'a> {
    /// The order.
    pub order: &'a ValidOrder,
    /// Kafka partition of the record.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
}

/// A record that is not an order, as it is kept for operators.
#[derive(Debug, Clone)]
pub struct RejectedRecord<'a> {
    /// Kafka partition of the record.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
    /// The record value as it arrived (empty for a record without a value).
    pub raw: &'a [u8],
    /// The record's key, if it had one.
    pub key: Option<&'a [u8]>,
    /// The record's headers (`None` where they are not at hand: an order PostgreSQL refused).
    pub headers: Option<&'a BTreeMap<String, Vec<u8>>>,
    /// Why it was rejected.
    pub reason: String,
    /// The kind of rejection ([`crate::order::Rejection::kind`]).
    pub kind: &'static str,
}

/// A newly stored order: the id PostgreSQL gave it, and its place in the batch written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The new id.
    pub id: i64,
    /// The index of the order in the slice given to [`Database::write_batch`].
    pub row: usize,
}

const INSERT_ORDERS: &str = "\
INSERT INTO orders
    (order_uid, date_created, body, body_text, kafka_topic, kafka_partition, kafka_offset)
SELECT uid, created, body::jsonb, body, $1, part, off
FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::int4[], $6::int8[])
     AS batch (uid, created, body, part, off)
ON CONFLICT (order_uid) DO NOTHING
RETURNING id, order_uid";

const RESERVE_IDS: &str =
    "SELECT nextval(pg_get_serial_sequence('orders', 'id')) FROM generate_series(1, $1::int8)";

const INSERT_REJECTS: &str = "\
INSERT INTO rejected_records
    (kafka_topic, kafka_partition, kafka_offset, raw, reason, raw_key, raw_headers, reason_kind)
SELECT $1, part, off, raw, reason, raw_key, raw_headers, kind
FROM unnest($2::int4[], $3::int8[], $4::bytea[], $5::text[], $6::bytea[], $7::bytea[],
            $8::text[])
     AS batch (part, off, raw, reason, raw_key, raw_headers, kind)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING";

const INSERT_REJECT_AS_HEX: &str = "\
INSERT INTO rejected_records
    (kafka_topic, kafka_partition, kafka_offset, raw, raw_encoding, reason, raw_key, raw_headers,
     reason_kind)
VALUES ($1, $2, $3, $4, 'hex', $5, $6, $7, $8)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING";

impl Database {
    /// Writes a batch writer's batch in one transaction: the orders (an `order_uid` already stored
    /// is left as it is) and the rejected records. Returns the orders that were new.
    ///
    /// The fast path reserves ids from the sequence and loads the orders with binary COPY,
    /// PostgreSQL's cheapest way in. COPY cannot skip a conflicting row, so when an
    /// `order_uid` is already stored (a replay, a resend) the transaction is rolled back and
    /// the batch goes through `INSERT .. ON CONFLICT DO NOTHING` instead.
    ///
    /// Every transaction first checks `guard`'s leases (`leases::check_leases`), so a batch
    /// read under a lease this instance has lost changes nothing.
    pub async fn write_batch(
        &self,
        orders: &[IncomingOrder<'_>],
        rejects: &[RejectedRecord<'_>],
        guard: &LeaseGuard<'_>,
    ) -> Result<Vec<Inserted>, DbError> {
        let mut client = self.pool.get().await?;
        if !orders.is_empty() {
            match self.copy_batch(&mut client, orders, rejects, guard).await {
                Err(DbError::Postgres(error))
                    if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                }
                done => return done,
            }
        }
        let transaction = client.transaction().await?;
        check_leases(&transaction, &self.topic, guard).await?;
        let inserted = self.insert_orders(&transaction, orders).await?;
        self.insert_rejects(&transaction, rejects).await?;
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn copy_batch(
        &self,
        client: &mut deadpool_postgres::Object,
        orders: &[IncomingOrder<'_>],
        rejects: &[RejectedRecord<'_>],
        guard: &LeaseGuard<'_>,
    ) -> Result<Vec<Inserted>, DbError> {
        let transaction = client.transaction().await?;
        check_leases(&transaction, &self.topic, guard).await?;
        let reserve = transaction.prepare_cached(RESERVE_IDS).await?;
        let n_orders = i64::try_from(orders.len()).unwrap_or(i64::MAX);
        let ids: Vec<i64> = transaction
            .query(&reserve, &[&n_orders])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let sink = transaction.copy_in(COPY_ORDERS).await?;
        pin_mut!(sink);
        for chunk in encode_copy(&self.topic, orders, &ids) {
            sink.feed(chunk).await?;
        }
        sink.finish().await?;
        self.insert_rejects(&transaction, rejects).await?;
        transaction.commit().await?;
        // COPY stored every order, with the ids in the order they were reserved.
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(row, id)| Inserted { id, row })
            .collect())
    }

    async fn insert_orders(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        orders: &[IncomingOrder<'_>],
    ) -> Result<Vec<Inserted>, DbError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
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
        // Only new orders come back, by uid; uids are unique within a batch.
        let index_of: HashMap<&str, usize> = uids
            .iter()
            .enumerate()
            .map(|(index, uid)| (*uid, index))
            .collect();
        let mut inserted = Vec::with_capacity(rows.len());
        for row in &rows {
            let uid: &str = row.try_get(1)?;
            if let Some(&index) = index_of.get(uid) {
                inserted.push(Inserted {
                    id: row.try_get(0)?,
                    row: index,
                });
            }
        }
        Ok(inserted)
    }

    /// Records a rejected record whose bytes PostgreSQL refused to store as they were: `raw`
    /// holds their hex digits (ASCII, which any `bytea` takes) and `raw_encoding` says `hex`,
    /// so that the record is still kept in PostgreSQL, never only in a log line.
    pub async fn write_reject_as_hex(
        &self,
        reject: &RejectedRecord<'_>,
        refusal: &str,
        guard: &LeaseGuard<'_>,
    ) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        check_leases(&transaction, &self.topic, guard).await?;
        let statement = transaction.prepare_cached(INSERT_REJECT_AS_HEX).await?;
        let hex = hex_digits(reject.raw);
        let reason = clean_reason(&format!(
            "{}; PostgreSQL refused the record's bytes ({refusal}), so raw holds them in hex",
            reject.reason
        ));
        transaction
            .execute(
                &statement,
                &[
                    &self.topic,
                    &reject.partition,
                    &reject.offset,
                    &hex,
                    &reason,
                    &reject.key,
                    &reject.headers.and_then(encode_headers),
                    &reject.kind,
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn insert_rejects(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        rejects: &[RejectedRecord<'_>],
    ) -> Result<(), DbError> {
        if rejects.is_empty() {
            return Ok(());
        }
        let statement = transaction.prepare_cached(INSERT_REJECTS).await?;
        let partitions: Vec<i32> = rejects.iter().map(|row| row.partition).collect();
        let offsets: Vec<i64> = rejects.iter().map(|row| row.offset).collect();
        let raws: Vec<&[u8]> = rejects.iter().map(|row| row.raw).collect();
        let reasons: Vec<String> = rejects
            .iter()
            .map(|row| clean_reason(&row.reason))
            .collect();
        let keys: Vec<Option<&[u8]>> = rejects.iter().map(|row| row.key).collect();
        let headers: Vec<Option<Vec<u8>>> = rejects
            .iter()
            .map(|row| row.headers.and_then(encode_headers))
            .collect();
        let kinds: Vec<&str> = rejects.iter().map(|row| row.kind).collect();
        transaction
            .execute(
                &statement,
                &[
                    &self.topic,
                    &partitions,
                    &offsets,
                    &raws,
                    &reasons,
                    &keys,
                    &headers,
                    &kinds,
                ],
            )
            .await?;
        Ok(())
    }
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
