//! Where orders live: in memory for fast reads (compressed with `MEMORY_COMPRESSION=zstd`),
//! in PostgreSQL for durability, and the [`ServedOrder`] that both hold and HTTP serves.

pub mod compression;
pub mod memory;
pub mod postgres;

pub use compression::OrderJson;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// An order as memory holds it and HTTP serves it: made by the batch writers (new orders) and
/// by PostgreSQL reads (restore, lookups), served by `http`.
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
