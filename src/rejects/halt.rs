//! `ON_REJECT`: what a rejected record does to its partition. `skip` (the default) records it
//! and goes on. `halt` records the first rejected record of a partition and stops the
//! partition before it: the record and everything after it in the partition are left in
//! flight, so the partition's stored `next_offset` is exactly that record's offset (every
//! record before it durable, `offsets/tracker.rs`); the reader stops fetching the partition;
//! other partitions go on; `/health/ready` answers 503 naming the partition, the offset and
//! the reason. A restart reads the record again and halts again, unless an operator let it
//! pass (`orderstore rejects skip --partition P --offset O`), which a start reads once.
//!
//! The batch writers decide ([`HaltPolicy::decide`]); which partitions are halted is kept in
//! [`crate::state::ServiceState`], where readers and readiness look.

use std::collections::{HashMap, HashSet};

use crate::events::{Events, PartitionHalted};
use crate::kafka::KafkaRecord;
use crate::state::ServiceState;

/// `ON_REJECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnReject {
    /// Record the reject and go on.
    #[default]
    Skip,
    /// Stop the partition at its first reject.
    Halt,
}

/// The policy a batch writer applies to rejected records.
#[derive(Debug, Clone, Default)]
pub struct HaltPolicy {
    /// `ON_REJECT`.
    pub on_reject: OnReject,
    /// The rejects an operator let pass, as (partition, offset), read at start-up.
    pub approved: HashSet<(i32, i64)>,
}

/// What a batch writer does with the records of a batch, by (partition, offset).
#[derive(Debug, Default)]
pub struct Decisions {
    /// The records of halted partitions at or past their halt, which are neither written nor
    /// marked durable.
    held: HashSet<(i32, i64)>,
    /// The records that halt their partition: written as rejects, not marked durable.
    halting: HashSet<(i32, i64)>,
}

impl Decisions {
    /// Whether every record goes its usual way (always so under `skip`).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.halting.is_empty()
    }

    /// Whether the record at `partition`/`offset` is left out of the batch altogether.
    pub fn is_held(&self, partition: i32, offset: i64) -> bool {
        self.held.contains(&(partition, offset))
    }

    /// Whether the record may be marked durable once the batch is written.
    pub fn may_pass(&self, partition: i32, offset: i64) -> bool {
        !self.held.contains(&(partition, offset)) && !self.halting.contains(&(partition, offset))
    }
}

impl HaltPolicy {
    /// Whether rejected records can halt a partition (the batch writers then note them for
    /// [`HaltPolicy::decide`]).
    pub fn halts(&self) -> bool {
        self.on_reject == OnReject::Halt
    }

    /// Decides, for a batch whose records in `rejected` (by partition and offset, with their
    /// reasons) broke the contract, which records halt their partition and which are held
    /// behind a halt. Under `skip`, nothing is held. A partition's first unapproved reject
    /// halts it (an event: logged, counted, shown by readiness); the records after it are held
    /// from then on, and the halting record, met again in a batch written again after a lost
    /// lease fenced it, halts again without another event.
    pub fn decide(
        &self,
        records: &[KafkaRecord],
        rejected: &HashMap<(i32, i64), String>,
        state: &ServiceState,
        events: &Events,
    ) -> Decisions {
        let mut decisions = Decisions::default();
        if !self.halts() {
            return decisions;
        }
        for record in records {
            let key = (record.partition, record.offset);
            if let Some(halted_at) = state.halted_at(record.partition) {
                // The halting record itself comes again only in a batch written again after
                // a lost lease fenced it (nothing of it was written): it is written again as
                // the reject it is, and halts again without a second event.
                match record.offset.cmp(&halted_at) {
                    std::cmp::Ordering::Greater => {
                        decisions.held.insert(key);
                    }
                    std::cmp::Ordering::Equal => {
                        decisions.halting.insert(key);
                    }
                    std::cmp::Ordering::Less => {}
                }
                continue;
            }
            let Some(reason) = rejected.get(&key) else {
                continue;
            };
            if self.approved.contains(&key) {
                continue;
            }
            decisions.halting.insert(key);
            if state.halt(record.partition, record.offset, reason) {
                events.emit(PartitionHalted {
                    partition: record.partition,
                    offset: record.offset,
                    reason,
                });
            }
        }
        decisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> KafkaRecord {
        KafkaRecord {
            partition,
            offset,
            epoch: 1,
            value: None,
            key: None,
            headers: Default::default(),
        }
    }

    #[test]
    fn a_partition_halts_at_its_first_unapproved_reject_and_holds_what_follows() {
        let records: Vec<KafkaRecord> = [(0, 5), (1, 5), (0, 6), (0, 7), (1, 6), (1, 7)]
            .into_iter()
            .map(|(partition, offset)| record(partition, offset))
            .collect();
        let rejected = HashMap::from([
            ((0, 6), "a: broken".to_string()),
            ((0, 7), "b: broken".to_string()),
            ((1, 6), "c: broken".to_string()),
        ]);
        let events = Events::default();
        let state = ServiceState::default();
        let skip = HaltPolicy::default();
        assert!(skip.decide(&records, &rejected, &state, &events).is_empty());
        assert_eq!(state.halted_at(0), None);

        let halt = HaltPolicy {
            on_reject: OnReject::Halt,
            approved: HashSet::from([(1, 6)]),
        };
        let decisions = halt.decide(&records, &rejected, &state, &events);
        assert_eq!(state.halted_at(0), Some(6));
        assert_eq!(state.halted_at(1), None, "an approved reject passes");
        assert!(decisions.may_pass(0, 5) && !decisions.is_held(0, 5));
        assert!(
            !decisions.may_pass(0, 6) && !decisions.is_held(0, 6),
            "written, not acked"
        );
        assert!(decisions.is_held(0, 7));
        assert!(decisions.may_pass(1, 6) && decisions.may_pass(1, 7));
        // The next batch of a halted partition is held whole.
        let later = halt.decide(&[record(0, 8)], &HashMap::new(), &state, &events);
        assert!(later.is_held(0, 8));
        assert_eq!(state.halted_partitions()[0].1.reason, "a: broken");
        // A batch fenced by a lost lease and written again meets the halting record again: it
        // is written (not held), not acknowledged, and halts once.
        let again = halt.decide(&records, &rejected, &state, &events);
        assert!(!again.is_held(0, 6) && !again.may_pass(0, 6));
        assert!(again.may_pass(0, 5) && again.is_held(0, 7));
        assert_eq!(state.halted_partitions().len(), 1);
        assert_eq!(state.halted_at(0), Some(6));
    }
}
