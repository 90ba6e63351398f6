//! Counters of what the pipeline did, shared by its tasks and read by the progress log and
//! tests. Each is a relaxed atomic: they count events, they order nothing.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the pipeline has done since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records taken from the channel by handlers.
    pub consumed: AtomicU64,
    /// Orders newly stored in PostgreSQL.
    pub stored: AtomicU64,
    /// Orders whose `order_uid` was already stored.
    pub duplicates: AtomicU64,
    /// Records rejected by the contract.
    pub rejected: AtomicU64,
    /// Batch writes to PostgreSQL that failed and were retried.
    pub write_retries: AtomicU64,
    /// Orders evicted from memory by the count limit.
    pub evicted_by_count: AtomicU64,
    /// Orders evicted from memory by age.
    pub evicted_by_age: AtomicU64,
}

impl Stats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
