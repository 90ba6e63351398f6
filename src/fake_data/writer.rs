//! The fake-data writer: tasks that produce random orders (see [`super::orders`]) to the
//! topic, for demos and load. It runs inside the service (`WRITER_ENABLED=true`) or as the
//! `orderstore produce` command.
//!
//! Records are keyed by `order_uid` and spread over partitions with Kafka's default partitioner
//! (murmur2 of the key), so a record lands where a Java or Python producer would put it. A rate
//! is kept with a 100 ms tick; with rate 0 each task produces as fast as the broker takes it.
//! A broker outage is waited out with backoff, like everywhere else.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::Client;
use rskafka::record::Record;
use tokio_util::sync::CancellationToken;

use super::orders::{invalid_record, random_order_json};
use crate::backoff::retry_until_ok;
use crate::events::{Events, WriterProduced};
use crate::shutdown::{Component, ShutdownManager};

/// Records one produce request carries at most when producing as fast as possible.
const FAST_BATCH: u64 = 500;
/// How often a rate-limited writer produces.
const TICK: Duration = Duration::from_millis(100);

/// What the writer tasks do.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Writer tasks.
    pub tasks: usize,
    /// Records per second, all tasks together; 0 means as fast as possible.
    pub rate: f64,
    /// Share of records that break the contract, 0 to 1.
    pub invalid_ratio: f64,
    /// Stop after this many records in all; `None` runs until shutdown.
    pub count: Option<u64>,
}

/// Records produced so far, shared by the writer tasks and whoever reports on them.
#[derive(Debug, Default)]
pub struct WriterProgress {
    /// Valid orders produced.
    pub valid: AtomicU64,
    /// Records produced that the contract rejects.
    pub invalid: AtomicU64,
    /// Records not yet claimed by a task, when a count is set.
    remaining: AtomicU64,
}

impl WriterProgress {
    /// All records produced.
    pub fn produced(&self) -> u64 {
        self.valid.load(Ordering::Relaxed) + self.invalid.load(Ordering::Relaxed)
    }

    /// Takes up to `wanted` records from what is left to produce.
    fn claim(&self, wanted: u64, limited: bool) -> u64 {
        if !limited {
            return wanted;
        }
        let claimed = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left - left.min(wanted))
            });
        claimed.map_or(0, |left| left.min(wanted))
    }
}

/// Opens a producing client for every partition, waiting out an outage; `None` on shutdown.
pub async fn partition_clients(
    client: &Client,
    topic: &str,
    partitions: &[i32],
    shutdown: &CancellationToken,
) -> Option<Vec<Arc<PartitionClient>>> {
    let mut clients = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        let opened = retry_until_ok("opening a partition to produce to", shutdown, || {
            client.partition_client(topic, partition, UnknownTopicHandling::Retry)
        })
        .await?;
        clients.push(Arc::new(opened));
    }
    Some(clients)
}

/// Starts `options.tasks` writer tasks as components of `manager`: they run until they have
/// produced `options.count` records (then they may end) or until shutdown; `progress` counts
/// what they produced as they go. Returns their handles.
pub fn start_writers(
    manager: &ShutdownManager,
    partitions: Vec<Arc<PartitionClient>>,
    options: WriterOptions,
    progress: Arc<WriterProgress>,
    events: Arc<Events>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if let Some(count) = options.count {
        progress.remaining.store(count, Ordering::Relaxed);
    }
    let partitions = Arc::new(partitions);
    (0..options.tasks.max(1))
        .map(|index| {
            let task = run_writer(
                Arc::clone(&partitions),
                options,
                Arc::clone(&progress),
                Arc::clone(&events),
                manager.token().clone(),
            );
            if options.count.is_some() {
                manager.spawn_finite(Component::Writer(index), task)
            } else {
                manager.spawn(Component::Writer(index), task)
            }
        })
        .collect()
}

async fn run_writer(
    partitions: Arc<Vec<Arc<PartitionClient>>>,
    options: WriterOptions,
    progress: Arc<WriterProgress>,
    events: Arc<Events>,
    shutdown: CancellationToken,
) {
    if partitions.is_empty() {
        return;
    }
    let rate_per_task = options.rate / options.tasks.max(1) as f64;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut budget = 0.0;
    loop {
        let wanted = if rate_per_task > 0.0 {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            budget += rate_per_task * TICK.as_secs_f64();
            let whole = budget.floor();
            budget -= whole;
            whole as u64
        } else {
            FAST_BATCH
        };
        if wanted == 0 {
            continue;
        }
        let n_records = progress.claim(wanted, options.count.is_some());
        if n_records == 0 {
            return;
        }
        let (by_partition, n_invalid) =
            make_records(n_records, options.invalid_ratio, partitions.len());
        let sends = by_partition.into_iter().map(|(index, records)| {
            let partition = Arc::clone(&partitions[index]);
            let shutdown = shutdown.clone();
            async move {
                retry_until_ok("producing to Kafka", &shutdown, || {
                    partition.produce(records.clone(), Compression::NoCompression)
                })
                .await
                .is_some()
            }
        });
        let sent = futures_util::future::join_all(sends).await;
        if sent.iter().any(|ok| !ok) {
            return;
        }
        progress
            .valid
            .fetch_add(n_records - n_invalid, Ordering::Relaxed);
        progress.invalid.fetch_add(n_invalid, Ordering::Relaxed);
        events.emit(WriterProduced {
            n_valid: n_records - n_invalid,
            n_invalid,
        });
    }
}

/// `n_records` new records grouped by partition index, and how many of them are invalid.
fn make_records(
    n_records: u64,
    invalid_ratio: f64,
    n_partitions: usize,
) -> (BTreeMap<usize, Vec<Record>>, u64) {
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    let mut by_partition: BTreeMap<usize, Vec<Record>> = BTreeMap::new();
    let mut n_invalid = 0;
    for _ in 0..n_records {
        let (key, value) = if invalid_ratio > 0.0 && rng.random_bool(invalid_ratio) {
            n_invalid += 1;
            let (kind, value) = invalid_record(&mut rng, now);
            (format!("invalid-{kind}-{:08x}", rng.random::<u32>()), value)
        } else {
            random_order_json(&mut rng, now)
        };
        let index = partition_for_key(key.as_bytes(), n_partitions);
        by_partition.entry(index).or_default().push(Record {
            key: Some(key.into_bytes()),
            value: Some(value),
            headers: BTreeMap::new(),
            timestamp: now,
        });
    }
    (by_partition, n_invalid)
}

/// The partition Kafka's default partitioner picks for a key: murmur2, made positive, modulo
/// the partition count.
pub fn partition_for_key(key: &[u8], n_partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % n_partitions.max(1)
}

/// Kafka's variant of MurmurHash2 (seed 0x9747b28c), as its Java client computes it.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut hash: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's own partitioner tests.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn records_are_spread_and_counted() {
        let (by_partition, n_invalid) = make_records(2_000, 0.25, 8);
        let total: usize = by_partition.values().map(Vec::len).sum();
        assert_eq!(total, 2_000);
        assert_eq!(by_partition.len(), 8, "some partition got no record");
        assert!(
            (300..700).contains(&n_invalid),
            "{n_invalid} invalid of 2000 at 25%"
        );
        for (index, records) in &by_partition {
            for record in records {
                let key = record.key.as_deref().unwrap_or_default();
                assert_eq!(partition_for_key(key, 8), *index);
            }
        }
    }

    #[test]
    fn a_count_is_shared_between_tasks() {
        let progress = WriterProgress::default();
        progress.remaining.store(700, Ordering::Relaxed);
        assert_eq!(progress.claim(500, true), 500);
        assert_eq!(progress.claim(500, true), 200);
        assert_eq!(progress.claim(500, true), 0);
        assert_eq!(progress.claim(500, false), 500);
    }
}
