//! `ON_REJECT`: what a rejected record does to its partition. `skip` (the default) records it
//! and goes on. `halt` records the first rejected record of a partition and stops the
//! partition before it: the record and everything after it in the partition are left in
//! flight, so the stored offset never passes it; the reader stops fetching the partition;
//! other partitions go on; `/health/ready` answers 503 naming the partition, the offset and
//! the reason. A restart reads the record again and halts again, unless an operator let it
//! pass (`orderstore rejects skip --partition P --offset O`), which a start reads once.
//!
//! The batch writers decide ([`HaltPolicy::decide`]); which partitions are halted is kept in
//! [`crate::events::Events`], where readers and readiness look.

use std::collections::{HashMap, HashSet};

use crate::events::{Events, PartitionHalted};
use crate::kafka::KafkaRecord;

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
    /// halts it (an event: logged, counted, shown by readiness).
    pub fn decide(
        &self,
        records: &[KafkaRecord],
        rejected: &HashMap<(i32, i64), String>,
        events: &Events,
    ) -> Decisions {
        let mut decisions = Decisions::default();
        if !self.halts() {
            return decisions;
        }
        for record in records {
            let key = (record.partition, record.offset);
            if let Some(halted_at) = events.halted_at(record.partition) {
                if record.offset >= halted_at {
                    decisions.held.insert(key);
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
            events.emit(PartitionHalted {
                partition: record.partition,
                offset: record.offset,
                reason,
            });
        }
        decisions
    }
}
