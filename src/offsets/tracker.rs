//! Which Kafka offsets are durable, per partition, so that the position stored in PostgreSQL
//! only ever moves past records whose orders (or rejects) are committed.
//!
//! A reader registers a fetched record's offset before it hands the record to the channel; a
//! batch writer marks it durable after its batch is committed. Batch writers finish in any
//! order, so a partition's position is found from the lowest offset still in flight. The
//! committer (`committer.rs`) stores it, woken by [`OffsetTracker::changed`].
//!
//! A position ([`StoredOffset`]) is two offsets. `next_offset` is exact, what Kafka calls the
//! committed offset: the lowest offset still in flight or, with none in flight, the offset
//! after the last record read; every record below it is durable, so a partition halted at a
//! rejected record (`ON_REJECT=halt`) stores exactly that record's offset, and the dead-letter
//! publisher may publish every reject up to it. `fetch_from` is where reading resumes: the
//! offset the fetch that brought the record at `next_offset` started from (with nothing in
//! flight, where the reader's next fetch starts, which is `next_offset` once anything was
//! read). Kafka answers a fetch from inside a record batch with the whole batch, and clients
//! drop what they did not ask for; tansu 0.6 instead skips to the next batch, so a fetch from
//! inside a batch would lose the rest of it. Every fetch starts where a previous one ended, at
//! a batch boundary, so resuming at `fetch_from` is safe on both; the reader drops the records
//! it fetches again below `next_offset`, which are durable already.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// A partition's position as `kafka_offsets` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredOffset {
    /// Every record below it is durable (its order or its reject is committed); the record at
    /// it is not, or is the next to read.
    pub next_offset: i64,
    /// Where reading resumes: the start of the fetch that brought the record at
    /// `next_offset`, a record batch boundary, never above `next_offset`.
    pub fetch_from: i64,
}

impl StoredOffset {
    /// A position with nothing read before `offset` and reading starting there.
    pub fn at(offset: i64) -> Self {
        Self {
            next_offset: offset,
            fetch_from: offset,
        }
    }
}

/// A position to store for one partition, under the lease it was read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetToStore {
    /// The partition.
    pub partition: i32,
    /// Its position.
    pub offset: StoredOffset,
    /// The epoch of this instance's lease on the partition, which the write is joined with.
    pub epoch: i64,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    /// Registered and not yet durable: offset, and the offset its fetch started from.
    in_flight: BTreeMap<i64, i64>,
    /// The offset after the last record registered (at start, the stored `next_offset`):
    /// every record below it that is not in flight is durable.
    read_up_to: i64,
    /// Where the reader's next fetch starts: the offset after the last record the last fetch
    /// returned, registered or not (at start, the stored `fetch_from`).
    fetch_next: i64,
    /// The position last written to PostgreSQL, if any.
    written: Option<StoredOffset>,
    /// The partition's high watermark as the last fetch saw it.
    high_watermark: i64,
    /// The epoch of this instance's lease on the partition; offsets are stored under it.
    epoch: i64,
    /// When the stored offset last moved (or the partition started).
    progressed_at: Option<tokio::time::Instant>,
}

impl PartitionOffsets {
    fn position(&self) -> StoredOffset {
        match self.in_flight.first_key_value() {
            Some((offset, fetch_start)) => StoredOffset {
                next_offset: *offset,
                fetch_from: *fetch_start,
            },
            None => StoredOffset {
                next_offset: self.read_up_to,
                fetch_from: self.fetch_next.min(self.read_up_to),
            },
        }
    }
}

/// Offsets in flight and done, for every partition this process reads.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: Mutex<HashMap<i32, PartitionOffsets>>,
    /// Signalled whenever a position may have moved, so that the committer writes without
    /// polling.
    moved: tokio::sync::Notify,
}

/// One partition's position, for logs, tests and lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPosition {
    /// The partition.
    pub partition: i32,
    /// The `next_offset` that would be stored now: every record below it is durable.
    pub committable: i64,
    /// The `fetch_from` that would be stored with it.
    pub fetch_from: i64,
    /// The high watermark seen by the last fetch.
    pub high_watermark: i64,
    /// Records registered and not yet durable.
    pub in_flight: usize,
    /// How long the partition has had records to read (its committable offset below its high
    /// watermark) without its stored offset moving; zero when caught up.
    pub stalled: std::time::Duration,
}

/// A partition's offset as stored in PostgreSQL, with its high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPartition {
    /// The partition.
    pub partition: i32,
    /// The stored `next_offset`: every record below it is durable.
    pub next_offset: i64,
    /// The high watermark the last fetch saw.
    pub high_watermark: i64,
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

    /// Starts tracking `partition` at `start`, read under the lease taken at `epoch`;
    /// `stored` is the position PostgreSQL already holds.
    pub fn start_partition(
        &self,
        partition: i32,
        start: StoredOffset,
        stored: Option<StoredOffset>,
        epoch: i64,
    ) {
        self.lock().insert(
            partition,
            PartitionOffsets {
                read_up_to: start.next_offset,
                fetch_next: start.fetch_from,
                written: stored,
                high_watermark: start.next_offset,
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

    /// Whether every record of `partition` read so far is durable and its position stored:
    /// the partition can be handed over without anything read twice.
    pub fn is_settled(&self, partition: i32) -> bool {
        self.lock().get(&partition).is_none_or(|entry| {
            entry.in_flight.is_empty() && entry.written == Some(entry.position())
        })
    }

    /// Registers one fetch, which started at `fetch_start` and returned records up to
    /// `fetch_end` (the offset after its last record): `offsets` are the records it hands
    /// to the channel, in flight from now on; call before they enter the channel. The records
    /// the reader dropped because they are durable already are left out of `offsets` but
    /// counted in `fetch_end`, which is where the next fetch starts.
    pub fn register_fetch(
        &self,
        partition: i32,
        fetch_start: i64,
        fetch_end: i64,
        offsets: impl IntoIterator<Item = i64>,
    ) {
        let mut partitions = self.lock();
        // A partition stopped while its fetch was on the way is not tracked again.
        let Some(entry) = partitions.get_mut(&partition) else {
            return;
        };
        for offset in offsets {
            entry.in_flight.insert(offset, fetch_start);
            entry.read_up_to = entry.read_up_to.max(offset + 1);
        }
        entry.fetch_next = entry.fetch_next.max(fetch_end);
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

    /// Waits until a position may have moved (partitions started, records registered or
    /// done); returns at once if one may have since the last wait.
    pub async fn changed(&self) {
        self.moved.notified().await;
    }

    /// The partitions whose position moved since it was last written, by partition, each
    /// with the epoch of the lease it is stored under.
    pub fn offsets_to_store(&self) -> Vec<OffsetToStore> {
        let mut changed: Vec<OffsetToStore> = self
            .lock()
            .iter()
            .filter(|(_, entry)| entry.written != Some(entry.position()))
            .map(|(partition, entry)| OffsetToStore {
                partition: *partition,
                offset: entry.position(),
                epoch: entry.epoch,
            })
            .collect();
        changed.sort_unstable();
        changed
    }

    /// Notes that these positions are now stored (under the epoch they were taken at: a
    /// partition restarted meanwhile at a new epoch keeps its own).
    pub fn mark_stored(&self, offsets: &[OffsetToStore]) {
        let mut partitions = self.lock();
        for stored in offsets {
            if let Some(entry) = partitions
                .get_mut(&stored.partition)
                .filter(|entry| entry.epoch == stored.epoch)
            {
                if entry.written.map(|written| written.next_offset)
                    != Some(stored.offset.next_offset)
                {
                    entry.progressed_at = Some(tokio::time::Instant::now());
                }
                entry.written = Some(stored.offset);
            }
        }
    }

    /// Every tracked partition whose position is stored in PostgreSQL: its stored
    /// `next_offset` and the high watermark the last fetch saw, by partition. The consumer
    /// group mirror commits these, so the group never shows progress that is not durable.
    pub fn stored_offsets(&self) -> Vec<StoredPartition> {
        let mut stored: Vec<StoredPartition> = self
            .lock()
            .iter()
            .filter_map(|(partition, entry)| {
                entry.written.map(|written| StoredPartition {
                    partition: *partition,
                    next_offset: written.next_offset,
                    high_watermark: entry.high_watermark,
                })
            })
            .collect();
        stored.sort_unstable_by_key(|stored| stored.partition);
        stored
    }

    /// Every tracked partition's position, by partition.
    pub fn positions(&self) -> Vec<PartitionPosition> {
        let mut positions: Vec<PartitionPosition> = self
            .lock()
            .iter()
            .map(|(partition, entry)| {
                let position = entry.position();
                PartitionPosition {
                    partition: *partition,
                    committable: position.next_offset,
                    fetch_from: position.fetch_from,
                    high_watermark: entry.high_watermark,
                    in_flight: entry.in_flight.len(),
                    stalled: match entry.progressed_at {
                        Some(at) if position.next_offset < entry.high_watermark => at.elapsed(),
                        _ => std::time::Duration::ZERO,
                    },
                }
            })
            .collect();
        positions.sort_unstable_by_key(|position| position.partition);
        positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_store(partition: i32, next_offset: i64, fetch_from: i64) -> OffsetToStore {
        OffsetToStore {
            partition,
            offset: StoredOffset {
                next_offset,
                fetch_from,
            },
            epoch: 1,
        }
    }

    #[test]
    fn the_offset_waits_for_the_lowest_record_in_flight() {
        let tracker = OffsetTracker::new();
        let start = StoredOffset::at(10);
        tracker.start_partition(0, start, Some(start), 1);
        assert!(tracker.offsets_to_store().is_empty());
        // Two fetches: 10..20 and 20..30.
        tracker.register_fetch(0, 10, 20, 10..20);
        tracker.register_fetch(0, 20, 30, 20..30);
        // A later batch finishes first: nothing below it is durable, so nothing moves.
        tracker.mark_durable((15..30).map(|offset| (0, offset)));
        assert!(tracker.offsets_to_store().is_empty());
        // Part of the first fetch is durable: the offset moves to the first record in
        // flight, and reading would resume at its fetch's start.
        tracker.mark_durable((10..13).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 13, 10)]);
        tracker.mark_durable((13..15).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 30, 30)]);
        tracker.mark_stored(&[to_store(0, 30, 30)]);
        assert!(tracker.offsets_to_store().is_empty());
        assert!(tracker.is_settled(0));
    }

    #[test]
    fn only_stored_positions_are_offered_to_the_group() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, StoredOffset::at(0), None, 1);
        tracker.start_partition(1, StoredOffset::at(5), Some(StoredOffset::at(5)), 1);
        tracker.register_fetch(0, 0, 10, 0..10);
        tracker.observe_high_watermark(0, 10);
        tracker.mark_durable((0..10).map(|offset| (0, offset)));
        // Durable but not yet stored: partition 0 is not offered; partition 1 is, at what
        // PostgreSQL held when it started.
        let offered = tracker.stored_offsets();
        assert_eq!(offered.len(), 1);
        assert_eq!((offered[0].partition, offered[0].next_offset), (1, 5));
        tracker.mark_stored(&[to_store(0, 10, 10)]);
        let offered = tracker.stored_offsets();
        assert_eq!(
            offered[0],
            StoredPartition {
                partition: 0,
                next_offset: 10,
                high_watermark: 10
            }
        );
    }

    #[test]
    fn the_offset_is_the_lowest_record_in_flight_and_reading_resumes_at_its_fetch() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, StoredOffset::at(0), None, 1);
        tracker.register_fetch(0, 0, 100, 0..100);
        tracker.register_fetch(0, 100, 200, 100..200);
        tracker.mark_durable((0..150).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 150, 100)]);
    }

    #[test]
    fn a_partition_halted_at_a_record_stores_exactly_that_record() {
        // Fifty records, then a rejected one at 50 that ON_REJECT=halt never marks durable;
        // the fetch that brought it started at 47.
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, StoredOffset::at(0), None, 1);
        tracker.register_fetch(0, 0, 47, 0..47);
        tracker.register_fetch(0, 47, 53, 47..53);
        tracker.mark_durable((0..50).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 50, 47)]);
        let position = tracker.positions()[0];
        assert_eq!((position.committable, position.fetch_from), (50, 47));
        assert_eq!(position.in_flight, 3);
    }

    #[test]
    fn a_restart_resumes_at_the_fetch_start_and_keeps_the_exact_offset() {
        let tracker = OffsetTracker::new();
        let stored = StoredOffset {
            next_offset: 50,
            fetch_from: 47,
        };
        tracker.start_partition(0, stored, Some(stored), 2);
        assert!(tracker.offsets_to_store().is_empty(), "nothing moved yet");
        assert!(tracker.is_settled(0));
        // The fetch from 47 brings 47..53; the reader drops 47..50, durable already.
        tracker.register_fetch(0, 47, 53, 50..53);
        assert!(tracker.offsets_to_store().is_empty());
        tracker.mark_durable((50..53).map(|offset| (0, offset)));
        assert_eq!(
            tracker.offsets_to_store(),
            vec![OffsetToStore {
                epoch: 2,
                ..to_store(0, 53, 53)
            }]
        );
    }

    #[test]
    fn a_fetch_of_records_durable_already_moves_only_where_reading_resumes() {
        let tracker = OffsetTracker::new();
        let stored = StoredOffset {
            next_offset: 50,
            fetch_from: 40,
        };
        tracker.start_partition(0, stored, Some(stored), 1);
        // A fetch from 40 returned 40..45 only, all below 50: nothing enters the channel.
        tracker.register_fetch(0, 40, 45, []);
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 50, 45)]);
        tracker.register_fetch(0, 45, 60, 50..60);
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 50, 45)]);
        tracker.mark_durable((50..60).map(|offset| (0, offset)));
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 60, 60)]);
    }

    #[test]
    fn partitions_move_independently_and_gaps_are_skipped() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, StoredOffset::at(0), None, 1);
        tracker.start_partition(1, StoredOffset::at(5), Some(StoredOffset::at(5)), 1);
        assert_eq!(tracker.offsets_to_store(), vec![to_store(0, 0, 0)]);
        tracker.register_fetch(1, 5, 10, [5, 7, 9]);
        tracker.mark_durable([(1, 5), (1, 7), (1, 9)]);
        assert_eq!(
            tracker.offsets_to_store(),
            vec![to_store(0, 0, 0), to_store(1, 10, 10)]
        );
        tracker.observe_high_watermark(1, 10);
        let positions = tracker.positions();
        assert_eq!(positions[1].high_watermark, 10);
        assert_eq!(positions[1].in_flight, 0);
    }

    #[test]
    fn a_position_stored_under_an_older_epoch_does_not_count() {
        let tracker = OffsetTracker::new();
        tracker.start_partition(0, StoredOffset::at(0), None, 2);
        tracker.register_fetch(0, 0, 10, 0..10);
        tracker.mark_durable((0..10).map(|offset| (0, offset)));
        tracker.mark_stored(&[to_store(0, 10, 10)]);
        assert_eq!(
            tracker.offsets_to_store(),
            vec![OffsetToStore {
                epoch: 2,
                ..to_store(0, 10, 10)
            }]
        );
    }

    #[test]
    fn the_committer_is_woken_when_offsets_may_have_moved() {
        use futures_util::FutureExt;
        let tracker = OffsetTracker::new();
        let woken = |tracker: &OffsetTracker| tracker.changed().now_or_never().is_some();
        assert!(!woken(&tracker), "nothing happened yet");
        tracker.start_partition(0, StoredOffset::at(0), None, 1);
        assert!(woken(&tracker), "a partition started");
        assert!(!woken(&tracker), "one wake-up per change");
        tracker.register_fetch(0, 0, 10, 0..10);
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
        tracker.start_partition(0, StoredOffset::at(0), None, 1);
        tracker.register_fetch(0, 0, 10, 0..10);
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
