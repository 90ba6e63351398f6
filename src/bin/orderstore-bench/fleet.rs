//! The fleet benchmark: several `orderstore` processes share one backlog through their leases
//! in PostgreSQL. For each instance count: a fresh database, that many binaries (the one built
//! beside this tool), timed from their start until the stored offsets cover the topic and then
//! checked for every order stored once; with two or more, a steady stream, a SIGKILL of one
//! instance, and the seconds until its partitions have new owners and until they move again.
//!
//! The instances, PostgreSQL and the broker share the machine's cores, and every instance
//! writes to the same `orders` table, so the fleet's ingest is bounded by one PostgreSQL's
//! COPY rate (the ingest benchmark's (b)): this measures what sharing costs and how fast a
//! failure heals, not scaling.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use orderstore::config::Settings;
use rskafka::client::partition::PartitionClient;

use crate::ingest::{fill_topic, Backlog};
use crate::instances::{connection_string, Fleet};
use crate::measure::{connect, create_database, settle, Phase};
use crate::stream::{Stream, STREAM_RATE};

/// How often the benchmark reads the offsets and leases.
const POLL: Duration = Duration::from_millis(10);
/// Longest the stored offsets may stand still before a run is called stuck.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// What the runs share: the filled topic, the binary, the instances' settings.
struct Bench {
    backlog: Backlog,
    binary: PathBuf,
    kafka_brokers: String,
    lease_ttl: Duration,
    admin: tokio_postgres::Client,
}

/// What one instance count measured.
struct FleetRun {
    n_instances: usize,
    n_orders: u64,
    seconds: f64,
    handover: Option<Handover>,
}

impl FleetRun {
    fn orders_per_second(&self) -> f64 {
        self.n_orders as f64 / self.seconds
    }
}

/// Seconds from a SIGKILL until every partition of the killed instance has a new owner, and
/// until each one's stored offset has moved past where it was at the kill.
struct Handover {
    owned_again: f64,
    progressing: f64,
}

/// Runs the fleet benchmark: a topic of `n_orders` over `n_partitions`, then a run for each of
/// `instance_counts`. Ctrl-C kills the instances too.
pub async fn fleet(
    mut settings: Settings,
    n_orders: u64,
    n_partitions: i32,
    instance_counts: &[usize],
    lease_ttl: Duration,
) -> anyhow::Result<()> {
    ensure!(
        !instance_counts.is_empty() && !instance_counts.contains(&0),
        "--instances wants counts of at least 1, such as 1,2,3"
    );
    let binary = std::env::current_exe()?.with_file_name("orderstore");
    ensure!(
        binary.is_file(),
        "{} is missing: cargo build --release --bin orderstore (scripts/bench-ingest does)",
        binary.display()
    );
    let all_runs = async {
        let backlog = fill_topic(&mut settings, n_orders, n_partitions).await?;
        let bench = Bench {
            backlog,
            binary,
            kafka_brokers: settings.kafka.brokers.join(","),
            lease_ttl,
            admin: connect(&settings.database.url).await?,
        };
        let mut runs = Vec::new();
        let mut previous = None;
        for (index, &n_instances) in instance_counts.iter().enumerate() {
            settle(&bench.admin, previous.take()).await?;
            let name = format!("{}_fleet{index}", bench.backlog.topic);
            let database = create_database(&settings.database.url, &name).await?;
            previous = Some(name.clone());
            // The instances' logs are kept only when their run fails.
            let logs = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&logs)?;
            let run = run_fleet(&bench, &database, n_instances, &logs)
                .await
                .with_context(|| {
                    format!(
                        "{n_instances} instance(s) failed; their logs are in {}",
                        logs.display()
                    )
                })?;
            let _ = std::fs::remove_dir_all(&logs);
            runs.push(run);
        }
        settle(&bench.admin, previous).await?;
        print_table(&runs, n_orders, bench.backlog.partitions.len(), lease_ttl);
        Ok(())
    };
    // Dropping the runs on Ctrl-C drops their instances, which kills them.
    tokio::select! {
        result = all_runs => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the instances were killed"),
    }
}

/// One run: `n_instances` instances on the empty `database`, from their start until the
/// topic is stored, then the check that every order was stored once, then (with two or more)
/// the handover after a SIGKILL; the rest are stopped with SIGTERM.
async fn run_fleet(
    bench: &Bench,
    database: &tokio_postgres::Config,
    n_instances: usize,
    logs: &Path,
) -> anyhow::Result<FleetRun> {
    let topic = &bench.backlog.topic;
    // The backlog, plus what earlier runs' streams added to the topic.
    let marks = high_watermarks(&bench.backlog.producers).await?;
    let n_records: i64 = marks.values().sum();
    let n_orders = u64::try_from(n_records)?;
    let checker = connect(database).await?;
    let environment = [
        ("DATABASE_URL", connection_string(database)),
        ("KAFKA_BROKERS", bench.kafka_brokers.clone()),
        ("KAFKA_TOPIC", topic.clone()),
        ("KAFKA_START_OFFSET", "earliest".into()),
        (
            "LEASE_TTL",
            humantime::format_duration(bench.lease_ttl).to_string(),
        ),
        ("MEMORY_RESTORE", "false".into()),
        ("WRITER_ENABLED", "false".into()),
        ("LOG_LEVEL", "info,rskafka=error".into()),
    ];
    let phase = Phase::start(&bench.admin).await?;
    let mut fleet = Fleet::start(&bench.binary, &environment, n_instances, logs)?;
    let mut stored = (0, Instant::now());
    loop {
        fleet.check_running()?;
        let n_stored: i64 = stored_offsets(&checker, topic).await.values().sum();
        if n_stored >= n_records {
            break;
        }
        if n_stored > stored.0 {
            stored = (n_stored, Instant::now());
        } else if stored.1.elapsed() > STALL_LIMIT {
            bail!("the stored offsets stood at {n_stored} of {n_records} for {STALL_LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    let label = format!("{n_instances} instance(s), start to all stored");
    let seconds = phase.report(&label, &bench.admin, n_orders).await?;
    let row = checker
        .query_one(
            "SELECT count(*), count(DISTINCT order_uid) FROM orders",
            &[],
        )
        .await?;
    let (n_rows, n_distinct): (i64, i64) = (row.get(0), row.get(1));
    ensure!(
        n_rows == n_records && n_distinct == n_records,
        "{n_rows} orders stored ({n_distinct} distinct) of {n_records}"
    );
    let handover = if n_instances >= 2 {
        Some(handover(bench, &checker, &marks, &mut fleet).await?)
    } else {
        None
    };
    fleet.stop(bench.lease_ttl).await?;
    Ok(FleetRun {
        n_instances,
        n_orders,
        seconds,
        handover,
    })
}

/// With a steady stream flowing and every instance holding its share, kills one instance with
/// SIGKILL and times the takeover of its partitions.
async fn handover(
    bench: &Bench,
    checker: &tokio_postgres::Client,
    marks: &BTreeMap<i32, i64>,
    fleet: &mut Fleet,
) -> anyhow::Result<Handover> {
    let topic = &bench.backlog.topic;
    let stream = Stream::start(bench.backlog.producers.clone());
    let n_owners = fleet.instances.len().min(marks.len());
    let limit = bench.lease_ttl * 3 + Duration::from_secs(30);
    let started = Instant::now();
    let owners = loop {
        fleet.check_running()?;
        let owners = live_owners(checker, topic).await?;
        let distinct: BTreeSet<&String> = owners.values().collect();
        let offsets = stored_offsets(checker, topic).await;
        let flowing = marks
            .iter()
            .all(|(partition, mark)| offsets.get(partition).is_some_and(|offset| offset > mark));
        if owners.len() == marks.len() && distinct.len() == n_owners && flowing {
            break owners;
        }
        if started.elapsed() > limit {
            bail!(
                "after {limit:?}, the partitions were not shared by all {n_owners} instances \
                 with the stream stored on every one: owners {owners:?}"
            );
        }
        tokio::time::sleep(POLL).await;
    };

    // The last instance that holds partitions is killed.
    let victim = fleet
        .instances
        .iter()
        .rposition(|instance| owners.values().any(|owner| *owner == instance.id))
        .context("no instance holds a partition")?;
    let victim_id = fleet.instances[victim].id.clone();
    let its_partitions: Vec<i32> = owners
        .iter()
        .filter(|(_, owner)| **owner == victim_id)
        .map(|(partition, _)| *partition)
        .collect();
    let killed_at = fleet.kill(victim)?;
    let at_kill = stored_offsets(checker, topic).await;
    let limit = bench.lease_ttl + Duration::from_secs(30);
    let (mut owned_at, mut moved_at) = (None, None);
    let (owned_again, progressing) = loop {
        fleet.check_running()?;
        if owned_at.is_none() {
            let owners = live_owners(checker, topic).await?;
            let taken = |partition| {
                owners
                    .get(partition)
                    .is_some_and(|owner| *owner != victim_id)
            };
            if its_partitions.iter().all(taken) {
                owned_at = Some(killed_at.elapsed().as_secs_f64());
            }
        }
        if moved_at.is_none() {
            let offsets = stored_offsets(checker, topic).await;
            let moved = |partition| offsets.get(partition) > at_kill.get(partition);
            if its_partitions.iter().all(moved) {
                moved_at = Some(killed_at.elapsed().as_secs_f64());
            }
        }
        if let (Some(owned_again), Some(progressing)) = (owned_at, moved_at) {
            break (owned_again, progressing);
        }
        if killed_at.elapsed() > limit {
            bail!(
                "{victim_id}'s partitions {its_partitions:?} were not taken over within {limit:?}"
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let n_streamed = stream.stop().await?;
    eprintln!(
        "    SIGKILL {victim_id} (partitions {its_partitions:?}): owned again after \
         {owned_again:.2} s, progressing after {progressing:.2} s; {n_streamed} orders streamed"
    );
    Ok(Handover {
        owned_again,
        progressing,
    })
}

/// Prints the runs as a markdown table, with what they can and cannot show.
fn print_table(runs: &[FleetRun], n_orders: u64, n_partitions: usize, lease_ttl: Duration) {
    let lease_ttl = humantime::format_duration(lease_ttl);
    let single = runs
        .iter()
        .find(|run| run.n_instances == 1)
        .map(FleetRun::orders_per_second);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "fleet benchmark: a backlog of {n_orders} orders over {n_partitions} partitions; per \
         instance count a fresh database and that many orderstore processes, one round; \
         LEASE_TTL {lease_ttl}"
    );
    println!(
        "| instances | orders | seconds | orders/s | ratio to 1 instance | handover after SIGKILL (owned again / progressing) |"
    );
    println!("|---|---|---|---|---|---|");
    for run in runs {
        let ratio = single.map_or("-".into(), |single| {
            format!("{:.2}", run.orders_per_second() / single)
        });
        let handover = run.handover.as_ref().map_or("-".into(), |handover| {
            format!(
                "{:.2} s / {:.2} s",
                handover.owned_again, handover.progressing
            )
        });
        println!(
            "| {} | {} | {:.2} | {:.0} | {ratio} | {handover} |",
            run.n_instances,
            run.n_orders,
            run.seconds,
            run.orders_per_second()
        );
    }
    println!(
        "orders: the backlog and what the earlier runs' streams ({STREAM_RATE:.0} orders/s around \
         each SIGKILL) added. seconds: from starting the processes until the stored offsets cover \
         the topic."
    );
    println!(
        "handover: from the SIGKILL until another instance leases every partition the killed one \
         held (owned again), and until each of their stored offsets has moved past where it was \
         at the kill (progressing). A lease expires LEASE_TTL after its last renewal, at most \
         LEASE_TTL / 3 before the kill, and is taken at a survivor's next round (every \
         LEASE_TTL / 3): between 2/3 and 4/3 of LEASE_TTL."
    );
    println!(
        "this machine has {cores} cores, shared by every instance, PostgreSQL and the broker, and \
         every instance writes to the one PostgreSQL, whose COPY rate caps the fleet's orders/s \
         whatever the count (scripts/bench-ingest without --instances, (b)): a ratio above 1 \
         means one instance stayed below that cap, not that the fleet scales past it; more \
         instances add availability."
    );
}

/// Each partition's high watermark: the offset its next record will get.
async fn high_watermarks(producers: &[Arc<PartitionClient>]) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut marks = BTreeMap::new();
    for client in producers {
        // The smallest fetch: its answer carries the high watermark.
        let (_, high_watermark) = client.fetch_records(0, 1..2, 0).await?;
        marks.insert(client.partition(), high_watermark);
    }
    Ok(marks)
}

/// Each partition's stored offset; none until an instance has made the table.
async fn stored_offsets(checker: &tokio_postgres::Client, topic: &str) -> BTreeMap<i32, i64> {
    checker
        .query(
            "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE kafka_topic = $1",
            &[&topic],
        )
        .await
        .unwrap_or_default()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Each partition's owner, for the leases held and not expired.
async fn live_owners(
    checker: &tokio_postgres::Client,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, String>> {
    let rows = checker
        .query(
            "SELECT kafka_partition, owner FROM partition_leases WHERE kafka_topic = $1 \
             AND owner IS NOT NULL AND expires_at > now()",
            &[&topic],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
