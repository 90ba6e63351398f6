//! The dead-letter topic, against real PostgreSQL and tansu: every rejected record arrives
//! in `REJECTS_TOPIC` with its key, bytes and headers and orderstore's reason headers, once
//! and in source order per partition (also while batches of one partition commit out of
//! order), and is marked published in `rejected_records`; rejects recorded while no
//! dead-letter topic was set are published once one is, also after a SIGKILL and a broker
//! outage while they were pending; published rejects past `REJECTS_RETENTION` are deleted,
//! and nothing else is. `GET /rejects`, `/rejects/summary` and `/rejects/{id}` say what the
//! table says, behind the orders' token.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;

/// A hostile record: its value, key and headers.
struct Hostile {
    value: Vec<u8>,
    key: Vec<u8>,
    headers: BTreeMap<String, Vec<u8>>,
}

/// Produces `n` hostile records per partition, between valid orders; returns them
/// by (partition, offset).
async fn produce_hostile(
    partitions: &[Arc<PartitionClient>],
    n: usize,
) -> BTreeMap<(i32, i64), Hostile> {
    let bad_values: [&[u8]; 4] = [
        b"not json at all",
        b"{\"order_uid\": 42}",
        b"\xff\xfe binary",
        b"[]",
    ];
    let mut sent = BTreeMap::new();
    for partition in partitions {
        let mut records = Vec::new();
        let valid = valid_orders(n);
        for index in 0..n {
            records.push(Record {
                key: None,
                value: Some(valid[index].1.clone()),
                headers: BTreeMap::new(),
                timestamp: rskafka::chrono::Utc::now(),
            });
            records.push(Record {
                key: Some(format!("key-{}-{index}", partition.partition()).into_bytes()),
                value: Some(bad_values[index % bad_values.len()].to_vec()),
                headers: BTreeMap::from([("trace".to_string(), vec![index as u8, 0, 255])]),
                timestamp: rskafka::chrono::Utc::now(),
            });
        }
        let offsets = partition
            .produce(records.clone(), Compression::NoCompression)
            .await
            .unwrap_or_else(|error| panic!("produce failed: {error}"));
        for (record, offset) in records.into_iter().zip(offsets) {
            if record.key.is_some() {
                sent.insert(
                    (partition.partition(), offset),
                    Hostile {
                        value: record.value.unwrap_or_default(),
                        key: record.key.unwrap_or_default(),
                        headers: record.headers,
                    },
                );
            }
        }
    }
    sent
}

/// Every record of `topic`'s `n_partitions` partitions on `brokers`, by partition, in offset
/// order.
async fn read_topic(brokers: &str, topic: &str, n_partitions: i32) -> HashMap<i32, Vec<Record>> {
    let client = kafka_client_at(brokers).await;
    let mut read = HashMap::new();
    for partition in 0..n_partitions {
        let partition_client = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap_or_else(|error| panic!("cannot open {topic}/{partition}: {error}"));
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let (fetched, high_watermark) = partition_client
                .fetch_records(offset, 1..10_000_000, 100)
                .await
                .unwrap_or_else(|error| panic!("fetch failed: {error}"));
            for record in fetched {
                if record.offset >= offset {
                    offset = record.offset + 1;
                    records.push(record.record);
                }
            }
            if offset >= high_watermark {
                break;
            }
        }
        read.insert(partition, records);
    }
    read
}

/// Rejects recorded, and those of them not yet published; (0, 0) before the tables exist.
async fn pending(db: &tokio_postgres::Client) -> (i64, i64) {
    let recorded = count_if_exists(db, "SELECT count(*) FROM rejected_records").await;
    let pending = count_if_exists(
        db,
        "SELECT count(*) FROM rejected_records WHERE published_at IS NULL",
    )
    .await;
    (recorded, pending)
}

/// What the dead-letter topic `dead_letters` (of `n_partitions`, on `brokers`) holds must be
/// exactly `sent`, each once, in source order.
async fn check_dead_letters(
    sent: &BTreeMap<(i32, i64), Hostile>,
    brokers: &str,
    dead_letters: &str,
    n_partitions: i32,
    source_topic: &str,
) {
    let read = read_topic(brokers, dead_letters, n_partitions).await;
    let header = |record: &Record, name: &str| {
        String::from_utf8_lossy(record.headers.get(name).map_or(&[][..], |v| v)).into_owned()
    };
    let mut seen = Vec::new();
    for (dead_letter_partition, records) in &read {
        let mut last_offset: HashMap<i32, i64> = HashMap::new();
        for record in records {
            let partition: i32 = header(record, "orderstore.source.partition")
                .parse()
                .unwrap_or(-1);
            let offset: i64 = header(record, "orderstore.source.offset")
                .parse()
                .unwrap_or(-1);
            assert_eq!(partition % n_partitions, *dead_letter_partition);
            assert!(
                last_offset.insert(partition, offset).unwrap_or(-1) < offset,
                "partition {partition}'s rejects out of order at {offset}"
            );
            let original = sent
                .get(&(partition, offset))
                .unwrap_or_else(|| panic!("not a rejected record: {partition}/{offset}"));
            assert_eq!(record.value.as_deref(), Some(&original.value[..]));
            assert_eq!(record.key.as_deref(), Some(&original.key[..]));
            assert_eq!(record.headers.get("trace"), original.headers.get("trace"));
            assert_eq!(header(record, "orderstore.source.topic"), source_topic);
            assert!(!header(record, "orderstore.reason").is_empty());
            assert!(!header(record, "orderstore.rule").is_empty());
            assert!(!header(record, "orderstore.path").is_empty());
            assert!(header(record, "orderstore.rejected_at").contains('T'));
            seen.push((partition, offset));
        }
    }
    seen.sort_unstable();
    let expected: Vec<(i32, i64)> = sent.keys().copied().collect();
    assert_eq!(seen, expected, "every reject once");
}

/// The app on `bed`, with a dead-letter topic named after its topic, and that name.
async fn start_with_dead_letters(bed: &TestBed) -> (RunningApp, String) {
    let dead_letters = format!("{}-rejects", bed.topic);
    let app = RunningApp::start(settings(
        &bed.database,
        &bed.topic,
        &[("REJECTS_TOPIC", dead_letters.as_str())],
    ))
    .await;
    (app, dead_letters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reject_reaches_the_dead_letter_topic_once_in_order_with_its_headers() {
    let bed = TestBed::new(3).await;
    let sent = produce_hostile(&bed.partitions, 40).await;
    let (app, dead_letters) = start_with_dead_letters(&bed).await;
    bed.wait_until_caught_up().await;
    wait_for(
        "every reject published",
        Duration::from_secs(30),
        || async { pending(&bed.db).await == (sent.len() as i64, 0) },
    )
    .await;
    app.stop().await;
    let brokers = &services().kafka_brokers;
    check_dead_letters(&sent, brokers, &dead_letters, 4, &bed.topic).await;
    assert_eq!(
        count(&bed.db, "SELECT count(*) FROM orders").await,
        120,
        "the valid orders between them are stored"
    );
}

/// Batches of one partition are written by different batch writers and commit in any order;
/// the rejects must still go out in source order. Four batch writers take the records of three
/// partitions, hostile ones between valid orders, one at a time (so that the batch held up
/// below holds nothing else), and the batch of partition 0's first reject is held up in
/// PostgreSQL while the later ones commit: the test holds an open transaction that inserted
/// the same (topic, partition, offset), so the batch's insert waits on the unique key until
/// the test rolls back. Once every other reject is recorded, a hostile record on partition 3
/// shows when the publisher has had its chance: when it is published, no later reject of
/// partition 0 may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_go_out_in_source_order_while_batches_commit_out_of_order() {
    let bed = TestBed::new(4).await;
    create_tables(&bed.database, &bed.topic).await;
    let mut sent = produce_hostile(&bed.partitions[..3], 30).await;
    let (held_partition, held_offset) = sent
        .keys()
        .copied()
        .next()
        .unwrap_or_else(|| panic!("no hostile record was produced"));
    let blocker = connect_config(&bed.database).await;
    blocker
        .batch_execute(&format!(
            "BEGIN; \
             INSERT INTO rejected_records \
                 (kafka_topic, kafka_partition, kafka_offset, raw, reason) \
             VALUES ('{}', {held_partition}, {held_offset}, 'x', 'held by the test')",
            bed.topic
        ))
        .await
        .unwrap_or_else(|error| panic!("cannot hold the reject's key: {error}"));
    let dead_letters = format!("{}-rejects", bed.topic);
    let app = RunningApp::start(settings(
        &bed.database,
        &bed.topic,
        &[
            ("REJECTS_TOPIC", dead_letters.as_str()),
            ("HANDLERS", "4"),
            ("BATCH_SIZE", "1"),
            // The held batch keeps a connection. Its statement and lock timeouts are the TTL,
            // and it holds its lease row `FOR SHARE`, so the keeper's renewal (every third of
            // the TTL) would wait behind it, and every batch behind the renewal.
            ("DB_POOL_SIZE", "8"),
            ("LEASE_TTL", "120s"),
        ],
    ))
    .await;
    wait_for(
        "every reject but the held one recorded",
        Duration::from_secs(60),
        || async { pending(&bed.db).await.0 == sent.len() as i64 - 1 },
    )
    .await;

    let probe = Record {
        key: Some(b"probe".to_vec()),
        value: Some(b"{\"order_uid\": 3}".to_vec()),
        headers: BTreeMap::new(),
        timestamp: rskafka::chrono::Utc::now(),
    };
    let probe_offset = bed.partitions[3]
        .produce(vec![probe.clone()], Compression::NoCompression)
        .await
        .unwrap_or_else(|error| panic!("produce failed: {error}"))[0];
    sent.insert(
        (3, probe_offset),
        Hostile {
            value: probe.value.unwrap_or_default(),
            key: probe.key.unwrap_or_default(),
            headers: probe.headers,
        },
    );
    wait_for(
        "the reject of partition 3 published",
        Duration::from_secs(30),
        || async {
            count(
                &bed.db,
                "SELECT count(*) FROM rejected_records \
                 WHERE kafka_partition = 3 AND published_at IS NOT NULL",
            )
            .await
                == 1
        },
    )
    .await;
    let published_past_the_held_one = bed
        .db
        .query_one(
            "SELECT count(*) FROM rejected_records \
             WHERE kafka_partition = $1 AND kafka_offset > $2 AND published_at IS NOT NULL",
            &[&held_partition, &held_offset],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .get::<_, i64>(0);
    assert_eq!(
        published_past_the_held_one, 0,
        "rejects of partition {held_partition} after {held_offset} were published while it \
         was still on its way"
    );

    blocker
        .batch_execute("ROLLBACK")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    wait_for(
        "every reject published",
        Duration::from_secs(60),
        || async { pending(&bed.db).await == (sent.len() as i64, 0) },
    )
    .await;
    app.stop().await;
    let brokers = &services().kafka_brokers;
    check_dead_letters(&sent, brokers, &dead_letters, 4, &bed.topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_recorded_without_a_dead_letter_topic_are_published_once_it_is_set() {
    let bed = TestBed::new(3).await;
    let sent = produce_hostile(&bed.partitions, 10).await;
    // Without a dead-letter topic, a reject is recorded and stays pending.
    let app = RunningApp::start(settings(&bed.database, &bed.topic, &[])).await;
    bed.wait_until_caught_up().await;
    app.stop().await;
    assert_eq!(pending(&bed.db).await, (30, 30));

    let (app, dead_letters) = start_with_dead_letters(&bed).await;
    wait_for(
        "the pending rejects published",
        Duration::from_secs(30),
        || async { pending(&bed.db).await == (30, 0) },
    )
    .await;
    app.stop().await;
    let brokers = &services().kafka_brokers;
    check_dead_letters(&sent, brokers, &dead_letters, 4, &bed.topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_published_rejects_older_than_it() {
    let bed = TestBed::new(1).await;
    create_tables(&bed.database, &bed.topic).await;
    bed.db
        .batch_execute(&format!(
            "INSERT INTO rejected_records (kafka_topic, kafka_partition, kafka_offset, raw, reason, \
                                           published_at) \
             SELECT '{topic}', 0, n, 'x', 'r', CASE \
                 WHEN n < 1500 THEN now() - interval '2 days' \
                 WHEN n < 1600 THEN now() - interval '1 hour' \
                 ELSE NULL END \
             FROM generate_series(0, 1699) AS n; \
             INSERT INTO rejected_records (kafka_topic, kafka_partition, kafka_offset, raw, reason, \
                                           published_at) \
             VALUES ('another-topic', 0, 0, 'x', 'r', now() - interval '2 days')",
            topic = bed.topic
        ))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let database = orderstore_database(&bed.database, &bed.topic);
    let day = Duration::from_secs(24 * 3600);
    // In batches of 1,000: the 1,500 published two days ago go; the one of another topic,
    // the 100 published an hour ago and the 100 never published stay.
    assert_eq!(
        database.delete_published_rejects(day, 1000).await.ok(),
        Some(1000)
    );
    assert_eq!(
        database.delete_published_rejects(day, 1000).await.ok(),
        Some(500)
    );
    assert_eq!(
        database.delete_published_rejects(day, 1000).await.ok(),
        Some(0)
    );
    assert_eq!(
        count(&bed.db, "SELECT count(*) FROM rejected_records").await,
        201
    );
    assert_eq!(
        count(
            &bed.db,
            "SELECT count(*) FROM rejected_records WHERE published_at IS NULL"
        )
        .await,
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_rejects_survive_a_sigkill_and_a_broker_outage() {
    let broker_port = free_port();
    let proxy_port = free_port();
    let _broker = KillOnDrop(start_tansu(broker_port, proxy_port));
    let proxy = Proxy::start(proxy_port, broker_port).await;
    let brokers = format!("127.0.0.1:{proxy_port}");
    let database = create_database(&services().admin_url).await;
    let db = connect_config(&database).await;
    let topic = unique_name("orders");
    let partitions = create_topic(&kafka_client_at(&brokers).await, &topic, 3).await;
    let sent = produce_hostile(&partitions, 10).await;
    let dead_letters = format!("{topic}-rejects");
    let env = |dead_letter_topic: bool| {
        let mut env = binary_env(&database, &topic, http_port());
        env.retain(|(name, _)| name != "KAFKA_BROKERS");
        env.push(("KAFKA_BROKERS".into(), brokers.clone()));
        // One id throughout: each start takes back the leases the killed one held.
        env.push(("INSTANCE_ID".into(), "dlq".into()));
        if dead_letter_topic {
            env.push(("REJECTS_TOPIC".into(), dead_letters.clone()));
        }
        env
    };

    // Recorded by an instance without a dead-letter topic, which is then killed.
    let first = start_binary(&env(false), Stdio::null());
    wait_for("the rejects recorded", Duration::from_secs(60), || async {
        pending(&db).await == (30, 30)
    })
    .await;
    drop(first);

    // The broker is cut off: an instance with the dead-letter topic set cannot publish, and
    // is killed, once it has found the broker unreachable, while every reject is pending.
    proxy.cut().await;
    let log = LogFile::new("dead-letters-cut-off");
    let second = start_binary(&env(true), log.stdio());
    wait_for(
        "the second instance to find the broker cut off",
        Duration::from_secs(60),
        || async { log.text().contains("connecting to Kafka failed") },
    )
    .await;
    assert_eq!(pending(&db).await, (30, 30));
    drop(second);

    // The broker is back: the next instance publishes every reject, once, in order.
    proxy.restore().await;
    let third = start_binary(&env(true), Stdio::null());
    wait_for(
        "every reject published",
        Duration::from_secs(60),
        || async { pending(&db).await == (30, 0) },
    )
    .await;
    third.terminate();
    check_dead_letters(&sent, &brokers, &dead_letters, 4, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reject_routes_say_what_the_table_says_behind_the_token() {
    const TOKEN: &str = "reject-routes-token-0123456789";
    let bed = TestBed::new(3).await;
    let sent = produce_hostile(&bed.partitions, 10).await;
    let app = RunningApp::start(settings(
        &bed.database,
        &bed.topic,
        &[("HTTP_AUTH_TOKENS", TOKEN)],
    ))
    .await;
    bed.wait_until_caught_up().await;
    let port = app.http_port();
    let bearer = format!("Bearer {TOKEN}");
    let get = |path: String| {
        let bearer = bearer.clone();
        async move { http_with(port, "GET", &path, &[("Authorization", &bearer)]).await }
    };
    for path in ["/rejects", "/rejects/summary", "/rejects/1"] {
        assert_eq!(http(port, "GET", path).await.status, 401, "{path}");
    }

    // The summary: the table's count per kind.
    let summary = get("/rejects/summary".into()).await;
    assert_eq!(summary.status, 200);
    let summary = summary.json();
    assert_eq!(summary["total"], 30);
    assert_eq!(
        summary["pending"], 30,
        "no dead-letter topic: every reject pending"
    );
    let table: HashMap<String, i64> = bed
        .db
        .query(
            "SELECT reason_kind, count(*) FROM rejected_records GROUP BY 1",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let listed: HashMap<String, i64> = summary["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kind| {
            (
                kind["reason"].as_str().unwrap_or_default().to_string(),
                kind["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(listed, table);
    assert!(table.contains_key("not_json") && table.contains_key("wrong_type"));

    // Pages of 7, newest first, walked by their cursor, list every reject once.
    let mut walked = Vec::new();
    let mut path = "/rejects?limit=7".to_string();
    loop {
        let page = get(path.clone()).await.json();
        let rejects = page["rejects"].as_array().cloned().unwrap_or_default();
        assert!(rejects.len() <= 7);
        walked.extend(rejects.iter().map(|reject| {
            (
                reject["id"].as_i64().unwrap_or(0),
                reject["partition"].as_i64().unwrap_or(-1) as i32,
                reject["offset"].as_i64().unwrap_or(-1),
            )
        }));
        match page["next"].as_str() {
            Some(next) => path = format!("/rejects?limit=7&before={next}"),
            None => break,
        }
    }
    assert!(
        walked.windows(2).all(|pair| pair[0].0 > pair[1].0),
        "newest first"
    );
    let mut positions: Vec<(i32, i64)> = walked.iter().map(|(_, p, o)| (*p, *o)).collect();
    positions.sort_unstable();
    assert_eq!(positions, sent.keys().copied().collect::<Vec<_>>());

    // Filters.
    let partition_one = get("/rejects?partition=1&limit=1000".into()).await.json();
    let rejects = partition_one["rejects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rejects.len(), 10);
    assert!(rejects.iter().all(|reject| reject["partition"] == 1));
    let not_json = get("/rejects?reason=not_json".into()).await.json();
    let rejects = not_json["rejects"].as_array().cloned().unwrap_or_default();
    assert_eq!(rejects.len() as i64, table["not_json"]);
    assert!(rejects.iter().all(|reject| reject["reason"] == "not_json"));
    for bad in [
        "/rejects?limit=1001",
        "/rejects?partition=x",
        "/rejects?colour=red",
    ] {
        let answer = get(bad.into()).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.json()["error"].is_string());
    }

    // One reject whole: the record as it arrived.
    let (id, partition, offset) = walked[0];
    let one = get(format!("/rejects/{id}")).await;
    assert_eq!(one.status, 200);
    let one = one.json();
    let original = &sent[&(partition, offset)];
    assert_eq!(
        one["value_hex"].as_str().unwrap_or_default(),
        original
            .value
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(
        one["key"].as_str().map(str::as_bytes),
        Some(&original.key[..])
    );
    assert!(one["headers"].get("trace").is_some());
    assert_eq!(get("/rejects/999999".into()).await.status, 404);
    assert_eq!(get("/rejects/abc".into()).await.status, 400);

    // `orderstore rejects` says the same.
    let cli = |args: &[&str]| {
        let mut env = binary_env(&bed.database, &bed.topic, http_port());
        env.push(("HTTP_AUTH_TOKENS".into(), TOKEN.into()));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
            .arg("rejects")
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run orderstore rejects: {error}"));
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let summary = cli(&["summary"]);
    assert!(
        summary.starts_with("30 rejects of this topic, 30 not yet"),
        "{summary}"
    );
    for (kind, count) in &table {
        assert!(
            summary.lines().any(|line| line
                .split_whitespace()
                .take(2)
                .eq([kind.as_str(), &count.to_string()])),
            "{kind} {count} missing from:\n{summary}"
        );
    }
    let list = cli(&["list", "--limit", "1000"]);
    let listed_ids: Vec<i64> = list
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(
        listed_ids,
        walked.iter().map(|(id, _, _)| *id).collect::<Vec<_>>()
    );
    let shown = cli(&["show", &id.to_string(), "--hex"]);
    assert!(
        shown.contains(&format!("partition {partition}, offset {offset}")),
        "{shown}"
    );
    assert!(
        shown
            .trim_end()
            .ends_with(one["value_hex"].as_str().unwrap_or("?")),
        "{shown}"
    );
    app.stop().await;
}
