//! The events of the fleet: lease changes, the leases held, transactions ended for a
//! takeover, and memory following the leases (loads, evictions, restored).

use metrics::{counter, gauge};

use super::prometheus::names;
use super::{Events, PipelineEvent};

/// The orders of partitions this instance took were read into memory.
#[derive(Debug)]
pub struct PartitionsLoaded<'a> {
    /// The partitions, or `None` for every stored order (this instance owns them all).
    pub partitions: Option<&'a [i32]>,
    /// Orders loaded.
    pub restored: usize,
    /// How long it took.
    pub seconds: f64,
}

impl PipelineEvent for PartitionsLoaded<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::ORDERS_LOADED).increment(self.restored as u64);
        let partitions = match self.partitions {
            Some(partitions) => format!("{partitions:?}"),
            None => "all".to_string(),
        };
        tracing::info!(
            restored = self.restored,
            seconds = self.seconds,
            orders_per_second = (self.restored as f64 / self.seconds.max(1e-9)) as u64,
            partitions,
            "memory restored from PostgreSQL"
        );
    }
}

/// The orders of partitions this instance gave up (released or fenced) left memory.
#[derive(Debug)]
pub struct PartitionsUnloaded<'a> {
    /// The partitions.
    pub partitions: &'a [i32],
    /// Orders evicted.
    pub evicted: usize,
}

impl PipelineEvent for PartitionsUnloaded<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::EVICTIONS, "cause" => "partition_given_up").increment(self.evicted as u64);
        tracing::info!(
            partitions = ?self.partitions,
            evicted = self.evicted,
            "orders of partitions given up left memory"
        );
    }
}

/// Why a lease changed hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCause {
    /// Taken while free (at start-up, or released by another instance).
    Taken,
    /// Taken after another instance's lease expired (it crashed, froze or was cut off).
    TakenExpired,
    /// Given up: above the fair share, so a newcomer gets its part.
    Released,
    /// Lost: another instance took it after this one's lease expired.
    Fenced,
}

impl LeaseCause {
    fn as_str(self) -> &'static str {
        match self {
            LeaseCause::Taken => "taken",
            LeaseCause::TakenExpired => "taken_expired",
            LeaseCause::Released => "released",
            LeaseCause::Fenced => "fenced",
        }
    }
}

/// A partition lease was taken, given up or lost.
#[derive(Debug, Clone, Copy)]
pub struct LeaseChanged {
    /// The lease.
    pub lease: crate::store::postgres::leases::Lease,
    /// Why.
    pub cause: LeaseCause,
}

impl PipelineEvent for LeaseChanged {
    fn emit(self, _events: &Events) {
        counter!(names::LEASE_CHANGES, "cause" => self.cause.as_str()).increment(1);
        tracing::info!(
            partition = self.lease.partition,
            epoch = self.lease.epoch,
            cause = self.cause.as_str(),
            "partition lease changed"
        );
    }
}

/// A session of an instance whose leases expired was ended: it was frozen in the middle of a
/// batch transaction, whose locks would hold up the takeover (`leases.rs`
/// `end_stale_transactions`).
#[derive(Debug)]
pub struct StaleSessionEnded<'a> {
    /// The session, its owner and pid.
    pub session: &'a crate::store::postgres::leases::EndedSession,
}

impl PipelineEvent for StaleSessionEnded<'_> {
    fn emit(self, _events: &Events) {
        counter!(names::STALE_SESSIONS_ENDED).increment(1);
        tracing::warn!(
            owner = self.session.owner,
            pid = self.session.pid,
            ended = self.session.ended,
            "ended a PostgreSQL transaction left open by an instance whose leases expired"
        );
    }
}

/// The partitions this instance holds after a lease round.
#[derive(Debug, Clone)]
pub struct LeasesHeld {
    /// The partitions, sorted.
    pub partitions: Vec<i32>,
}

impl PipelineEvent for LeasesHeld {
    fn emit(self, _: &Events) {
        gauge!(names::PARTITIONS_OWNED).set(self.partitions.len() as f64);
    }
}
