//! The sweeper: every `SWEEP_INTERVAL` it evicts from memory the orders whose `date_created` is
//! older than `MEMORY_MAX_AGE`, then the oldest orders beyond `MEMORY_ORDERS_LIMIT`. Evicted
//! orders stay in PostgreSQL, where HTTP still finds them. It is the only code that evicts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::events::{Events, OrdersEvicted};
use crate::store::memory::{Evicted, MemoryStore};

/// Wall-clock time that advances with `tokio::time`, so age eviction can be tested under paused
/// time: the wall time at creation plus the tokio time elapsed since.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: DateTime<Utc>,
    instant_at_start: Instant,
}

impl Clock {
    /// A clock that reads the current wall time now.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock that reads `wall` now.
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        Self {
            wall_at_start: wall,
            instant_at_start: Instant::now(),
        }
    }

    /// The current wall time.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().duration_since(self.instant_at_start);
        self.wall_at_start + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What the sweeper keeps to.
#[derive(Debug, Clone, Copy)]
pub struct SweepPolicy {
    /// Most orders kept in memory.
    pub orders_limit: usize,
    /// Orders older than this are evicted; `None` keeps them whatever their age.
    pub max_age: Option<Duration>,
}

/// One sweep at the clock's current time.
pub fn sweep_once(memory: &MemoryStore, policy: SweepPolicy, clock: &Clock) -> Evicted {
    let cutoff = policy.max_age.map(|age| {
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        clock
            .now()
            .checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .timestamp_micros()
    });
    memory.evict(policy.orders_limit, cutoff)
}

/// Sweeps every `interval` until shutdown.
pub async fn run_sweeper(
    memory: Arc<MemoryStore>,
    policy: SweepPolicy,
    interval: Duration,
    clock: Clock,
    events: Arc<Events>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let evicted = sweep_once(&memory, policy, &clock);
        events.emit(OrdersEvicted {
            evicted,
            in_memory: memory.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ServedOrder;

    fn order(id: i64, created: DateTime<Utc>) -> ServedOrder {
        ServedOrder::new(id, 0, &format!("uid-{id}"), created, bytes::Bytes::new())
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_evicts_by_age_and_count_on_its_interval() {
        let start = Utc::now();
        let clock = Clock::starting_at(start);
        let memory = Arc::new(MemoryStore::new());
        let events = Arc::new(Events::default());
        let shutdown = CancellationToken::new();
        // Ten orders, one a minute old, one two minutes old, and so on.
        memory.insert_many((1..=10).map(|id| order(id, start - chrono::Duration::minutes(id))));
        let policy = SweepPolicy {
            orders_limit: 8,
            max_age: Some(Duration::from_secs(60 * 60)),
        };
        let sweeper = tokio::spawn(run_sweeper(
            Arc::clone(&memory),
            policy,
            Duration::from_secs(10),
            clock,
            Arc::clone(&events),
            shutdown.clone(),
        ));

        // Nothing happens before the first interval ends.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(memory.len(), 10);

        // The first sweep enforces the count limit: the two oldest go.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(memory.len(), 8);
        assert!(memory.get_by_id(10).is_none() && memory.get_by_id(9).is_none());
        assert_eq!(events.counters().evicted_by_count(), 2);

        // 55 minutes on, orders 5..=8 are over an hour old (60 to 63 minutes); the sweeps
        // in between evict them as they cross the age.
        tokio::time::sleep(Duration::from_secs(55 * 60)).await;
        assert_eq!(memory.len(), 4);
        assert!(memory.get_by_id(5).is_none() && memory.get_by_id(4).is_some());
        assert_eq!(events.counters().evicted_by_age(), 4);

        shutdown.cancel();
        assert!(sweeper.await.is_ok());
    }

    #[test]
    fn no_age_limit_keeps_old_orders() {
        let memory = MemoryStore::new();
        let clock = Clock::new();
        memory.insert_many([order(1, DateTime::<Utc>::MIN_UTC)]);
        let policy = SweepPolicy {
            orders_limit: 1,
            max_age: None,
        };
        assert_eq!(sweep_once(&memory, policy, &clock), Evicted::default());
        assert_eq!(memory.len(), 1);
    }
}
