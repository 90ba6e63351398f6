//! Offsets: which records are durable ([`OffsetTracker`], fed by the readers and the batch
//! writers) and the task that stores each partition's position ([`StoredOffset`]: the exact
//! offset below which every record is durable, and the fetch start reading resumes at) in
//! PostgreSQL ([`run_committer`]).

mod committer;
mod tracker;

pub use committer::run_committer;
pub use tracker::{OffsetToStore, OffsetTracker, PartitionPosition, StoredOffset, StoredPartition};
