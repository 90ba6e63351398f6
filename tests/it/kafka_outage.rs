//! The broker unreachable for a few seconds in the middle of a stream: readers wait it out
//! with backoff and reconnect by themselves, nothing crashes and nothing is lost; the consumer
//! group mirror fails meanwhile, says so, and catches up by itself.
//!
//! The test runs its own tansu behind a TCP proxy (tansu advertises the proxy's port), and cuts
//! the proxy: every open connection drops and new ones are refused, as in a broker outage.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_is_waited_out_without_losing_orders() {
    let services = services();
    let broker_port = free_port();
    let proxy_port = free_port();
    let _broker = KillOnDrop(start_tansu(broker_port, proxy_port));
    let proxy = Proxy::start(proxy_port, broker_port).await;
    let brokers = format!("127.0.0.1:{proxy_port}");

    let database = create_database(&services.admin_url).await;
    let db = connect_config(&database).await;
    let topic = unique_name("orders");
    let kafka = kafka_client_at(&brokers).await;
    let partitions = create_topic(&kafka, &topic, 2).await;
    let orders = valid_orders(1_000);
    let (before, after) = orders.split_at(500);
    produce_spread(&partitions, before).await;

    let app = RunningApp::start(settings(&database, &topic, &[("KAFKA_BROKERS", &brokers)])).await;
    let port = app.http_port();
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;

    proxy.cut().await;
    // rskafka retries a broken connection inside one fetch until its deadline (8 s, see
    // `kafka/client.rs`), then the fetch fails, readiness names Kafka and the reader backs
    // off: once readiness says so, the readers have met the outage and are waiting it out.
    wait_for(
        "readiness to say Kafka is unreachable",
        Duration::from_secs(30),
        || async {
            let ready = http(port, "GET", "/health/ready").await;
            ready.status == 503 && ready.json()["kafka"] == "unreachable"
        },
    )
    .await;
    // The consumer group mirror fails too, says so on the status page, and retries.
    wait_for(
        "the status page to say the group commits fail",
        Duration::from_secs(30),
        || async {
            let status = http(port, "GET", "/status.json").await.json();
            status["consumer_group"]["ok"] == false
                && status["consumer_group"]["error"].as_str().is_some()
        },
    )
    .await;
    // Kafka is gone, the service is not: reads go on.
    let answer = http(port, "GET", &format!("/orders/uid/{}", before[0].0)).await;
    assert_eq!(answer.status, 200);
    assert!(
        !app.is_finished(),
        "the service stopped during the Kafka outage"
    );

    proxy.restore().await;
    produce_spread(&partitions, after).await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(90)).await;
    wait_for(
        "readiness to say Kafka answers again",
        Duration::from_secs(30),
        || async {
            let ready = http(port, "GET", "/health/ready").await;
            ready.status == 200 && ready.json()["kafka"] == "ok"
        },
    )
    .await;
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1_000);
    // The group mirror recovered by itself and holds every stored offset again.
    wait_for(
        "the group to hold the stored offsets again",
        Duration::from_secs(60),
        || group_shows_stored_offsets(port, "orderstore"),
    )
    .await;
    for (uid, _) in after {
        assert_eq!(
            http(port, "GET", &format!("/orders/uid/{uid}"))
                .await
                .status,
            200
        );
    }
    app.stop().await;
}
