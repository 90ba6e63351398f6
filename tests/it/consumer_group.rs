//! The consumer group mirror, checked by a third-party client (kafka-python, the way Kafka's
//! tools read a group): the group's committed offsets equal the offsets stored in PostgreSQL,
//! and never move backwards while instances ingest, are killed with SIGKILL, restart and hand
//! partitions over; `KAFKA_START_OFFSET=group` starts a partition at the offset another
//! consumer committed (inside a record batch, which tansu would skip the rest of) and stores
//! every order from there exactly once and none before; the lag gauges and the status JSON show
//! the lag as Kafka's tools compute it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// The kafka-python helper script.
fn script() -> String {
    format!(
        "{}/tests/it/python/group_offsets.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs the helper once and returns what it printed; fails saying what is missing when
/// kafka-python is not installed.
fn kafka_python(args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run python3 (scripts/test installs it): {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kafka-python {args:?} failed{}: {stderr}",
        if stderr.contains("No module named 'kafka'") {
            " (kafka-python is missing: scripts/test installs kafka-python==3.0.12)"
        } else {
            ""
        }
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn parse_offsets(line: &str) -> BTreeMap<i32, i64> {
    let parsed: BTreeMap<String, i64> = serde_json::from_str(line.trim())
        .unwrap_or_else(|error| panic!("kafka-python printed {line:?}: {error}"));
    parsed
        .into_iter()
        .map(|(partition, offset)| {
            let partition = partition
                .parse()
                .unwrap_or_else(|error| panic!("partition {partition:?}: {error}"));
            (partition, offset)
        })
        .collect()
}

/// The group's committed offsets of `topic`, as kafka-python's admin client reads them.
async fn group_offsets(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let args = ["offsets", brokers, group, topic].map(String::from);
    in_blocking_thread(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        parse_offsets(&kafka_python(&args))
    })
    .await
}

/// PostgreSQL's stored offsets, in the same shape.
async fn stored(db: &tokio_postgres::Client, topic: &str) -> BTreeMap<i32, i64> {
    stored_offsets(db, topic).await.into_iter().collect()
}

/// Waits until the group's offsets equal the stored ones for every partition.
async fn wait_for_group_to_match(db: &tokio_postgres::Client, group: &str, topic: &str) {
    let brokers = services().kafka_brokers.clone();
    wait_for(
        "the group's offsets to equal the stored offsets",
        Duration::from_secs(30),
        || async {
            let stored = stored(db, topic).await;
            !stored.is_empty() && group_offsets(&brokers, group, topic).await == stored
        },
    )
    .await;
}

/// kafka-python reading the group every 200 ms in the background, keeping every reading.
struct GroupWatch {
    _process: KillOnDrop,
    readings: Arc<Mutex<Vec<BTreeMap<i32, i64>>>>,
}

impl GroupWatch {
    fn start(group: &str, topic: &str) -> GroupWatch {
        let mut child = Command::new("python3")
            .arg(script())
            .args(["watch", &services().kafka_brokers, group, topic])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run python3: {error}"));
        let stdout = child.stdout.take().expect("stdout was piped");
        let readings = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&readings);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let reading = parse_offsets(&line);
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(reading);
            }
        });
        GroupWatch {
            _process: KillOnDrop(child),
            readings,
        }
    }

    /// Every partition's offset in every reading was at least its offset in the one before.
    fn assert_never_backwards(&self) -> usize {
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let mut highest: HashMap<i32, i64> = HashMap::new();
        for (index, reading) in readings.iter().enumerate() {
            for (partition, offset) in reading {
                let before = highest.entry(*partition).or_insert(*offset);
                assert!(
                    offset >= before,
                    "partition {partition}'s group offset moved back from {before} to {offset} \
                     at reading {index} of {}",
                    readings.len()
                );
                *before = *offset;
            }
        }
        readings.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_follows_the_stored_offsets_through_a_kill_a_restart_and_a_handover() {
    let bed = TestBed::new(4).await;
    let group = unique_name("group");
    let watch = GroupWatch::start(&group, &bed.topic);
    let orders = valid_orders(8_000);
    let (first_half, second_half) = orders.split_at(4_000);
    produce_spread(&bed.partitions, first_half).await;

    let start = |id: &str, extra: &[(&str, &str)]| {
        let port = http_port();
        let mut env = binary_env(&bed.database, &bed.topic, port);
        env.extend(
            [
                ("INSTANCE_ID", id),
                ("LEASE_TTL", "2s"),
                ("KAFKA_GROUP_ID", group.as_str()),
            ]
            .iter()
            .chain(extra)
            .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        (port, start_binary(&env, Stdio::inherit()))
    };

    // Slow ingest, killed half-way.
    let (_, mut first) = start("a", &[("BATCH_SIZE", "10"), ("HANDLERS", "1")]);
    wait_for(
        "the first instance to store 1000 orders",
        Duration::from_secs(120),
        || async { count_if_exists(&bed.db, "SELECT count(*) FROM orders").await >= 1000 },
    )
    .await;
    wait_for(
        "the group to show some progress",
        Duration::from_secs(30),
        || async {
            !group_offsets(&services().kafka_brokers, &group, &bed.topic)
                .await
                .is_empty()
        },
    )
    .await;
    first
        .0
        .kill()
        .unwrap_or_else(|error| panic!("cannot kill the first instance: {error}"));
    let _ = first.0.wait();

    // Another instance takes the expired leases, catches up, and the group follows.
    let (port_b, second) = start("b", &[]);
    bed.wait_until_caught_up().await;
    wait_for_group_to_match(&bed.db, &group, &bed.topic).await;

    // A newcomer: half the partitions are handed over while more orders come.
    let (_, third) = start("c", &[]);
    produce_spread(&bed.partitions, second_half).await;
    wait_for(
        "the newcomer to own partitions",
        Duration::from_secs(30),
        || async {
            let owners = bed
                .db
                .query("SELECT DISTINCT owner FROM partition_leases WHERE kafka_topic = $1 AND owner IS NOT NULL", &[&bed.topic])
                .await
                .map(|rows| rows.len())
                .unwrap_or(0);
            owners == 2
        },
    )
    .await;
    bed.wait_until_caught_up().await;
    wait_for_group_to_match(&bed.db, &group, &bed.topic).await;

    // Lag as the tools see it: zero once caught up, in the gauges and the status JSON.
    wait_for(
        "the status JSON to show the group's offsets with no lag",
        Duration::from_secs(15),
        || group_shows_stored_offsets(port_b, &group),
    )
    .await;
    let metrics = String::from_utf8_lossy(&http(port_b, "GET", "/metrics").await.body).into_owned();
    assert!(
        metrics.contains("orderstore_consumer_group_commits_total{result=\"ok\"}"),
        "no successful commit counted:\n{metrics}"
    );
    assert!(
        metrics.contains("orderstore_consumer_group_lag_records{partition="),
        "no group lag gauge:\n{metrics}"
    );

    let readings = watch.assert_never_backwards();
    assert!(
        readings >= 10,
        "kafka-python read the group only {readings} times"
    );
    let stored_count = count(&bed.db, "SELECT count(*) FROM orders").await;
    assert_eq!(stored_count, orders.len() as i64);
    second.terminate();
    third.terminate();
    // After an orderly stop the group still equals what PostgreSQL holds.
    assert_eq!(
        group_offsets(&services().kafka_brokers, &group, &bed.topic).await,
        stored(&bed.db, &bed.topic).await
    );
    watch.assert_never_backwards();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_starts_at_the_offset_another_consumer_committed() {
    let bed = TestBed::new(2).await;
    let group = unique_name("go-orders");
    let orders = valid_orders(600);
    // Partition 0 gets orders 0, 2, 4 ... at offsets 0, 1, 2 ..., in record batches of 200.
    produce_spread(&bed.partitions, &orders).await;
    // Another consumer read partition 0 up to offset 137, inside the first batch; partition 1
    // it never committed.
    let committed_at = 137;
    let brokers = services().kafka_brokers.clone();
    let (group_arg, topic_arg) = (group.clone(), bed.topic.clone());
    let said = in_blocking_thread(move || {
        kafka_python(&[
            "commit",
            &brokers,
            &group_arg,
            &topic_arg,
            &format!("0={committed_at}"),
        ])
    })
    .await;
    assert_eq!(said.trim(), "committed");

    let app = RunningApp::start(settings(
        &bed.database,
        &bed.topic,
        &[("KAFKA_START_OFFSET", "group"), ("KAFKA_GROUP_ID", &group)],
    ))
    .await;
    bed.wait_until_caught_up().await;

    let rows = bed
        .db
        .query(
            "SELECT order_uid, kafka_partition, kafka_offset FROM orders",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let stored: HashSet<(String, i32, i64)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(stored.len(), rows.len(), "an order is stored twice");
    let expected: HashSet<(String, i32, i64)> = orders
        .iter()
        .enumerate()
        .map(|(index, (uid, _))| (uid.clone(), (index % 2) as i32, (index / 2) as i64))
        .filter(|(_, partition, offset)| *partition == 1 || *offset >= committed_at)
        .collect();
    let missing: Vec<_> = expected.difference(&stored).take(5).collect();
    let extra: Vec<_> = stored.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing (first 5): {missing:?}; stored but before the group's offset: {extra:?}"
    );
    assert_eq!(stored.len(), 300 - committed_at as usize + 300);

    // From now on the group mirrors what is stored.
    wait_for_group_to_match(&bed.db, &group, &bed.topic).await;
    app.stop().await;
}
