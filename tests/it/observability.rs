//! What an operator sees: `/metrics` scraped and compared with what was sent, and the health
//! endpoints. The service runs as the binary, in a process of its own: metrics are
//! process-wide, and in this test process other tests' instances would count too.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use orderstore::fake_data::{invalid_record_of_kind, INVALID_KINDS};

/// Parses Prometheus text into `name{labels}` -> value.
fn scrape(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_string(), value.parse().ok()?)))
        .collect()
}

fn sum_of(metrics: &HashMap<String, f64>, name: &str) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| *series == name || series.starts_with(&format!("{name}{{")))
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_tell_what_happened() {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(3).await;
    let valid = valid_orders(120);
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    let invalid: Vec<Vec<u8>> = INVALID_KINDS
        .iter()
        .map(|kind| invalid_record_of_kind(kind, &mut rng, now))
        .collect();
    let mut values: Vec<Option<Vec<u8>>> =
        valid.iter().map(|(_, json)| Some(json.clone())).collect();
    values.extend(invalid.iter().cloned().map(Some));
    values.push(Some(valid[0].1.clone()));
    for (index, partition) in partitions.iter().enumerate() {
        produce(
            partition,
            values.iter().skip(index).step_by(3).cloned().collect(),
        )
        .await;
    }

    let port = http_port();
    let mut env = binary_env(&database, &topic, port);
    env.extend([
        ("MEMORY_ORDERS_LIMIT".into(), "100".into()),
        ("SWEEP_INTERVAL".into(), "100ms".into()),
    ]);
    let instance = start_binary(&env, Stdio::inherit());
    wait_for("readiness", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && http(port, "GET", "/health/ready").await.status == 200
    })
    .await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;

    let live = http(port, "GET", "/health/live").await;
    assert_eq!(live.status, 200);
    let ready = http(port, "GET", "/health/ready").await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.json()["postgres"], "ok");
    assert_eq!(ready.json()["kafka"], "ok");

    for (uid, _) in valid.iter().take(7) {
        assert_eq!(
            http(port, "GET", &format!("/orders/uid/{uid}"))
                .await
                .status,
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(http(port, "GET", "/orders/abc").await.status, 400);
    }
    // The gauges are set every second and the sweeper runs every 100 ms: wait until the
    // observer has seen the sweep and the caught-up partitions.
    let scraped = || async {
        let answer = http(port, "GET", "/metrics").await;
        assert_eq!(answer.status, 200);
        String::from_utf8_lossy(&answer.body).to_string()
    };
    wait_for(
        "the gauges to show the sweep and no lag",
        Duration::from_secs(30),
        || async {
            let metrics = scrape(&scraped().await);
            metrics.get("orderstore_orders_in_memory") == Some(&100.0)
                && metrics.contains_key("orderstore_consumer_lag_records{partition=\"2\"}")
                && sum_of(&metrics, "orderstore_consumer_lag_records") == 0.0
        },
    )
    .await;
    let text = scraped().await;
    let metrics = scrape(&text);
    let n_sent = values.len() as f64;
    assert_eq!(
        sum_of(&metrics, "orderstore_records_consumed_total"),
        n_sent,
        "{text}"
    );
    assert_eq!(
        sum_of(&metrics, "orderstore_orders_stored_total"),
        valid.len() as f64
    );
    assert_eq!(sum_of(&metrics, "orderstore_orders_duplicate_total"), 1.0);
    assert_eq!(
        sum_of(&metrics, "orderstore_records_rejected_total"),
        invalid.len() as f64
    );
    assert!(
        metrics.contains_key("orderstore_records_rejected_total{reason=\"not_utf8\"}"),
        "{text}"
    );
    assert!(
        metrics.contains_key("orderstore_records_rejected_total{reason=\"field_rule\"}"),
        "{text}"
    );
    assert_eq!(
        sum_of(&metrics, "orderstore_batch_size_records_sum"),
        n_sent
    );
    assert!(sum_of(&metrics, "orderstore_postgres_write_seconds_count") >= 1.0);
    assert!(
        metrics.contains_key("orderstore_batch_processing_seconds_bucket{le=\"+Inf\"}"),
        "{text}"
    );
    assert_eq!(
        metrics.get("orderstore_orders_in_memory"),
        Some(&100.0),
        "{text}"
    );
    assert_eq!(
        metrics.get("orderstore_evictions_total{cause=\"count\"}"),
        Some(&(valid.len() as f64 - 100.0))
    );
    assert_eq!(sum_of(&metrics, "orderstore_consumer_lag_records"), 0.0);
    assert!(
        metrics.contains_key("orderstore_consumer_lag_records{partition=\"2\"}"),
        "{text}"
    );
    assert_eq!(metrics.get("orderstore_channel_records"), Some(&0.0));
    assert_eq!(
        metrics.get(
            "orderstore_http_requests_total{route=\"/orders/uid/{order_uid}\",status=\"200\"}"
        ),
        Some(&7.0),
        "{text}"
    );
    assert_eq!(
        metrics.get("orderstore_http_requests_total{route=\"/orders/{id}\",status=\"400\"}"),
        Some(&3.0),
        "{text}"
    );
    assert!(metrics.contains_key(
        "orderstore_http_request_duration_seconds_count{route=\"/orders/uid/{order_uid}\"}"
    ));

    instance.terminate();
}
