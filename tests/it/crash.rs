//! The `orderstore` binary killed with SIGKILL in the middle of ingesting thousands of orders,
//! then restarted, ends with every order stored exactly once; SIGTERM then stops it cleanly.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_restarts_and_stores_every_order_exactly_once() {
    const N_ORDERS: usize = 30_000;
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(4).await;
    let orders = valid_orders(N_ORDERS);
    produce_spread(&partitions, &orders).await;

    // Small batches and one handler make ingestion slow enough to kill it half-way.
    let mut env = binary_env(&database, &topic, http_port());
    env.extend([
        ("BATCH_SIZE".into(), "10".into()),
        ("HANDLERS".into(), "1".into()),
    ]);
    let mut first = start_binary(&env, Stdio::inherit());
    wait_for(
        "the first instance to store 3000 orders",
        Duration::from_secs(120),
        || async { count_if_exists(&db, "SELECT count(*) FROM orders").await >= 3000 },
    )
    .await;
    first
        .0
        .kill()
        .unwrap_or_else(|error| panic!("cannot kill the first instance: {error}"));
    let _ = first.0.wait();
    let stored_at_kill = count(&db, "SELECT count(*) FROM orders").await;
    assert!(
        stored_at_kill < N_ORDERS as i64,
        "the first instance finished before it was killed ({stored_at_kill} orders)"
    );

    let http_port = http_port();
    let mut env = binary_env(&database, &topic, http_port);
    env.push(("BATCH_SIZE".into(), "500".into()));
    let second = start_binary(&env, Stdio::inherit());
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(180)).await;

    let stored: Vec<String> = db
        .query("SELECT order_uid FROM orders", &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    let stored: HashSet<String> = stored.into_iter().collect();
    let missing: Vec<(usize, usize)> = orders
        .iter()
        .enumerate()
        .filter(|(_, (uid, _))| !stored.contains(uid))
        .map(|(index, _)| (index % partitions.len(), index / partitions.len()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} orders lost (partition, offset): {:?}; stored at kill: {stored_at_kill}",
        missing.len(),
        &missing[..missing.len().min(40)]
    );
    let produced: HashSet<String> = orders.iter().map(|(uid, _)| uid.clone()).collect();
    assert_eq!(stored, produced);
    let answer = http(http_port, "GET", &format!("/orders/uid/{}", orders[0].0)).await;
    assert_eq!(answer.status, 200);

    // SIGTERM: an orderly stop with exit status 0.
    second.terminate();
}
