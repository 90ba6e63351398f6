//! The freshness benchmark: how long an order takes from the broker's acknowledgement to the
//! first 200 on `/orders/uid/{uid}`, at a steady rate, against a running orderstore; then how
//! many fetches a second that orderstore sends once the stream stops and it sits idle, in the
//! first minute (warm) and after it (cold). With `--fsync-probe`, the disk under PostgreSQL is
//! timed meanwhile (`fsync_probe.rs`), and the slow orders that waited through a slow sync
//! are counted.
//!
//! Orders are produced at a steady pace (every millisecond, the orders then due), each acked
//! produce timed on its own. Every `sample`-th order is polled until it is found, over a few
//! keep-alive connections (`poll.rs`); polling all of them would load the shared machine more
//! than the stream does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use orderstore::config::Settings;
use orderstore::events::Events;
use orderstore::fake_data::orders::random_order_json;
use orderstore::fake_data::writer::{self, partition_for_key};
use orderstore::kafka;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::fsync_probe::{FsyncProbe, Stall, SLOW};
use crate::poll::{fetches_total, HttpPool};

/// How often a sampled order is asked for until it is found: the resolution of the result.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// How long orders wait in the producer to go out together, one request per partition, as a
/// Kafka producer with `linger.ms=20` sends them. Times start at the acknowledgement, so this
/// adds nothing to them; it spares the broker, which shares the machine: tansu's work is per
/// request, and with 5 ms its load doubled the median here.
const LINGER: Duration = Duration::from_millis(20);

/// An order not found this long after its acknowledgement fails the run.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// How long the instance idles before its idle fetches are counted, and for how long they are:
/// once while its partitions are warm, once after `kafka::WARM_PERIOD`, when they are cold.
const IDLE_SETTLE: Duration = Duration::from_secs(5);
const IDLE_COUNTED: Duration = Duration::from_secs(10);

/// The stretch of the stream of each p99 printed besides the whole run's: tansu's work per
/// fetch grows with the batches a partition holds, so a long stream slows down as it goes.
const WINDOW: Duration = Duration::from_secs(10);

/// The latency over which a polled order counts as slow in the disk's report: the target.
const SLOW_ORDER: Duration = Duration::from_millis(100);

/// What to run.
pub struct FreshnessRun {
    /// The orderstore to ask, `host:port`.
    pub http: String,
    /// Orders per second.
    pub rate: f64,
    /// How long the stream runs.
    pub duration: Duration,
    /// One order in `sample` is polled.
    pub sample: u64,
    /// Where every polled order's times go, if anywhere.
    pub samples: Option<std::path::PathBuf>,
    /// A directory on the disk under PostgreSQL, to time `fdatasync` in, if any.
    pub fsync_probe: Option<std::path::PathBuf>,
}

/// One polled order.
struct Polled {
    partition: i32,
    /// From the stream's start to the acknowledgement.
    acked: Duration,
    /// From the acknowledgement to the first 200.
    latency: Duration,
}

/// Runs the benchmark against the orderstore at `run.http` that reads `settings`' topic.
pub async fn freshness(settings: Settings, run: FreshnessRun) -> anyhow::Result<()> {
    ensure!(
        run.rate > 0.0 && run.sample > 0,
        "--rate and --sample must be positive"
    );
    let never = CancellationToken::new();
    let client = kafka::connect(&settings, &Events::default(), &Default::default(), &never)
        .await
        .context("no Kafka")?;
    let topic = settings.kafka.topic.clone();
    let partitions = kafka::ensure_topic(&client, &topic, &settings).await?;
    let producers = writer::partition_clients(&client, &topic, &partitions, &never)
        .await
        .context("no partitions")?;
    let pool = Arc::new(HttpPool::new(run.http.clone()));
    ensure!(
        pool.get("/health/ready").await? == 200,
        "orderstore at {} is not ready",
        run.http
    );

    let (acked, mut acks) = mpsc::unbounded_channel::<(String, i32, Instant)>();
    let started = Instant::now();
    let probe = match &run.fsync_probe {
        Some(dir) => Some(
            FsyncProbe::start(dir, started)
                .with_context(|| format!("starting the fsync probe in {}", dir.display()))?,
        ),
        None => None,
    };
    let stream = tokio::spawn(produce_steadily(
        producers,
        started,
        run.rate,
        run.duration,
        run.sample,
        acked,
    ));
    let mut pollers = JoinSet::new();
    while let Some((uid, partition, acked_at)) = acks.recv().await {
        let pool = Arc::clone(&pool);
        pollers.spawn(async move {
            let latency = first_found(&pool, &uid, acked_at).await?;
            anyhow::Ok(Polled {
                partition,
                acked: acked_at - started,
                latency,
            })
        });
    }
    let produced = stream.await??;
    let mut polled = Vec::new();
    while let Some(one) = pollers.join_next().await {
        polled.push(one??);
    }
    let stopped = tokio::time::Instant::now();
    let disk = probe.map(FsyncProbe::stop).transpose()?;
    if let Some(path) = &run.samples {
        polled.sort_by_key(|one| one.acked);
        let lines: String = polled
            .iter()
            .map(|one| {
                format!(
                    "{:.3} {:.1} {}\n",
                    one.acked.as_secs_f64(),
                    one.latency.as_secs_f64() * 1e3,
                    one.partition
                )
            })
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut latencies: Vec<Duration> = polled.iter().map(|one| one.latency).collect();
    ensure!(
        !latencies.is_empty(),
        "no order was polled: stream longer (--duration) or poll more of them (--sample)"
    );
    latencies.sort();
    let at = |quantile: f64| quantile_ms(&latencies, quantile);
    println!(
        "freshness: {produced} orders at {} orders/s over {} partitions in {:.0} s; {} polled every {} ms",
        run.rate,
        partitions.len(),
        run.duration.as_secs_f64(),
        latencies.len(),
        POLL_EVERY.as_millis()
    );
    println!(
        "broker ack -> first 200 on /orders/uid/{{uid}}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.50),
        at(0.99),
        at(1.0)
    );
    println!(
        "p99 by {} s of stream: {}",
        WINDOW.as_secs(),
        p99_by_window(&polled, run.duration)
    );

    if let (Some((n_syncs, stalls)), Some(dir)) = (disk, &run.fsync_probe) {
        report_disk(&polled, n_syncs, &stalls, dir);
    }

    tokio::time::sleep_until(stopped + IDLE_SETTLE).await;
    let warm = fetch_rate(&pool).await?;
    tokio::time::sleep_until(stopped + kafka::WARM_PERIOD + IDLE_SETTLE).await;
    let cold = fetch_rate(&pool).await?;
    println!(
        "idle: {warm:.1} fetches/s over {} partitions while warm ({} s after the stream stopped), \
         {cold:.1} once cold ({} s after; orderstore_kafka_fetches_total)",
        partitions.len(),
        IDLE_SETTLE.as_secs(),
        (kafka::WARM_PERIOD + IDLE_SETTLE).as_secs()
    );
    Ok(())
}

/// The instance's fetches a second over [`IDLE_COUNTED`] from now.
async fn fetch_rate(pool: &HttpPool) -> anyhow::Result<f64> {
    let before = fetches_total(pool).await?;
    tokio::time::sleep(IDLE_COUNTED).await;
    let after = fetches_total(pool).await?;
    Ok((after - before) / IDLE_COUNTED.as_secs_f64())
}

/// The `quantile` of `sorted`, which is not empty, in ms.
fn quantile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    let index = ((sorted.len() as f64 * quantile) as usize).min(sorted.len() - 1);
    sorted[index].as_secs_f64() * 1e3
}

/// The p99 of the orders acknowledged in each [`WINDOW`] of a stream of `duration`, in ms,
/// `/` between; the few acknowledged after the end count in the last window.
fn p99_by_window(polled: &[Polled], duration: Duration) -> String {
    let n_windows = (duration.as_secs_f64() / WINDOW.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let mut windows: Vec<Vec<Duration>> = vec![Vec::new(); n_windows];
    for one in polled {
        let index = (one.acked.as_secs_f64() / WINDOW.as_secs_f64()) as usize;
        windows[index.min(n_windows - 1)].push(one.latency);
    }
    windows
        .iter_mut()
        .filter(|window| !window.is_empty())
        .map(|window| {
            window.sort();
            format!("{:.0}", quantile_ms(window, 0.99))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Prints the probe's slow syncs and how many of the slow orders waited through one.
fn report_disk(polled: &[Polled], n_syncs: u64, stalls: &[Stall], dir: &std::path::Path) {
    let longest = stalls.iter().max_by_key(|stall| stall.took);
    println!(
        "disk: {} of {n_syncs} fdatasync calls in {} took over {} ms{}",
        stalls.len(),
        dir.display(),
        SLOW.as_millis(),
        longest.map_or(String::new(), |stall| format!(
            " (longest {:.0} ms, {:.1} s into the stream)",
            stall.took.as_secs_f64() * 1e3,
            stall.at.as_secs_f64()
        ))
    );
    let slow: Vec<&Polled> = polled
        .iter()
        .filter(|one| one.latency > SLOW_ORDER)
        .collect();
    let through_stall = slow
        .iter()
        .filter(|one| {
            let waited = one.acked..one.acked + one.latency;
            stalls
                .iter()
                .any(|stall| stall.at < waited.end && waited.start < stall.at + stall.took)
        })
        .count();
    println!(
        "polled orders over {} ms: {}, of which {through_stall} waited through a slow fdatasync",
        SLOW_ORDER.as_millis(),
        slow.len()
    );
}

/// Produces `rate` orders a second for `duration` from `started`: every [`LINGER`], the orders
/// due by then, one produce per partition, each acked on its own. Sends every `sample`-th
/// order's uid, partition and acknowledgement time to `acked`. Returns how many were produced.
async fn produce_steadily(
    producers: Vec<Arc<PartitionClient>>,
    started: Instant,
    rate: f64,
    duration: Duration,
    sample: u64,
    acked: mpsc::UnboundedSender<(String, i32, Instant)>,
) -> anyhow::Result<u64> {
    let mut ticker = tokio::time::interval(LINGER);
    let mut sends = JoinSet::new();
    let mut produced = 0_u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        let mut by_partition: Vec<(Vec<Record>, Vec<String>)> =
            vec![Default::default(); producers.len()];
        while produced < due {
            let (uid, json) = random_order_json(&mut rand::rng(), chrono::Utc::now());
            let (records, sampled) =
                &mut by_partition[partition_for_key(uid.as_bytes(), producers.len())];
            if produced.is_multiple_of(sample) {
                sampled.push(uid.clone());
            }
            records.push(Record {
                key: Some(uid.into_bytes()),
                value: Some(json),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            });
            produced += 1;
        }
        for (partition, (records, sampled)) in producers.iter().zip(by_partition) {
            if records.is_empty() {
                continue;
            }
            let (partition, acked) = (Arc::clone(partition), acked.clone());
            sends.spawn(async move {
                partition
                    .produce(records, Compression::NoCompression)
                    .await
                    .context("producing to Kafka")?;
                let acked_at = Instant::now();
                for uid in sampled {
                    let _ = acked.send((uid, partition.partition(), acked_at));
                }
                anyhow::Ok(())
            });
        }
        while let Some(sent) = sends.try_join_next() {
            sent??;
        }
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }
    Ok(produced)
}

/// Asks for `uid` every [`POLL_EVERY`] until it is found; the time from `acked_at`.
async fn first_found(pool: &HttpPool, uid: &str, acked_at: Instant) -> anyhow::Result<Duration> {
    let path = format!("/orders/uid/{uid}");
    loop {
        match pool.get(&path).await? {
            200 => return Ok(acked_at.elapsed()),
            404 => {}
            status => bail!("GET {path} answered {status}"),
        }
        if acked_at.elapsed() > GIVE_UP_AFTER {
            bail!("order {uid} was not found {GIVE_UP_AFTER:?} after the broker acknowledged it");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
