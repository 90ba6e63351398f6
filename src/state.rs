//! The live state of the running service, apart from its telemetry: whether Kafka answers,
//! which partitions this instance owns, whether memory is restored, and which partitions are
//! halted. Each part has one writer (the readers and the Kafka connection, the lease keeper,
//! the restorer, the batch writers' halt policy) and several readers (readiness, the readers
//! before each fetch, the dead-letter publisher, the progress line). [`crate::events::Events`]
//! only counts, records metrics and logs; nothing decides anything from it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// What the service is doing now, shared by its components.
#[derive(Debug, Default)]
pub struct ServiceState {
    kafka_reachable: AtomicBool,
    /// Why Kafka did not answer, while it does not.
    kafka_failure: Mutex<Option<String>>,
    /// The partitions whose leases this instance holds, as of the last lease round.
    owned: Mutex<Vec<i32>>,
    /// Whether memory holds what this instance took at start-up.
    restored: AtomicBool,
    /// Whether any partition is halted, so that readers look no further when none is (a load
    /// on every fetch instead of a lock).
    any_halted: AtomicBool,
    /// The halted partitions: the offset of the reject each stopped at, and its reason.
    halted: Mutex<BTreeMap<i32, Halt>>,
}

/// Where and why `ON_REJECT=halt` stopped a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// The rejected record's offset: the partition's stored offset stays exactly here.
    pub offset: i64,
    /// Why the record was rejected.
    pub reason: String,
}

/// What readiness needs of the state, read once: `/health/ready` and `/status.json` judge by
/// the same reading, with PostgreSQL's answer, which is theirs to get.
#[derive(Debug, Clone)]
pub struct StateReadiness {
    /// Why Kafka is not reachable (`not answered yet` before its first answer), or `None`.
    pub kafka_error: Option<String>,
    /// Whether memory holds the orders of the partitions taken at start-up.
    pub restored: bool,
    /// The partitions this instance holds leases on.
    pub owned: Vec<i32>,
    /// The owned partitions that are halted, with where and why.
    pub halted: Vec<(i32, Halt)>,
}

impl StateReadiness {
    /// Ready: PostgreSQL answered (`postgres_error` is `None`), Kafka answers, memory is
    /// restored and no owned partition is halted.
    pub fn is_ready(&self, postgres_error: Option<&str>) -> bool {
        postgres_error.is_none()
            && self.kafka_error.is_none()
            && self.restored
            && self.halted.is_empty()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ServiceState {
    /// The broker answered a request. Called on every fetch answer, so it stores only when
    /// the flag changes.
    pub fn kafka_answered(&self) {
        if !self.kafka_reachable.load(Ordering::Relaxed) {
            self.kafka_reachable.store(true, Ordering::Relaxed);
        }
    }

    /// A request to the broker failed, for `reason` (shown by readiness).
    pub fn kafka_failed(&self, reason: String) {
        *locked(&self.kafka_failure) = Some(reason);
        self.kafka_reachable.store(false, Ordering::Relaxed);
    }

    /// Whether the last Kafka request of any reader was answered (one flag for all of them:
    /// readiness asks whether the broker answers, not which partition was read last).
    pub fn is_kafka_reachable(&self) -> bool {
        self.kafka_reachable.load(Ordering::Relaxed)
    }

    /// Why Kafka is not reachable, while it is not.
    pub fn kafka_failure(&self) -> Option<String> {
        if self.is_kafka_reachable() {
            return None;
        }
        locked(&self.kafka_failure).clone()
    }

    /// The lease keeper's word after a round: the partitions this instance holds.
    pub fn set_owned_partitions(&self, partitions: Vec<i32>) {
        *locked(&self.owned) = partitions;
    }

    /// The partitions this instance holds leases on, as of the last lease round.
    pub fn owned_partitions(&self) -> Vec<i32> {
        locked(&self.owned).clone()
    }

    /// The restorer's word: memory holds the orders of the partitions taken at start-up.
    pub fn mark_restored(&self) {
        self.restored.store(true, Ordering::Relaxed);
    }

    /// Whether memory holds the orders of the partitions this instance took at start-up
    /// (partitions taken later are loaded while the instance serves).
    pub fn is_restored(&self) -> bool {
        self.restored.load(Ordering::Relaxed)
    }

    /// Halts `partition` at the reject at `offset`; `false` if it was halted already (the
    /// first halt stays).
    pub fn halt(&self, partition: i32, offset: i64, reason: &str) -> bool {
        let mut halted = locked(&self.halted);
        if halted.contains_key(&partition) {
            return false;
        }
        halted.insert(
            partition,
            Halt {
                offset,
                reason: reason.to_string(),
            },
        );
        self.any_halted.store(true, Ordering::Relaxed);
        true
    }

    /// What readiness needs, read once (see [`StateReadiness`]).
    pub fn readiness(&self) -> StateReadiness {
        let kafka_error = (!self.is_kafka_reachable()).then(|| {
            self.kafka_failure()
                .unwrap_or_else(|| "not answered yet".to_string())
        });
        let owned = self.owned_partitions();
        let halted = self
            .halted_partitions()
            .into_iter()
            .filter(|(partition, _)| owned.contains(partition))
            .collect();
        StateReadiness {
            kafka_error,
            restored: self.is_restored(),
            owned,
            halted,
        }
    }

    /// The offset `partition` is halted at (`ON_REJECT=halt`), if it is.
    pub fn halted_at(&self, partition: i32) -> Option<i64> {
        if !self.any_halted.load(Ordering::Relaxed) {
            return None;
        }
        locked(&self.halted).get(&partition).map(|halt| halt.offset)
    }

    /// Every halted partition, with the offset and the reason of its reject.
    pub fn halted_partitions(&self) -> Vec<(i32, Halt)> {
        locked(&self.halted)
            .iter()
            .map(|(partition, halt)| (*partition, halt.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_health_names_the_last_failure_until_the_broker_answers() {
        let state = ServiceState::default();
        assert!(!state.is_kafka_reachable());
        assert_eq!(state.kafka_failure(), None);
        state.kafka_failed("connection refused".into());
        assert_eq!(state.kafka_failure().as_deref(), Some("connection refused"));
        state.kafka_answered();
        assert!(state.is_kafka_reachable());
        assert_eq!(state.kafka_failure(), None);
    }

    #[test]
    fn the_first_halt_of_a_partition_stays() {
        let state = ServiceState::default();
        assert_eq!(state.halted_at(0), None);
        assert!(state.halt(0, 6, "a: broken"));
        assert!(!state.halt(0, 9, "b: broken"));
        assert_eq!(state.halted_at(0), Some(6));
        assert_eq!(state.halted_at(1), None);
        assert_eq!(state.halted_partitions()[0].1.reason, "a: broken");
    }
}
