//! The binary as a user runs it: `orderstore produce`, `orderstore healthcheck`, a bad setting
//! at start-up, and the writer built into the service.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn orderstore(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_writes_the_count_asked_for_and_reports_the_rate() {
    let topic = unique_name("produced");
    let brokers = services().kafka_brokers.clone();
    let output = orderstore(
        &[
            "produce",
            "--count",
            "1500",
            "--invalid-ratio",
            "0.2",
            "--tasks",
            "3",
        ],
        &[
            ("KAFKA_BROKERS", &brokers),
            ("KAFKA_TOPIC", &topic),
            ("KAFKA_PARTITIONS", "4"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("produced 1500 records"), "{stdout}");
    assert!(stdout.contains("records/s"), "{stdout}");

    // The topic was created with 4 partitions and holds every record.
    let kafka = kafka_client().await;
    let mut partitions = Vec::new();
    for partition in 0..4 {
        let client = kafka
            .partition_client(
                topic.as_str(),
                partition,
                rskafka::client::partition::UnknownTopicHandling::Retry,
            )
            .await
            .unwrap_or_else(|error| panic!("partition {partition}: {error}"));
        partitions.push(std::sync::Arc::new(client));
    }
    let marks = high_watermarks(&partitions).await;
    assert_eq!(marks.values().sum::<i64>(), 1500);
    assert!(
        marks.values().all(|mark| *mark > 0),
        "a partition got nothing: {marks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_start_up_with_its_name() {
    let output = orderstore(&[], &[("HANDLERS", "many"), ("MEMORY_MAX_AGE", "forever")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HANDLERS: expected an integer"), "{stderr}");
    assert!(
        stderr.contains("MEMORY_MAX_AGE: expected a duration"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_follows_readiness_and_the_built_in_writer_feeds_the_service() {
    let services = services();
    let database = create_database(&services.admin_url).await;
    let db = connect_config(&database).await;
    let topic = unique_name("orders");

    // Nothing listens yet: the health check fails.
    let port = http_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let output = orderstore(&["healthcheck"], &[("HTTP_ADDR", &addr)]);
    assert!(!output.status.success());

    let app = RunningApp::start(settings(
        &database,
        &topic,
        &[
            ("HTTP_ADDR", &addr),
            ("WRITER_ENABLED", "true"),
            ("WRITER_RATE", "400"),
            ("WRITER_TASKS", "2"),
            ("WRITER_INVALID_RATIO", "0.25"),
        ],
    ))
    .await;

    wait_for(
        "the writer's orders and rejects",
        Duration::from_secs(60),
        || async {
            count_if_exists(&db, "SELECT count(*) FROM orders").await >= 200
                && count_if_exists(&db, "SELECT count(*) FROM rejected_records").await >= 20
        },
    )
    .await;
    let output =
        tokio::task::spawn_blocking(move || orderstore(&["healthcheck"], &[("HTTP_ADDR", &addr)]))
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        output.status.success(),
        "healthcheck failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    app.stop().await;
}
