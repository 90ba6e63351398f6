//! Which Kafka offsets are durable, per partition, so the offset stored in PostgreSQL only ever
//! moves past records whose orders (or rejects) are committed.
//!
//! A reader registers a fetched record's offset before it hands the record to the channel; a
//! batch writer marks it durable after its batch is committed. Batch writers finish in any
//! order, so the committable offset of a partition is found from the lowest offset still in
//! flight, or, with none in flight, is the offset after the last one registered. The committer
//! (`committer.rs`) stores it, woken by [`OffsetTracker::changed`].
//!
//! With records in flight, the committable offset is not the lowest record in flight itself but
//! the offset the fetch that brought it started from. Kafka answers a fetch from inside a record
//! batch with the whole batch, and clients skip what they did not ask for; tansu 0.6 instead
//! skips to the next batch, so resuming from inside a batch would lose the rest of it. Every
//! fetch starts where a previous one ended, at a batch boundary, so resuming there is safe on
//! both. The records between that start and the first one in flight are durable already, and
//! reading them again is harmless: an `order_uid` is stored once, a reject once per offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
struct PartitionOffsets {
    /// Registered and not yet durable: offset, and the offset its fetch started from.
    in_flight: BTreeMap<i64, i64>,
    /// The offset after the last one registered: where reading goes on.
    next: i64,
    /// The offset last written to PostgreSQL, if any.
    written: Option<i64>,
    /// The partition's high watermark as the last fetch saw it.
    high_watermark: i64,
    /// The epoch of this instance's lease on the partition; offsets are stored under it.
    epoch: i64,
    /// When the stored offset last moved (or the partition started).
    progressed_at: Option<tokio::time::Instant>,
}

impl PartitionOffsets {
    fn committable(&self) -> i64 {
        self.in_flight
            .first_key_value()
            .map(|(_, fetch_start)| *fetch_start)
            .unwrap_or(self.next)
    }
}

/// Offsets in flight and done, for every partition this process reads.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: Mutex<HashMap<i32, PartitionOffsets>>,
    /// Signalled whenever a committable offset may have moved, so that the committer writes
    /// without polling.
    moved: tokio::sync::Notify,
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
    /// How long the partition has had records to read (its committable offset below its high
    /// watermark) without its stored offset moving; zero when caught up.
    pub stalled: std::time::Duration,
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

    /// Starts tracking `partition` at `next`, read under the lease taken at `epoch`; `stored`
    /// is the offset PostgreSQL already holds.
    pub fn start_partition(&self, partition: i32, next: i64, stored: Option<i64>, epoch: i64) {
        self.lock().insert(
            partition,
            PartitionOffsets {
                next,
                written: stored,
                high_watermark: next,
                epoch,
                progressed_at: Some(tokio::time::Instant::now()),
                ..PartitionOffsets::default()
            },
        );
        self.moved.notify_one();
    }

    /// Stops tracking `partition` (its lease was given up or lost): its records still in
    /// flight are forgotten, and no offset of it is stored any more.
    pub fn stop_partition(&self, partition: i32) {
        self.lock().remove(&partition);
    }

    /// Whether every record of `partition` read so far is durable and its offset stored:
    /// the partition can be handed over without anything read twice.
    pub fn is_settled(&self, partition: i32) -> bool {
        self.lock().get(&partition).is_none_or(|entry| {
            entry.in_flight.is_empty() && entry.written == Some(entry.committable())
        })
    }

    /// Registers the records of one fetch, which started at `fetch_start`, as in flight; call
    /// before they enter the channel.
    pub fn register_fetch(
        &self,
        partition: i32,
        fetch_start: i64,
        offsets: impl IntoIterator<Item = i64>,
    ) {
        let mut partitions = self.lock();
        // A partition stopped while its fetch was on the way is not tracked again.
        let Some(entry) = partitions.get_mut(&partition) else {
            return;
        };
        for offset in offsets {
            entry.in_flight.insert(offset, fetch_start);
            entry.next = entry.next.max(offset + 1);
        }
        drop(partitions);
        self.moved.notify_one();
    }

    /// Notes the high watermark a fetch reported.
    pub fn observe_high_watermark(&self, partition: i32, high_watermark: i64) {
        if let Some(entry) = self.lock().get_mut(&partition) {
            entry.high_watermark = high_watermark;
        }
    }

    /// Marks records durable.
    pub fn mark_durable(&self, records: impl IntoIterator<Item = (i32, i64)>) {
        let mut partitions = self.lock();
        for (partition, offset) in records {
            if let Some(entry) = partitions.get_mut(&partition) {
                entry.in_flight.remove(&offset);
            }
        }
        drop(partitions);
        self.moved.notify_one();
    }

    /// Waits until a committable offset may have moved (partitions started, records
    /// registered or done); returns at once if one may have since the last wait.
    pub async fn changed(&self) {
        self.moved.notified().await;
    }

    /// The partitions whose committable offset moved since it was last written: partition,
    /// offset, and the epoch of the lease it is stored under.
    pub fn offsets_to_store(&self) -> Vec<(i32, i64, i64)> {
        let mut changed: Vec<(i32, i64, i64)> = self
            .lock()
            .iter()
            .filter(|(_, entry)| entry.written != Some(entry.committable()))
            .map(|(partition, entry)| (*partition, entry.committable(), entry.epoch))
            .collect();
        changed.sort_unstable();
        changed
    }

    /// Notes that these offsets are now stored (under the epoch they were taken at: a
    /// partition restarted meanwhile at a new epoch keeps its own).
    pub fn mark_stored(&self, offsets: &[(i32, i64, i64)]) {
        let mut partitions = self.lock();
        for (partition, offset, epoch) in offsets {
            if let Some(entry) = partitions.get_mut(partition).filter(|e| e.epoch == *epoch) {
                if entry.written != Some(*offset) {
                    entry.progressed_at = Some(tokio::time::Instant::now());
                }
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
                stalled: match entry.progressed_at {
                    Some(at) if entry.committable() < entry.high_watermark => at.elapsed(),
                    _ => std::time::Duration::ZERO,
                },
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
        tracker.start_partition(0, 10, Some(10), 1);
        assert!(tracker.offsets_to_store().is_empty());
        // Two fetches: 10..20 and 20..30.
        tracker.register_fetch(0, 10, 10..20);
        tracker.register_fetch(0, 20, 20..30);
        // A later batch finishes first: nothing below it is durable, so nothing moves.
        tracker.mark_durable((15..30).map(|offset| (0, offset)));
        assert!(tracker.offsets_to_store().is_empty());
        // Part of the first fetch is durable: the offset stays at that fetch's start.
        tracker.mark_durable((10..13).map(|offset| (0, offset)));
        assert!(tracker.offsets_to_store().is_empty());
        tracker.mark_durable((13..15).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![(0, 30, 1)]);
        tracker.mark_stored(&[(0, 30, 1)]);
        assert!(tracker.offsets_to_store().is_empty());
    }

    #[test]
    fn the_offset_moves_to_the_fetch_of_the_lowest_record_in_flight() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, 0, None, 1);
        tracker.register_fetch(0, 0, 0..100);
        tracker.register_fetch(0, 100, 100..200);
        tracker.mark_durable((0..150).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![(0, 100, 1)]);
    }

    #[test]
    fn partitions_move_independently_and_gaps_are_skipped() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, 0, None, 1);
        tracker.start_partition(1, 5, Some(5), 1);
        assert_eq!(tracker.offsets_to_store(), vec![(0, 0, 1)]);
        tracker.register_fetch(1, 5, [5, 7, 9]);
        tracker.mark_durable([(1, 5), (1, 7), (1, 9)]);
        assert_eq!(tracker.offsets_to_store(), vec![(0, 0, 1), (1, 10, 1)]);
        tracker.observe_high_watermark(1, 10);
        let positions = tracker.positions();
        assert_eq!(positions[1].high_watermark, 10);
        assert_eq!(positions[1].in_flight, 0);
    }

    #[test]
    fn the_committer_is_woken_when_offsets_may_have_moved() {
        use futures_util::FutureExt;
        let tracker = OffsetTracker::new();
        let woken = |tracker: &OffsetTracker| tracker.changed().now_or_never().is_some();
        assert!(!woken(&tracker), "nothing happened yet");
        tracker.start_partition(0, 0, None, 1);
        assert!(woken(&tracker), "a partition started");
        assert!(!woken(&tracker), "one wake-up per change");
        tracker.register_fetch(0, 0, 0..10);
        assert!(woken(&tracker), "records registered");
        tracker.mark_durable((0..10).map(|offset| (0, offset)));
        tracker.mark_durable((0..10).map(|offset| (0, offset)));
        assert!(woken(&tracker), "records done");
        assert!(
            !woken(&tracker),
            "two changes before a wait make one wake-up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_partition_behind_and_not_moving_counts_as_stalled() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, 0, None, 1);
        tracker.register_fetch(0, 0, 0..10);
        tracker.observe_high_watermark(0, 10);
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!(tracker.positions()[0].stalled.as_secs(), 5);
        tracker.mark_durable((0..10).map(|offset| (0, offset)));
        let offsets = tracker.offsets_to_store();
        tracker.mark_stored(&offsets);
        assert_eq!(tracker.positions()[0].stalled, std::time::Duration::ZERO);
        // Behind again: stalled counts from the last move of the stored offset.
        tracker.observe_high_watermark(0, 20);
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert_eq!(tracker.positions()[0].stalled.as_secs(), 2);
    }
}
