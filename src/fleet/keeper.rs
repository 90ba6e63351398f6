//! The lease keeper: every `LEASE_TTL / 3` it heartbeats, renews this instance's leases, tells
//! the readers to stop the partitions it lost (another instance took them after they
//! expired: this one was frozen or cut off), gives up the surplus above its fair share (after
//! their records are durable and their offsets stored, so the next owner resumes exactly
//! there), and takes free or expired leases up to its share, telling the readers to start
//! them from their stored offsets. Memory follows: the restorer loads the orders of what is
//! taken and evicts those of what is given up or lost. Every change is one INFO line and a
//! metric.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::share::{fair_share, round};
use crate::events::{
    Events, LeaseCause, LeaseChanged, LeaseStepFailed, LeasesHeld, StaleSessionEnded,
};
use crate::kafka::PartitionCommand;
use crate::offsets::OffsetTracker;
use crate::restore::MemoryCommand;
use crate::store::postgres::leases::Lease;
use crate::store::postgres::{Database, DbError};

/// What the keeper needs.
#[derive(Debug)]
pub struct KeeperContext {
    /// PostgreSQL, where the leases are.
    pub database: Database,
    /// This instance.
    pub instance: String,
    /// `LEASE_TTL`.
    pub ttl: Duration,
    /// The topic's partitions.
    pub partitions: Vec<i32>,
    /// Which reader reads each partition.
    pub readers: HashMap<i32, mpsc::UnboundedSender<PartitionCommand>>,
    /// Whether a given-up partition's records are all durable and stored.
    pub tracker: Arc<OffsetTracker>,
    /// The restorer, which makes memory follow the leases.
    pub memory: mpsc::UnboundedSender<MemoryCommand>,
    /// Where lease changes are reported.
    pub events: Arc<Events>,
    /// Where the partitions held after each round are kept.
    pub state: Arc<crate::state::ServiceState>,
}

/// Runs lease rounds until shutdown. The leases stay held at shutdown: the application
/// releases them once the last offsets are stored.
pub async fn run_lease_keeper(context: KeeperContext, shutdown: CancellationToken) {
    let mut held: Vec<Lease> = Vec::new();
    let period = context.ttl / 3;
    // What a previous run of this INSTANCE_ID left is this run's at once.
    match context
        .database
        .reclaim_leases(&context.instance, context.ttl)
        .await
    {
        Ok(reclaimed) => {
            let reclaimed = reclaimed
                .into_iter()
                .map(|lease| (lease, LeaseCause::Taken));
            if let Err(error) = start_reading(&context, &mut held, reclaimed).await {
                LeaseStepFailed {
                    step: "reclaim_offsets",
                    consequence: "the reclaimed partitions are read from the next round on",
                    error: &error,
                }
                .record();
            }
        }
        Err(error) => LeaseStepFailed {
            step: "reclaim",
            consequence: "this instance's old leases are taken at a later round",
            error: &error,
        }
        .record(),
    }
    let mut started = false;
    loop {
        match lease_round(&context, &mut held, &shutdown).await {
            Ok(()) if !started => {
                // What the first round took is loaded before memory counts as restored.
                started = true;
                let _ = context.memory.send(MemoryCommand::StartupDone);
            }
            Ok(()) => {}
            Err(error) => LeaseStepFailed {
                step: "round",
                consequence: "the lease round is tried again at the next one",
                error: &error,
            }
            .record(),
        }
        let partitions: Vec<i32> = held.iter().map(|lease| lease.partition).collect();
        context.state.set_owned_partitions(partitions.clone());
        context.events.emit(LeasesHeld { partitions });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

async fn lease_round(
    context: &KeeperContext,
    held: &mut Vec<Lease>,
    shutdown: &CancellationToken,
) -> Result<(), DbError> {
    let database = &context.database;
    let instance = context.instance.as_str();
    let live = database.heartbeat(instance, context.ttl).await?;
    let rank = live
        .iter()
        .position(|id| id == instance)
        .unwrap_or(live.len());
    let share = fair_share(context.partitions.len(), live.len(), rank);

    let renewed = database.renew_leases(instance, held, context.ttl).await?;
    let lost: Vec<Lease> = held
        .iter()
        .filter(|lease| !renewed.contains(lease))
        .copied()
        .collect();
    for &lease in &lost {
        stop_reading(context, lease.partition).await;
        context.tracker.stop_partition(lease.partition);
        context.events.emit(LeaseChanged {
            lease,
            cause: LeaseCause::Fenced,
        });
    }
    if !lost.is_empty() {
        let partitions = lost.iter().map(|lease| lease.partition).collect();
        let _ = context.memory.send(MemoryCommand::Evict(partitions));
    }
    *held = renewed;

    let owned: Vec<i32> = held.iter().map(|lease| lease.partition).collect();
    let plan = round(&owned, share);
    for partition in plan.release {
        let Some(lease) = held
            .iter()
            .find(|lease| lease.partition == partition)
            .copied()
        else {
            continue;
        };
        stop_reading(context, partition).await;
        // Its records still in the channel are written under the lease, which is still
        // held; once they are durable and the offset stored, the next owner starts there.
        let deadline = tokio::time::Instant::now() + context.ttl / 3;
        while !context.tracker.is_settled(partition) && tokio::time::Instant::now() < deadline {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        database.release_leases(instance, &[lease]).await?;
        context.tracker.stop_partition(partition);
        held.retain(|held| held.partition != partition);
        let _ = context.memory.send(MemoryCommand::Evict(vec![partition]));
        context.events.emit(LeaseChanged {
            lease,
            cause: LeaseCause::Released,
        });
    }

    if plan.acquire > 0 {
        // A frozen owner's open transaction would keep its expired leases from being taken.
        match database.end_stale_transactions(instance, context.ttl).await {
            Ok(ended) => {
                for session in &ended {
                    context.events.emit(StaleSessionEnded { session });
                }
            }
            Err(error) => LeaseStepFailed {
                step: "end_stale_transactions",
                consequence: "expired owners' open transactions may hold up this takeover",
                error: &error,
            }
            .record(),
        }
    }
    let taken = database
        .acquire_leases(instance, plan.acquire, context.ttl)
        .await?;
    if taken.is_empty() {
        return Ok(());
    }
    start_reading(
        context,
        held,
        taken.iter().map(|taken| {
            let cause = if taken.from_expired {
                LeaseCause::TakenExpired
            } else {
                LeaseCause::Taken
            };
            (taken.lease, cause)
        }),
    )
    .await
}

/// Tells the readers to read the partitions of `taken`, each from its stored offset (read
/// after taking the lease, so the previous owner's last offsets are in).
async fn start_reading(
    context: &KeeperContext,
    held: &mut Vec<Lease>,
    taken: impl Iterator<Item = (Lease, LeaseCause)>,
) -> Result<(), DbError> {
    let stored = context.database.load_offsets().await?;
    let mut loading = Vec::new();
    for (lease, cause) in taken {
        if let Some(reader) = context.readers.get(&lease.partition) {
            let _ = reader.send(PartitionCommand::Start {
                partition: lease.partition,
                epoch: lease.epoch,
                stored: stored.get(&lease.partition).copied(),
            });
        }
        held.push(lease);
        loading.push(lease.partition);
        context.events.emit(LeaseChanged { lease, cause });
    }
    held.sort();
    if !loading.is_empty() {
        let _ = context.memory.send(MemoryCommand::Load(loading));
    }
    Ok(())
}

/// Tells the partition's reader to stop it and waits until its loop has ended.
async fn stop_reading(context: &KeeperContext, partition: i32) {
    let Some(reader) = context.readers.get(&partition) else {
        return;
    };
    let (done, stopped) = oneshot::channel();
    if reader
        .send(PartitionCommand::Stop { partition, done })
        .is_ok()
    {
        let _ = stopped.await;
    }
}
