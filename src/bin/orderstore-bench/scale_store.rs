//! The PostgreSQL side of `scale`: growing the store to a size with generated orders, what
//! an order costs on disk (heap, TOAST, each index), taking the measured batch back out, and
//! the fixed reference: COPY of the same orders into a table of only (id, order_uid, body
//! jsonb) with its uid index, which does not move with orderstore's schema.

use std::time::Instant;

use bytes::{BufMut, BytesMut};
use futures_util::SinkExt;

use crate::ceiling::{copy_orders, parse_documents};
use crate::measure::connect;
use crate::Document;

/// Generated orders get offsets from here on, far above anything the benchmark's topic holds,
/// so the measured batch (read from the topic at offsets 0 ..) can be told apart and removed.
pub const FILL_OFFSET: i64 = 1_000_000_000_000;

/// Orders generated and copied at a time while growing the store: a few hundred megabytes.
const GROW_CHUNK: u64 = 250_000;

/// The generated orders' pace: one every 100 ms, so 10 million span 11.6 days, inside the
/// default `MEMORY_MAX_AGE` of 30 days.
const GROWN_ORDER_INTERVAL_MS: i64 = 100;

/// When the generated orders were created, as a store that took them over time holds them:
/// the order at `index` is created [`GROWN_ORDER_INTERVAL_MS`] after the one before, up to a
/// minute earlier at random (as producers deliver out of order), and the last of `largest`
/// just before `started`. The newest orders are then the ones stored last, near the end of
/// the table, as in a store filled by ingest rather than at once.
#[derive(Debug, Clone, Copy)]
pub struct GrownDates {
    first: chrono::DateTime<chrono::Utc>,
}

impl GrownDates {
    /// Dates for a store grown to at most `largest` orders before `started`.
    pub fn new(started: chrono::DateTime<chrono::Utc>, largest: u64) -> Self {
        let span = i64::try_from(largest).unwrap_or(i64::MAX / 2) * GROWN_ORDER_INTERVAL_MS;
        Self {
            first: started - chrono::Duration::milliseconds(span),
        }
    }

    /// The latest time the order at `index` may be created at; `random_order` picks a time
    /// within the minute before it.
    pub fn latest_for(self, index: u64) -> chrono::DateTime<chrono::Utc> {
        let offset = i64::try_from(index).unwrap_or(i64::MAX / 2) * GROWN_ORDER_INTERVAL_MS;
        self.first + chrono::Duration::milliseconds(offset)
    }
}

/// Grows the `orders` table of `database` from `from` to `to` generated orders, spread over
/// `n_partitions` partitions of `topic`, by COPY, created at the `dates` given.
pub async fn grow(
    database: &tokio_postgres::Config,
    topic: &str,
    n_partitions: i32,
    (from, to): (u64, u64),
    dates: GrownDates,
) -> anyhow::Result<()> {
    let mut rng = rand::rng();
    let mut next = from;
    while next < to {
        let end = (next + GROW_CHUNK).min(to);
        let documents: Vec<Document> = (next..end)
            .map(|index| Document {
                partition: (index % n_partitions as u64) as i32,
                offset: FILL_OFFSET + index as i64,
                value: orderstore::fake_data::random_order_json(&mut rng, dates.latest_for(index))
                    .1,
            })
            .collect();
        copy_orders(database, topic, parse_documents(&documents), 2).await?;
        next = end;
    }
    let client = connect(database).await?;
    client.batch_execute("VACUUM ANALYZE orders").await?;
    Ok(())
}

/// Removes the measured batch (every order below [`FILL_OFFSET`]) and the offsets stored for
/// it, so that the store is back at its size and the next run reads the topic from the start.
pub async fn remove_batch(database: &tokio_postgres::Config) -> anyhow::Result<()> {
    let client = connect(database).await?;
    client
        .execute(
            "DELETE FROM orders WHERE kafka_offset < $1",
            &[&FILL_OFFSET],
        )
        .await?;
    client.batch_execute("DELETE FROM kafka_offsets").await?;
    client.batch_execute("VACUUM ANALYZE orders").await?;
    Ok(())
}

/// What the `orders` table takes on disk, in bytes.
#[derive(Debug, Clone, Default)]
pub struct TableBytes {
    /// Orders counted.
    pub orders: i64,
    /// The table's heap.
    pub heap: i64,
    /// Its TOAST table and TOAST index.
    pub toast: i64,
    /// Each index, by name.
    pub indexes: Vec<(String, i64)>,
}

impl TableBytes {
    /// Everything together.
    pub fn total(&self) -> i64 {
        self.heap + self.toast + self.indexes.iter().map(|(_, bytes)| bytes).sum::<i64>()
    }
}

/// Measures the `orders` table of `database`.
pub async fn table_bytes(database: &tokio_postgres::Config) -> anyhow::Result<TableBytes> {
    let client = connect(database).await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM orders), pg_relation_size('orders'), \
             coalesce((SELECT pg_total_relation_size(reltoastrelid) FROM pg_class \
                       WHERE oid = 'orders'::regclass AND reltoastrelid <> 0), 0)",
            &[],
        )
        .await?;
    let indexes = client
        .query(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index \
             WHERE indrelid = 'orders'::regclass ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    Ok(TableBytes {
        orders: row.get(0),
        heap: row.get(1),
        toast: row.get(2),
        indexes,
    })
}

/// COPY of `documents` into the minimal table (emptied first): its seconds.
pub async fn minimal_copy(
    database: &tokio_postgres::Config,
    documents: &[Document],
) -> anyhow::Result<f64> {
    let client = connect(database).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS minimal_orders (id bigint NOT NULL, \
             order_uid text NOT NULL, body jsonb NOT NULL); \
             CREATE UNIQUE INDEX IF NOT EXISTS minimal_orders_uid ON minimal_orders (order_uid); \
             TRUNCATE minimal_orders",
        )
        .await?;
    client.batch_execute("CHECKPOINT").await?;
    let parsed: Vec<(String, &[u8])> = documents
        .iter()
        .map(|document| {
            let uid = serde_json::from_slice::<serde_json::Value>(&document.value)
                .ok()
                .and_then(|order| order["order_uid"].as_str().map(str::to_string))
                .unwrap_or_default();
            (uid, document.value.as_slice())
        })
        .collect();
    let started = Instant::now();
    let sink = client
        .copy_in("COPY minimal_orders (id, order_uid, body) FROM STDIN (FORMAT binary)")
        .await?;
    futures_util::pin_mut!(sink);
    let mut out = BytesMut::with_capacity(1 << 20);
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0);
    out.put_i32(0);
    for (index, (uid, body)) in parsed.iter().enumerate() {
        out.put_i16(3);
        out.put_i32(8);
        out.put_i64(index as i64 + 1);
        out.put_i32(uid.len() as i32);
        out.put_slice(uid.as_bytes());
        // jsonb's binary form: a version byte, then the text.
        out.put_i32(body.len() as i32 + 1);
        out.put_u8(1);
        out.put_slice(body);
        if out.len() >= 1 << 20 {
            sink.feed(out.split().freeze()).await?;
        }
    }
    out.put_i16(-1);
    sink.feed(out.split().freeze()).await?;
    sink.finish().await?;
    Ok(started.elapsed().as_secs_f64())
}
