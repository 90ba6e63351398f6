//! PostgreSQL stopped for a few seconds in the middle of a stream and started again: nothing is
//! lost, no offset moves past an order that is not durable, and ingestion resumes by itself.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_waited_out_without_losing_orders() {
    // This test stops its database server, so it always runs a cluster of its own.
    let cluster = PgCluster::start();
    let database = create_database(&cluster.admin_url()).await;
    let topic = unique_name("orders");
    let kafka = kafka_client().await;
    let partitions = create_topic(&kafka, &topic, 2).await;
    let orders = valid_orders(2_000);
    let (before, during) = orders.split_at(1_000);
    produce_spread(&partitions, before).await;

    let app = RunningApp::start(settings(&database, &topic, &[])).await;
    let port = app.http_port();
    let memory = app.memory();
    let offsets = app.offsets();
    let events = app.events();
    {
        let db = connect_config(&database).await;
        wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
    }
    assert_eq!(memory.len(), 1_000);

    let retries_before = events.counters().write_retries();
    cluster.stop_server();
    produce_spread(&partitions, during).await;
    // The outage has met the pipeline once every order produced during it was fetched (it is
    // in flight: registered and not durable) and the batch writers failed to write at least
    // five times: with the backoff doubling after each failure, they have by then waited out
    // over a second of outage, holding their records.
    wait_for(
        "the orders produced during the outage fetched, and their writes retried",
        Duration::from_secs(60),
        || {
            let positions = offsets.positions();
            let in_flight: usize = positions.iter().map(|p| p.in_flight).sum();
            let high_watermarks: i64 = positions.iter().map(|p| p.high_watermark).sum();
            let retries = events.counters().write_retries() - retries_before;
            async move { in_flight == during.len() && high_watermarks == 2_000 && retries >= 5 }
        },
    )
    .await;

    // While PostgreSQL is down: nothing new is durable, so nothing new is in memory and no
    // partition's committable offset has moved past the first thousand orders.
    assert_eq!(memory.len(), 1_000);
    let committable: i64 = offsets.positions().iter().map(|p| p.committable).sum();
    assert_eq!(committable, 1_000);
    // Reads from memory go on; a lookup that needs PostgreSQL says it is unavailable.
    let answer = http(port, "GET", &format!("/orders/uid/{}", before[0].0)).await;
    assert_eq!(answer.status, 200);
    let answer = http(port, "GET", "/orders/uid/not-in-memory").await;
    assert_eq!(answer.status, 503);
    assert!(answer.json()["error"].is_string());
    let ready = http(port, "GET", "/health/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["postgres"], "unreachable");
    assert_eq!(http(port, "GET", "/health/live").await.status, 200);

    cluster.start_server();
    let db = connect_config(&database).await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 2_000);
    for (uid, json) in &orders {
        let answer = http(port, "GET", &format!("/orders/uid/{uid}")).await;
        assert_eq!(answer.status, 200);
        let sent: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
        assert_eq!(answer.json(), sent);
    }
    app.stop().await;
}
