//! The consumer group `KAFKA_GROUP_ID`, kept for Kafka's own tools: orderstore's offsets live
//! in PostgreSQL, with the orders, and that is what makes it exactly-once; the group is a
//! mirror of them, never read back except to start a partition that has no stored offset
//! (`KAFKA_START_OFFSET=group`), so that orderstore can take over from a consumer that
//! committed to a group.
//!
//! The commits are standalone, as Materialize's, RisingWave's and Flink's are: OffsetCommit
//! with generation -1 and no member id, which Kafka accepts for a group without members,
//! without joining it. `wire.rs` is the protocol's plain encoding and the versions spoken,
//! `messages.rs` the few requests this takes and their answers, `connection.rs` opens
//! a connection secured like the readers', `client.rs` finds the group's coordinator and
//! sends the requests, and `mirror.rs` is the task that commits.

mod client;
mod connection;
mod messages;
mod mirror;
pub mod wire;

pub use client::{CommitAnswers, GroupClient, GroupError};
pub use connection::{BrokerConnection, ConnectionError};
pub use mirror::{run_group_mirror, MirrorContext};
