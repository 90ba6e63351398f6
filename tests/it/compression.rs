//! `MEMORY_COMPRESSION=zstd` end to end: orders ingested and orders restored after a restart
//! are held compressed, and every one is served byte for byte as PostgreSQL stores it.

use std::time::Duration;

use crate::common::*;

const N_ORDERS: usize = 3_000;

/// Every order answers 200 with PostgreSQL's served text, and memory holds it compressed.
async fn served_as_stored(app: &RunningApp, db: &tokio_postgres::Client) {
    let rows = db
        .query("SELECT id, order_uid, body_text FROM orders", &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rows.len(), N_ORDERS);
    let memory = app.memory();
    // The orders taken before the first dictionary are compressed once it is trained, by the
    // batch that trained it, which may still be at it.
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    wait_for(
        "every order to be held compressed",
        Duration::from_secs(30),
        || async {
            ids.iter().all(|id| {
                memory
                    .get_by_id(*id)
                    .is_some_and(|order| order.is_compressed())
            })
        },
    )
    .await;
    for (index, row) in rows.iter().enumerate() {
        let (id, uid, text): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        let held = memory
            .get_by_id(id)
            .unwrap_or_else(|| panic!("order {id} is not in memory"));
        assert!(held.is_compressed(), "order {id} is held plain: {held:?}");
        // Every tenth over HTTP, by id and by uid; all of them from memory directly.
        assert_eq!(held.json().as_deref(), Some(text.as_bytes()));
        if index % 10 == 0 {
            let by_id = http(app.http_port(), "GET", &format!("/orders/{id}")).await;
            assert_eq!(by_id.status, 200);
            assert_eq!(by_id.body, text.as_bytes());
            let by_uid = http(app.http_port(), "GET", &format!("/orders/uid/{uid}")).await;
            assert_eq!(by_uid.body, text.as_bytes());
        }
    }
    let (held, served) = (memory.held_json_bytes(), memory.json_bytes());
    assert!(
        held * 3 < served,
        "memory holds {held} bytes for {served} bytes of JSON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_memory_serves_every_order_as_stored_before_and_after_a_restart() {
    let compressed = [("MEMORY_COMPRESSION", "zstd")];
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(2).await;
    produce_spread(&partitions, &valid_orders(N_ORDERS)).await;
    let app = RunningApp::start(settings(&database, &topic, &compressed)).await;
    wait_for(
        "the orders to be stored",
        Duration::from_secs(60),
        || async {
            count_if_exists(&db, "SELECT count(*) FROM orders").await == N_ORDERS as i64
                && app.memory().len() == N_ORDERS
        },
    )
    .await;
    served_as_stored(&app, &db).await;
    app.stop().await;

    // A restart restores them from PostgreSQL, compressed again.
    let app = RunningApp::start(settings(&database, &topic, &compressed)).await;
    app.restored().await;
    served_as_stored(&app, &db).await;
    app.stop().await;
}
