//! End to end against real PostgreSQL and a real Kafka-protocol broker: orders produced with
//! rskafka come out of HTTP and PostgreSQL as the contract says; a second instance on the same
//! database serves the same ids and re-inserts nothing.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use orderstore::order::UncheckedOrder;
use serde_json::{json, Value};

/// Invalid records, each with the start of the reason it must be rejected with.
fn invalid_records() -> Vec<(Option<Vec<u8>>, &'static str)> {
    let canonical: Value = serde_json::from_str(CANONICAL).unwrap_or(Value::Null);
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut doc = canonical.clone();
        doc["order_uid"] = json!(unique_name("bad"));
        change(&mut doc);
        Some(serde_json::to_vec(&doc).unwrap_or_default())
    };
    let mut trailing = CANONICAL.as_bytes().to_vec();
    trailing.extend_from_slice(b"garbage");
    vec![
        (
            Some(vec![0xde, 0xad, 0xbe, 0xef, 0xff]),
            ".: not valid UTF-8",
        ),
        (Some(b"{\"order_uid\": \"x\",".to_vec()), ". : EOF"),
        (Some(b"[]".to_vec()), ".: invalid type"),
        (Some(b"\"an order\"".to_vec()), ".: invalid type"),
        (Some(Vec::new()), ".: empty record"),
        (None, ".: empty record"),
        (Some(trailing), ".: trailing"),
        (Some(vec![b'x'; 100_000]), ".: record is larger"),
        (
            edit(&|d| d["payment"]["amount"] = json!(1817.0)),
            "payment.amount:",
        ),
        (
            edit(&|d| d["delivery"]["email"] = json!("no-at.example.com")),
            "delivery.email:",
        ),
        (
            edit(&|d| d["delivery"]["phone"] = json!("12345")),
            "delivery.phone:",
        ),
        (
            edit(&|d| d["items"][0]["total_price"] = json!(1)),
            "items[0].total_price:",
        ),
        (edit(&|d| d["items"] = json!([])), "items:"),
        (
            edit(&|d| d["payment"]["currency"] = json!("usd")),
            "payment.currency:",
        ),
        (edit(&|d| d["order_uid"] = json!("has space")), "order_uid:"),
        (
            edit(&|d| d["date_created"] = json!("2999-01-01T00:00:00Z")),
            "date_created:",
        ),
        (edit(&|d| d["sm_id"] = Value::Null), "sm_id:"),
        (edit(&|d| d["hacker"] = json!("<script>")), "hacker:"),
        (
            edit(&|d| d["items"][0]["sale"] = json!(101)),
            "items[0].sale:",
        ),
        (edit(&|d| d["entry"] = json!("bad\u{0}nul")), "entry:"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_flow_from_kafka_to_http_and_postgres() {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(4).await;

    // The canonical order, 300 generated ones spread over the partitions, the canonical order
    // again (a resend: counted, not stored), and the invalid records.
    let mut valid: Vec<(String, Vec<u8>)> = vec![(
        "b563feb7b2b84b6test".to_string(),
        CANONICAL.as_bytes().to_vec(),
    )];
    valid.extend(valid_orders(300));
    // Strings that JSON escapes, and characters it does not, must come back byte for byte.
    let mut awkward: Value = serde_json::from_str(CANONICAL).unwrap_or(Value::Null);
    awkward["order_uid"] = json!("awkward-strings_1");
    awkward["delivery"]["name"] = json!("Zoë \"Q\" O'Brien \\ \u{1}\t\n\r\u{8}\u{c}\u{1f} \u{7f}");
    awkward["delivery"]["address"] = json!("<script>alert(1)</script> / 😀 日本 \u{202e}rtl");
    awkward["items"][0]["name"] = json!("</td><img src=x onerror=alert(1)>");
    valid.push((
        "awkward-strings_1".to_string(),
        serde_json::to_vec(&awkward).unwrap_or_default(),
    ));
    for (index, (_, json)) in valid.iter().enumerate() {
        produce(&partitions[index % 4], vec![Some(json.clone())]).await;
    }
    produce(&partitions[3], vec![Some(CANONICAL.as_bytes().to_vec())]).await;
    let mut expected_rejects = HashMap::new();
    for (index, (value, reason)) in invalid_records().into_iter().enumerate() {
        let partition = &partitions[index % 4];
        let offsets = produce(partition, vec![value]).await;
        expected_rejects.insert((partition.partition(), offsets[0]), reason);
    }

    let app = RunningApp::start(settings(
        &database,
        &topic,
        &[("MAX_RECORD_BYTES", "65536")],
    ))
    .await;
    let port = app.http_port();
    let counters = app.events();
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;

    // Every valid order is in PostgreSQL once and is served by id and by uid, both forms.
    assert_eq!(
        count(&db, "SELECT count(*) FROM orders").await,
        valid.len() as i64
    );
    for (uid, json) in &valid {
        let sent: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
        let row = db
            .query_one(
                "SELECT id, body::text, body_text FROM orders WHERE order_uid = $1",
                &[uid],
            )
            .await
            .unwrap_or_else(|error| panic!("order {uid} is not in PostgreSQL: {error}"));
        let id: i64 = row.get(0);
        let body: Value = serde_json::from_str(row.get(1)).unwrap_or(Value::Null);
        assert_eq!(body, sent, "PostgreSQL holds a different order for {uid}");
        // The served form: the producer's order, compact, its fields in the contract's order
        // (serde_json writing the contract's structs), whatever order the producer used.
        let stored_text: &str = row.get(2);
        let contract_order: UncheckedOrder = serde_json::from_slice(json)
            .unwrap_or_else(|error| panic!("order {uid} is valid: {error}"));
        assert_eq!(
            stored_text,
            serde_json::to_string(&contract_order).unwrap_or_default(),
            "body_text of {uid} is not the compact form in the contract's order"
        );
        for path in [
            format!("/orders/{id}"),
            format!("/orders?id={id}"),
            format!("/orders/uid/{uid}"),
            format!("/orders?order_uid={uid}"),
        ] {
            let answer = http(port, "GET", &path).await;
            assert_eq!(answer.status, 200, "GET {path}");
            assert_eq!(
                answer.headers.get("x-order-id"),
                Some(&id.to_string()),
                "GET {path}"
            );
            assert_eq!(
                answer.headers.get("content-type").map(String::as_str),
                Some("application/json"),
                "GET {path}"
            );
            assert_eq!(
                answer
                    .headers
                    .get("x-content-type-options")
                    .map(String::as_str),
                Some("nosniff"),
                "GET {path}"
            );
            assert_eq!(answer.json(), sent, "GET {path} served a different order");
            // The served bytes are body_text's, so they stay the same after a restart, when
            // they come from PostgreSQL.
            assert_eq!(
                String::from_utf8_lossy(&answer.body),
                stored_text,
                "GET {path} differs from body_text"
            );
        }
    }
    assert_eq!(counters.counters().stored(), valid.len() as u64);
    assert_eq!(counters.counters().duplicates(), 1);

    // Every invalid record is in rejected_records with its bytes and a reason naming the path.
    assert_eq!(
        counters.counters().rejected(),
        expected_rejects.len() as u64
    );
    let rejects = db
        .query(
            "SELECT kafka_partition, kafka_offset, reason, length(raw) FROM rejected_records \
             WHERE kafka_topic = $1",
            &[&topic],
        )
        .await
        .unwrap_or_else(|error| panic!("cannot read rejects: {error}"));
    assert_eq!(rejects.len(), expected_rejects.len());
    for row in rejects {
        let key: (i32, i64) = (row.get(0), row.get(1));
        let reason: String = row.get(2);
        let expected = expected_rejects
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected reject at {key:?}: {reason}"));
        let (path, words) = expected.split_once(':').unwrap_or((expected, ""));
        assert!(
            reason.starts_with(&format!("{}:", path.trim())) && reason.contains(words.trim()),
            "record at {key:?} rejected with {reason:?}, expected {expected:?}"
        );
    }

    // Errors are JSON with the right status; nothing answers 500.
    for (path, status) in [
        ("/orders/0", 400),
        ("/orders/-1", 400),
        ("/orders/abc", 400),
        ("/orders/99999999999999999999", 400),
        ("/orders/999999", 404),
        ("/orders?id=999999", 404),
        ("/orders?id=x", 400),
        ("/orders?id=1&order_uid=a", 400),
        ("/orders", 400),
        ("/orders?colour=red", 400),
        ("/orders/uid/no-such-order", 404),
        ("/orders?order_uid=no-such-order", 404),
        ("/orders/uid/bad%20uid", 400),
        // Keys are percent-decoded as a router would: these ask for existing-looking keys.
        ("/orders/uid/no%2Dsuch-order", 404),
        ("/orders/%39%39%39%39%39%39", 404),
        ("/orders/%zz", 400),
        ("/orders/uid/a%2", 400),
        ("/orders/1/2", 404),
        ("/orders/uid/", 404),
        ("/orders?order_uid=%3Cscript%3E", 400),
        ("/nothing/here", 404),
    ] {
        let answer = http(port, "GET", path).await;
        assert_eq!(answer.status, status, "GET {path}");
        assert!(
            answer.json()["error"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "GET {path} has no error text"
        );
    }
    assert_eq!(http(port, "POST", "/orders/1").await.status, 405);
    assert_eq!(http(port, "DELETE", "/orders/uid/abc").await.status, 405);
    assert_eq!(http(port, "POST", "/nothing/here").await.status, 404);

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_serves_the_same_ids_and_stores_nothing_twice() {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(3).await;
    let orders = valid_orders(200);
    for (index, (_, json)) in orders.iter().enumerate() {
        produce(&partitions[index % 3], vec![Some(json.clone())]).await;
    }

    // First instance: ingest everything, then stop.
    let first = RunningApp::start(settings(&database, &topic, &[])).await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
    first.stop().await;
    let ids: HashMap<String, i64> = db
        .query("SELECT order_uid, id FROM orders", &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(ids.len(), orders.len());

    // Second instance: it takes every partition and restores their orders before it is
    // ready; it resumes at the stored offsets.
    // Then a third, with the stored offsets deleted, replays the whole topic: every order is a
    // counted duplicate and nothing is inserted.
    for replay in [false, true] {
        if replay {
            db.execute("DELETE FROM kafka_offsets", &[])
                .await
                .unwrap_or_else(|error| panic!("{error}"));
        }
        let app = RunningApp::start(settings(&database, &topic, &[])).await;
        app.restored().await;
        assert_eq!(app.memory().len(), orders.len(), "memory was not restored");
        let port = app.http_port();
        let counters = app.events();
        wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
        for (uid, id) in &ids {
            let answer = http(port, "GET", &format!("/orders/uid/{uid}")).await;
            assert_eq!(answer.status, 200);
            assert_eq!(answer.headers.get("x-order-id"), Some(&id.to_string()));
        }
        assert_eq!(
            count(&db, "SELECT count(*) FROM orders").await,
            orders.len() as i64
        );
        assert_eq!(counters.counters().stored(), 0);
        let expected_duplicates = if replay { orders.len() as u64 } else { 0 };
        assert_eq!(counters.counters().duplicates(), expected_duplicates);
        app.stop().await;
    }

    // With room for 50, a restore loads exactly the 50 newest by date_created, also over a
    // pool of one connection.
    let newest: Vec<i64> = db
        .query(
            "SELECT id FROM orders ORDER BY date_created DESC, id DESC LIMIT 50",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    let app = RunningApp::start(settings(
        &database,
        &topic,
        &[("MEMORY_ORDERS_LIMIT", "50"), ("DB_POOL_SIZE", "1")],
    ))
    .await;
    app.restored().await;
    let memory = app.memory();
    assert_eq!(memory.len(), 50);
    for id in &newest {
        assert!(
            memory.get_by_id(*id).is_some(),
            "order {id} is not restored"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_evicted_from_memory_are_still_served_from_postgres() {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(1).await;
    let orders = valid_orders(50);
    produce(
        &partitions[0],
        orders.iter().map(|(_, json)| Some(json.clone())).collect(),
    )
    .await;

    let app = RunningApp::start(settings(
        &database,
        &topic,
        &[("MEMORY_ORDERS_LIMIT", "10"), ("SWEEP_INTERVAL", "50ms")],
    ))
    .await;
    let port = app.http_port();
    let memory = app.memory();
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
    wait_for(
        "the sweeper to apply the limit",
        Duration::from_secs(10),
        || async { memory.len() == 10 },
    )
    .await;
    for (uid, json) in &orders {
        let answer = http(port, "GET", &format!("/orders?order_uid={uid}")).await;
        assert_eq!(answer.status, 200);
        let sent: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
        assert_eq!(answer.json(), sent);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_offsets_past_the_end_of_a_recreated_topic_restart_from_its_beginning() {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(2).await;
    let orders = valid_orders(40);
    produce_spread(&partitions, &orders).await;
    // Offsets as a previous life of the topic left them: far past its end now.
    create_tables(&database, &topic).await;
    db.execute(
        "INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset) \
         VALUES ($1, 0, 5000), ($1, 1, 5000)",
        &[&topic],
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));

    let app = RunningApp::start(settings(&database, &topic, &[])).await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 40);
    app.stop().await;
}
