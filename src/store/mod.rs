//! Where orders live: in memory for fast reads ([`held::HeldOrder`], compressed with
//! `MEMORY_COMPRESSION=zstd`), in PostgreSQL for durability, and the [`ServedOrder`] handed
//! between the batch writers, PostgreSQL, memory and HTTP.

pub mod compression;
pub mod held;
pub mod memory;
pub mod postgres;

pub use compression::OrderJson;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// An order as it is handed on: made by the batch writers (new orders) and by PostgreSQL
/// lookups, taken into memory (as a [`held::HeldOrder`]) or served by `http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedOrder {
    /// The id PostgreSQL gave the order when it was first stored.
    pub id: i64,
    /// The order's unique key.
    pub order_uid: Arc<str>,
    /// The Kafka partition it was read from: memory holds the orders of the partitions this
    /// instance owns, and gives a partition's up with its lease.
    pub partition: i32,
    /// `date_created`, in microseconds since the Unix epoch; the sweeper's age.
    pub created_micros: i64,
    /// The order in its served form (see [`crate::order::served_json`]), plain or, in memory
    /// with `MEMORY_COMPRESSION=zstd`, compressed.
    pub json: OrderJson,
}

impl ServedOrder {
    /// Builds the stored form of an order that PostgreSQL gave `id`, read from `partition`.
    pub fn new(
        id: i64,
        partition: i32,
        order_uid: &str,
        date_created: DateTime<Utc>,
        json: Bytes,
    ) -> Self {
        Self {
            id,
            order_uid: order_uid.into(),
            partition,
            created_micros: date_created.timestamp_micros(),
            json: OrderJson::Plain(json),
        }
    }
}

/// An order borrowed from the row PostgreSQL sent: what a restore hands memory, which copies
/// it once, into the order it holds.
#[derive(Debug, Clone, Copy)]
pub struct RowOrder<'a> {
    /// The id PostgreSQL gave the order.
    pub id: i64,
    /// The Kafka partition it was read from.
    pub partition: i32,
    /// The order's unique key.
    pub order_uid: &'a str,
    /// `date_created`, in microseconds since the Unix epoch.
    pub created_micros: i64,
    /// The order in its served form (`body_text`).
    pub json: &'a [u8],
}

impl RowOrder<'_> {
    /// The order as an owned [`ServedOrder`].
    pub fn to_served(&self) -> ServedOrder {
        ServedOrder {
            id: self.id,
            order_uid: self.order_uid.into(),
            partition: self.partition,
            created_micros: self.created_micros,
            json: OrderJson::Plain(Bytes::copy_from_slice(self.json)),
        }
    }
}
