//! Kafka: rskafka clients, the readers, and the record they hand to the batch writers.
//!
//! rskafka has no consumer groups and no offset tracking. Each partition resumes from the
//! offset stored in PostgreSQL (or `KAFKA_START_OFFSET` when none is; `group` asks the
//! consumer group through `consumer_group::GroupClient`). `client.rs` connects
//! and creates the topic, `fetch_plan.rs` sizes each fetch, `reader.rs` runs the fetch loops, `start.rs` finds where a partition without a stored
//! offset starts,
//! and `consumer.rs` starts the reader tasks. What else talks to Kafka (the fake-data writer,
//! the dead-letter publisher) is started with them by `app/kafka_side.rs`.

mod client;
mod consumer;
mod fetch_plan;
mod reader;
pub mod security;
mod start;

pub use client::{connect, ensure_topic};
pub use consumer::{start_readers, Readers};
pub use fetch_plan::{FetchPlan, WARM_PERIOD};
pub use reader::{assign_partitions, run_reader, PartitionCommand, ReaderContext};

/// One Kafka record on its way to a batch writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The epoch of the lease it was read under; its batch is written only while this
    /// instance still holds the partition at that epoch.
    pub epoch: i64,
    /// Its value; `None` for a record without one (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Its key, kept for the dead-letter topic should it be rejected.
    pub key: Option<Vec<u8>>,
    /// Its headers, kept for the dead-letter topic should it be rejected.
    pub headers: std::collections::BTreeMap<String, Vec<u8>>,
}
