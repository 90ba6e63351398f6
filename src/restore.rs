//! Memory follows ownership. When the lease keeper takes partitions (at start-up, or from an
//! instance that stopped, died or gave them up), their newest orders within the sweeper's
//! limits (`MEMORY_ORDERS_LIMIT`, `MEMORY_MAX_AGE`) are read from PostgreSQL into memory;
//! when it gives partitions up or loses them, their orders leave memory. The restorer does
//! both, one command at a time in the keeper's order, so a partition taken and given up again
//! is loaded before it is evicted. The readers do not wait for it: a taken partition is read
//! at once, and until its orders are loaded HTTP finds them in PostgreSQL.
//!
//! With the batch writers, the restorer is one of the two fillers of memory; with the
//! sweeper, one of the two that empty it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::retry_described;
use crate::config::{MemoryCompression, Settings};
use crate::events::{Events, PartitionsLoaded, PartitionsUnloaded};
use crate::store::memory::MemoryStore;
use crate::store::postgres::{Database, DbError};

/// What the lease keeper tells the restorer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCommand {
    /// These partitions were taken: load their orders.
    Load(Vec<i32>),
    /// These partitions were given up or lost: evict their orders.
    Evict(Vec<i32>),
    /// The first lease round is over: once what it took is loaded, memory is restored.
    StartupDone,
}

/// Which orders a restore keeps: the sweeper's limits.
#[derive(Debug, Clone, Copy)]
pub struct RestoreLimits {
    /// `MEMORY_RESTORE`: whether taken partitions are loaded at all.
    pub enabled: bool,
    /// `MEMORY_ORDERS_LIMIT`.
    pub orders_limit: usize,
    /// `MEMORY_MAX_AGE`.
    pub max_age: Option<Duration>,
    /// Connections read at once.
    pub parallelism: usize,
    /// `MEMORY_COMPRESSION`: how the store [`sized_memory`] makes keeps the orders.
    pub compression: MemoryCompression,
}

impl RestoreLimits {
    /// The limits `settings` give: `MEMORY_RESTORE`, the sweeper's limits, and as many
    /// connections at once as there are cores (at most the pool's size).
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            enabled: settings.memory.restore,
            orders_limit: settings.memory.orders_limit,
            max_age: settings.memory.max_age,
            parallelism: std::thread::available_parallelism()
                .map_or(2, usize::from)
                .min(settings.database.pool_size),
            compression: settings.memory.compression,
        }
    }

    /// The oldest `date_created` kept, now.
    fn created_after(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.max_age
            .and_then(|age| chrono::Duration::from_std(age).ok())
            .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
    }
}

/// Reads into `memory` the newest orders within `limits` of `partitions` (`None`: every
/// stored order). Returns how many were loaded. A failed attempt may leave some loaded;
/// loading them again changes nothing.
pub async fn restore_partitions(
    limits: RestoreLimits,
    database: &Database,
    memory: &Arc<MemoryStore>,
    partitions: Option<&[i32]>,
) -> Result<usize, DbError> {
    let plan = database
        .plan_restore(limits.orders_limit, limits.created_after(), partitions)
        .await?;
    database
        .restore_into(memory, &plan, limits.parallelism)
        .await
}

/// An empty store sized for every order a restore of all partitions would load, so the
/// maps never grow step by step through a large restore (each step rehashes them all). The
/// size is PostgreSQL's estimate of the table's rows, which costs nothing to read; only a
/// table never analyzed is counted (the count is what a restore's plan costs again).
pub async fn sized_memory(
    limits: RestoreLimits,
    database: &Database,
) -> Result<Arc<MemoryStore>, DbError> {
    let store = |n_orders| {
        let store = MemoryStore::with_capacity(n_orders);
        match limits.compression {
            MemoryCompression::None => store,
            MemoryCompression::Zstd => store.compressed(),
        }
    };
    if !limits.enabled {
        return Ok(Arc::new(store(0)));
    }
    let n_orders = match database.estimate_orders().await? {
        Some(estimate) => estimate.min(limits.orders_limit),
        None => {
            database
                .plan_restore(limits.orders_limit, limits.created_after(), None)
                .await?
                .n_orders
        }
    };
    Ok(Arc::new(store(n_orders)))
}

/// What the restorer needs.
#[derive(Debug)]
pub struct RestorerContext {
    /// Where orders are read from.
    pub database: Database,
    /// Where they go.
    pub memory: Arc<MemoryStore>,
    /// Where loads and evictions are reported.
    pub events: Arc<Events>,
    /// Where memory is marked restored, once the first lease round's partitions are loaded.
    pub state: Arc<crate::state::ServiceState>,
    /// Which orders to keep.
    pub limits: RestoreLimits,
    /// The topic's partitions: taking them all at once loads every stored order, on the
    /// plain scans a single instance has always restored with.
    pub all_partitions: Vec<i32>,
}

/// Carries out the keeper's commands until shutdown or until the keeper is gone.
pub async fn run_restorer(
    context: RestorerContext,
    mut commands: mpsc::UnboundedReceiver<MemoryCommand>,
    shutdown: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            _ = shutdown.cancelled() => return,
            command = commands.recv() => command,
        };
        match command {
            None => return,
            Some(MemoryCommand::Load(partitions)) => {
                if !context.limits.enabled || partitions.is_empty() {
                    continue;
                }
                let mut sorted = partitions.clone();
                sorted.sort_unstable();
                let scope = (sorted != context.all_partitions).then_some(sorted.as_slice());
                let started = Instant::now();
                let detail = format!("partitions {sorted:?}");
                let loading = retry_described("loading orders", Some(&detail), &shutdown, || {
                    restore_partitions(context.limits, &context.database, &context.memory, scope)
                });
                // A stop does not wait for a restore to finish.
                let loaded = tokio::select! {
                    _ = shutdown.cancelled() => None,
                    loaded = loading => loaded,
                };
                let Some(restored) = loaded else { return };
                context.events.emit(PartitionsLoaded {
                    partitions: scope,
                    restored,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            Some(MemoryCommand::Evict(partitions)) => {
                let evicted = context.memory.evict_partitions(&partitions);
                context.events.emit(PartitionsUnloaded {
                    partitions: &partitions,
                    evicted,
                });
            }
            Some(MemoryCommand::StartupDone) => {
                tracing::info!("memory holds the orders of the partitions taken at start-up");
                context.state.mark_restored();
            }
        }
    }
}
