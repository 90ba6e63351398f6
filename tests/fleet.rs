//! Several instances on one database and topic share the partitions through leases in
//! PostgreSQL: three split eight partitions 3/3/2 and each answers any order; one killed with
//! SIGKILL has its partitions taken over within `LEASE_TTL` + 2 s; one frozen (SIGSTOP) past
//! its lease is fenced, changes nothing when it wakes, and rejoins; a newcomer gets its half;
//! SIGTERM hands partitions over at once. Through all of it every order is stored exactly once
//! and no stored offset ever moves backwards.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const LEASE_TTL: Duration = Duration::from_secs(2);

/// An instance of the binary, with its id and HTTP port.
struct Instance {
    id: String,
    port: u16,
    process: Option<KillOnDrop>,
    log: LogFile,
}

impl Instance {
    fn start(bed: &TestBed, id: &str) -> Instance {
        let port = http_port();
        let mut env = binary_env(&bed.database, &bed.topic, port);
        env.extend([
            ("INSTANCE_ID".to_string(), id.to_string()),
            ("LEASE_TTL".to_string(), "2s".to_string()),
            ("MEMORY_RESTORE".to_string(), "false".to_string()),
        ]);
        env.retain(|(name, _)| name != "LOG_LEVEL");
        env.push(("LOG_LEVEL".to_string(), "info,rskafka=error".to_string()));
        let log = LogFile::new(&format!("fleet-{id}"));
        Instance {
            id: id.to_string(),
            port,
            process: Some(start_binary(&env, log.stdio())),
            log,
        }
    }

    /// SIGTERM, and an exit status of 0.
    fn stop(mut self) {
        if let Some(process) = self.process.take() {
            process.terminate();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .process
            .as_ref()
            .map(|process| process.0.id())
            .unwrap_or(0);
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap_or_else(|error| panic!("cannot signal {}: {error}", self.id));
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Each partition's owner, from the lease table (empty until an instance made it).
async fn owners(db: &tokio_postgres::Client, topic: &str) -> BTreeMap<i32, Option<String>> {
    db.query(
        "SELECT kafka_partition, owner FROM partition_leases WHERE kafka_topic = $1 \
         AND (owner IS NULL OR expires_at > now())",
        &[&topic],
    )
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// How many partitions each owner holds, sorted by count.
async fn split(db: &tokio_postgres::Client, topic: &str) -> Vec<usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for owner in owners(db, topic).await.into_values().flatten() {
        *counts.entry(owner).or_default() += 1;
    }
    let mut counts: Vec<usize> = counts.into_values().collect();
    counts.sort_unstable();
    counts
}

/// Three instances named `ids`, once they have split the eight partitions 3/3/2.
async fn three_instances(bed: &TestBed, ids: [&str; 3]) -> Vec<Instance> {
    let instances: Vec<Instance> = ids.iter().map(|id| Instance::start(bed, id)).collect();
    wait_for("a 3/3/2 split", Duration::from_secs(60), || async {
        split(&bed.db, &bed.topic).await == vec![2, 3, 3]
    })
    .await;
    instances
}

/// Whether all eight partitions are owned, none of them by `id`.
async fn all_owned_without(db: &tokio_postgres::Client, topic: &str, id: &str) -> bool {
    let owners = owners(db, topic).await;
    owners.len() == 8
        && owners
            .values()
            .all(|owner| owner.as_deref().is_some_and(|owner| owner != id))
}

/// A steady producer: 40 orders every 50 ms, round-robin, until stopped; returns every uid.
struct SteadyProducer {
    running: Arc<AtomicBool>,
    uids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SteadyProducer {
    fn start(bed: &TestBed) -> SteadyProducer {
        let running = Arc::new(AtomicBool::new(true));
        let uids = Arc::new(Mutex::new(Vec::new()));
        let partitions = bed.partitions.clone();
        let (flag, sent) = (Arc::clone(&running), Arc::clone(&uids));
        let task = tokio::spawn(async move {
            while flag.load(Ordering::Relaxed) {
                let orders = valid_orders(40);
                produce_spread(&partitions, &orders).await;
                sent.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(orders.into_iter().map(|(uid, _)| uid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        SteadyProducer {
            running,
            uids,
            task,
        }
    }

    async fn stop(self) -> Vec<String> {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        let uids = self
            .uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        uids.clone()
    }
}

/// Watches the stored offsets: fails if any ever moves backwards.
async fn offsets_never_move_back(
    db: &tokio_postgres::Client,
    topic: &str,
    seen: &Mutex<HashMap<i32, i64>>,
) {
    let offsets = stored_offsets(db, topic).await;
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (partition, offset) in offsets {
        let previous = seen.insert(partition, offset).unwrap_or(0);
        assert!(
            offset >= previous,
            "partition {partition}'s stored offset moved back from {previous} to {offset}"
        );
    }
}

/// Every produced order is stored exactly once, once ingestion has caught up.
async fn every_order_once(bed: &TestBed, produced: &[String]) {
    wait_until_caught_up(
        &bed.db,
        &bed.topic,
        &bed.partitions,
        Duration::from_secs(120),
    )
    .await;
    let row = bed
        .db
        .query_one(
            "SELECT count(*), count(DISTINCT order_uid) FROM orders",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, distinct);
    assert_eq!(
        rows,
        produced.len() as i64,
        "every produced order is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_split_answer_and_survive_a_kill() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let mut instances = three_instances(&bed, ["a", "b", "c"]).await;
    // Any instance answers any order: its own from memory, the others' from PostgreSQL.
    wait_for("stored orders", Duration::from_secs(30), || async {
        count_if_exists(&bed.db, "SELECT count(*) FROM orders").await > 100
    })
    .await;
    let sample: Vec<String> = bed
        .db
        .query(
            "SELECT order_uid FROM orders ORDER BY random() LIMIT 5",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    for instance in &instances {
        for uid in &sample {
            let answer = http(instance.port, "GET", &format!("/orders/uid/{uid}")).await;
            assert_eq!(answer.status, 200, "{} on {uid}", instance.id);
        }
        let ready = http(instance.port, "GET", "/health/ready").await;
        assert_eq!(ready.status, 200, "{}", instance.id);
        assert_eq!(ready.json()["instance"], instance.id.as_str());
        let owned = ready.json()["partitions"].as_array().map(Vec::len);
        assert!(matches!(owned, Some(2 | 3)), "{}: {owned:?}", instance.id);
        let expected = [
            format!("orderstore_instance_info{{instance=\"{}\"}} 1", instance.id),
            format!("orderstore_partitions_owned {}", owned.unwrap_or(0)),
            "orderstore_partition_stalled_seconds{partition=".to_string(),
            "orderstore_lease_changes_total{cause=\"taken\"}".to_string(),
        ];
        // The gauges are set every second.
        wait_for(
            &format!("{}'s fleet metrics", instance.id),
            Duration::from_secs(10),
            || async {
                let metrics = http(instance.port, "GET", "/metrics").await;
                let text = String::from_utf8_lossy(&metrics.body).to_string();
                expected.iter().all(|line| text.contains(line))
            },
        )
        .await;
    }

    let seen = Mutex::new(HashMap::new());
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    let killed = instances.remove(2);
    killed.signal("-KILL");
    let started = Instant::now();
    wait_for(
        "the killed instance's partitions to be taken over",
        LEASE_TTL + Duration::from_secs(2),
        || all_owned_without(&bed.db, &bed.topic, "c"),
    )
    .await;
    let takeover = started.elapsed();
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    assert_eq!(
        split(&bed.db, &bed.topic).await,
        vec![4, 4],
        "taken over in {takeover:?}"
    );
    drop(killed);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let produced = producer.stop().await;
    every_order_once(&bed, &produced).await;
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    for instance in instances {
        instance.stop();
    }
    // SIGTERM released the leases at once.
    assert!(owners(&bed.db, &bed.topic)
        .await
        .values()
        .all(Option::is_none));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_is_fenced_then_rejoins_and_a_newcomer_gets_its_half() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let first = Instance::start(&bed, "first");
    wait_for(
        "one instance owning all",
        Duration::from_secs(60),
        || async { split(&bed.db, &bed.topic).await == vec![8] },
    )
    .await;
    let second = Instance::start(&bed, "second");
    wait_for(
        "a newcomer getting half",
        Duration::from_secs(30),
        || async { split(&bed.db, &bed.topic).await == vec![4, 4] },
    )
    .await;

    let seen = Mutex::new(HashMap::new());
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    second.signal("-STOP");
    wait_for(
        "the frozen instance's partitions taken",
        LEASE_TTL + Duration::from_secs(4),
        || async {
            offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
            let owners = owners(&bed.db, &bed.topic).await;
            owners.len() == 8
                && owners
                    .values()
                    .all(|owner| owner.as_deref() == Some("first"))
        },
    )
    .await;
    // Frozen well past its lease, mid-stream; then it wakes up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.signal("-CONT");
    for _ in 0..30 {
        offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(
        "the woken instance rejoining",
        Duration::from_secs(30),
        || async {
            offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
            split(&bed.db, &bed.topic).await == vec![4, 4]
        },
    )
    .await;

    let produced = producer.stop().await;
    every_order_once(&bed, &produced).await;
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    let woken = without_colours(&second.log.text());
    assert!(
        woken.contains("cause=\"fenced\""),
        "the woken instance did not notice it lost its leases:\n{woken}"
    );
    for instance in [first, second] {
        instance.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_stores_every_order_once() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let mut instances = three_instances(&bed, ["r1", "r2", "r3"]).await;
    let seen = Mutex::new(HashMap::new());
    for instance in instances.iter_mut() {
        let id = instance.id.clone();
        if let Some(process) = instance.process.take() {
            process.terminate();
        }
        // SIGTERM released its leases: the others take them at their next round, well
        // before the leases would have expired.
        wait_for(
            &format!("{id}'s partitions taken over after SIGTERM"),
            LEASE_TTL,
            || async {
                offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
                all_owned_without(&bed.db, &bed.topic, &id).await
            },
        )
        .await;
        *instance = Instance::start(&bed, &id);
        wait_for(
            "the restarted instance's share",
            Duration::from_secs(30),
            || async {
                offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
                split(&bed.db, &bed.topic).await == vec![2, 3, 3]
            },
        )
        .await;
    }
    let produced = producer.stop().await;
    every_order_once(&bed, &produced).await;
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    for instance in instances {
        instance.stop();
    }
}
