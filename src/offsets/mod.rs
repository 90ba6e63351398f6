//! Offsets: which records are durable ([`OffsetTracker`], fed by the readers and the batch
//! writers) and the task that stores the committable offsets in PostgreSQL
//! ([`run_committer`]).

mod committer;
mod tracker;

pub use committer::run_committer;
pub use tracker::{OffsetTracker, PartitionPosition};
