//! The broker unreachable for a few seconds in the middle of a stream: readers wait it out
//! with backoff and reconnect by themselves, nothing crashes and nothing is lost.
//!
//! The test runs its own tansu behind a TCP proxy (tansu advertises the proxy's port), and cuts
//! the proxy: every open connection drops and new ones are refused, as in a broker outage.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// A TCP proxy on 127.0.0.1:`port` to `target`, which can be cut and restored.
struct Proxy {
    port: u16,
    target: u16,
    running: Mutex<Option<CancellationToken>>,
}

impl Proxy {
    async fn start(port: u16, target: u16) -> Arc<Proxy> {
        let proxy = Arc::new(Proxy {
            port,
            target,
            running: Mutex::new(None),
        });
        proxy.restore().await;
        proxy
    }

    /// Listens again and forwards new connections.
    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|error| panic!("the proxy cannot listen on {}: {error}", self.port));
        let cut = CancellationToken::new();
        *self.running.lock().await = Some(cut.clone());
        let target = self.target;
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cut.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let cut = cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
    }

    /// Drops every connection and stops listening.
    async fn cut(&self) {
        if let Some(cut) = self.running.lock().await.take() {
            cut.cancel();
        }
    }
}

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
    tokio::time::sleep(Duration::from_secs(4)).await;
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
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1_000);
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
