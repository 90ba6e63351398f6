//! Which Kafka offsets are durable, per partition, so the offset stored in PostgreSQL only ever
//! moves past records whose orders (or rejects) are committed.
//!
//! A reader registers a fetched record's offset before it hands the record to the channel; a
//! handler marks it done after its batch is committed. Handlers finish in any order, so the
//! committable offset of a partition is the lowest offset still in flight, or, with none in
//! flight, the offset after the last one registered. The committer task writes it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
struct PartitionOffsets {
    /// Registered and not yet durable.
    in_flight: BTreeSet<i64>,
    /// The offset after the last one registered: where reading goes on.
    next: i64,
    /// The offset last written to PostgreSQL, if any.
    written: Option<i64>,
    /// The partition's high watermark as the last fetch saw it.
    high_watermark: i64,
}

impl PartitionOffsets {
    fn committable(&self) -> i64 {
        self.in_flight.first().copied().unwrap_or(self.next)
    }
}

/// Offsets in flight and done, for every partition this process reads.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: Mutex<HashMap<i32, PartitionOffsets>>,
}

/// One partition's position, for logs, tests and lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPosition {
    /// The partition.
    pub partition: i32,
    /// The offset that would be stored now.
    pub committable: i64,
    /// The high watermark seen by the last fetch.
    pub high_watermark: i64,
    /// Records registered and not yet durable.
    pub in_flight: usize,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionOffsets>> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts tracking `partition` at `next`; `stored` is the offset PostgreSQL already holds.
    pub fn start(&self, partition: i32, next: i64, stored: Option<i64>) {
        self.lock().insert(
            partition,
            PartitionOffsets {
                next,
                written: stored,
                high_watermark: next,
                ..PartitionOffsets::default()
            },
        );
    }

    /// Registers fetched records as in flight; call before they enter the channel.
    pub fn register(&self, partition: i32, offsets: impl IntoIterator<Item = i64>) {
        let mut partitions = self.lock();
        let entry = partitions.entry(partition).or_default();
        for offset in offsets {
            entry.in_flight.insert(offset);
            entry.next = entry.next.max(offset + 1);
        }
    }

    /// Notes the high watermark a fetch reported.
    pub fn observe_high_watermark(&self, partition: i32, high_watermark: i64) {
        if let Some(entry) = self.lock().get_mut(&partition) {
            entry.high_watermark = high_watermark;
        }
    }

    /// Marks records durable.
    pub fn done(&self, records: impl IntoIterator<Item = (i32, i64)>) {
        let mut partitions = self.lock();
        for (partition, offset) in records {
            if let Some(entry) = partitions.get_mut(&partition) {
                entry.in_flight.remove(&offset);
            }
        }
    }

    /// The partitions whose committable offset moved since it was last written.
    pub fn to_write(&self) -> Vec<(i32, i64)> {
        let mut changed: Vec<(i32, i64)> = self
            .lock()
            .iter()
            .filter(|(_, entry)| entry.written != Some(entry.committable()))
            .map(|(partition, entry)| (*partition, entry.committable()))
            .collect();
        changed.sort_unstable();
        changed
    }

    /// Notes that these offsets are now stored.
    pub fn written(&self, offsets: &[(i32, i64)]) {
        let mut partitions = self.lock();
        for (partition, offset) in offsets {
            if let Some(entry) = partitions.get_mut(partition) {
                entry.written = Some(*offset);
            }
        }
    }

    /// Every tracked partition's position, by partition.
    pub fn positions(&self) -> Vec<PartitionPosition> {
        let mut positions: Vec<PartitionPosition> = self
            .lock()
            .iter()
            .map(|(partition, entry)| PartitionPosition {
                partition: *partition,
                committable: entry.committable(),
                high_watermark: entry.high_watermark,
                in_flight: entry.in_flight.len(),
            })
            .collect();
        positions.sort_unstable_by_key(|position| position.partition);
        positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_waits_for_the_lowest_record_in_flight() {
        let tracker = OffsetTracker::new();
        tracker.start(0, 10, Some(10));
        assert!(tracker.to_write().is_empty());
        tracker.register(0, 10..20);
        // A later batch finishes first: nothing below it is durable, so nothing moves.
        tracker.done((15..20).map(|offset| (0, offset)));
        assert!(tracker.to_write().is_empty());
        tracker.done((10..13).map(|offset| (0, offset)));
        assert_eq!(tracker.to_write(), vec![(0, 13)]);
        tracker.written(&[(0, 13)]);
        assert!(tracker.to_write().is_empty());
        tracker.done((13..15).map(|offset| (0, offset)));
        assert_eq!(tracker.to_write(), vec![(0, 20)]);
    }

    #[test]
    fn partitions_move_independently_and_gaps_are_skipped() {
        let tracker = OffsetTracker::new();
        tracker.start(0, 0, None);
        tracker.start(1, 5, Some(5));
        assert_eq!(tracker.to_write(), vec![(0, 0)]);
        tracker.register(1, [5, 7, 9]);
        tracker.done([(1, 5), (1, 7), (1, 9)]);
        assert_eq!(tracker.to_write(), vec![(0, 0), (1, 10)]);
        tracker.observe_high_watermark(1, 10);
        let positions = tracker.positions();
        assert_eq!(positions[1].high_watermark, 10);
        assert_eq!(positions[1].in_flight, 0);
    }
}
