//! The restore at start-up: memory is filled from PostgreSQL with the newest orders that the
//! sweeper's limits (`MEMORY_ORDERS_LIMIT`, `MEMORY_MAX_AGE`) would keep, before HTTP and
//! ingestion start. With the batch writers, it is one of the two fillers of memory.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::store::memory::MemoryStore;
use crate::store::postgres::{Database, DbError};

/// Reads the orders to keep into a new store. A failed attempt leaves nothing behind: the next
/// one starts a new store.
pub async fn restore_memory(
    settings: &Settings,
    database: &Database,
) -> Result<Arc<MemoryStore>, DbError> {
    let started = Instant::now();
    let created_after = settings
        .memory_max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| chrono::Utc::now().checked_sub_signed(age));
    let plan = database
        .plan_restore(settings.memory_orders_limit, created_after)
        .await?;
    let memory = Arc::new(MemoryStore::with_capacity(plan.n_orders));
    let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
    let restored = database
        .restore_into(&memory, &plan, parallelism.min(settings.db_pool_size))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        restored,
        seconds,
        orders_per_second = (restored as f64 / seconds.max(1e-9)) as u64,
        "memory restored from PostgreSQL"
    );
    Ok(memory)
}
