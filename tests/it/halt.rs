//! `ON_REJECT=halt` against real PostgreSQL and tansu: the first rejected record of a
//! partition is recorded and stops that partition before it (its stored offset never passes
//! it, nothing after it is stored), other partitions go on, readiness names the partition,
//! offset and reason; a restart halts there again, and after `orderstore rejects skip` the
//! partition resumes past that record.


use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_stops_exactly_one_partition_at_its_reject_and_skip_resumes_it() {
    let bed = TestBed::new(2).await;
    // Partition 0: two orders, a hostile record at offset 2, two more orders.
    // Partition 1: five orders.
    let orders = valid_orders(9);
    let mut values: Vec<Option<Vec<u8>>> = orders[..2].iter().map(|o| Some(o.1.clone())).collect();
    values.push(Some(b"{\"order_uid\": 7}".to_vec()));
    values.extend(orders[2..4].iter().map(|o| Some(o.1.clone())));
    let offsets = produce(&bed.partitions[0], values).await;
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    produce(
        &bed.partitions[1],
        orders[4..].iter().map(|o| Some(o.1.clone())).collect(),
    )
    .await;
    let stored = |uids: &[(String, Vec<u8>)]| {
        let db = &bed.db;
        let uids: Vec<String> = uids.iter().map(|(uid, _)| uid.clone()).collect();
        async move {
            db.query_one(
                "SELECT count(*) FROM orders WHERE order_uid = ANY($1)",
                &[&uids],
            )
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .get::<_, i64>(0)
        }
    };
    let halting = [("ON_REJECT", "halt")];

    for run in ["first", "restart"] {
        let app = RunningApp::start(settings(&bed.database, &bed.topic, &halting)).await;
        let port = app.http_port();
        wait_for(
            "partition 1 stored and partition 0 halted",
            Duration::from_secs(60),
            || async {
                let offsets = stored_offsets(&bed.db, &bed.topic).await;
                offsets.get(&1) == Some(&5) && app.events().halted_at(0) == Some(2)
            },
        )
        .await;
        // Give the halted partition time to (wrongly) move on.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let offsets = stored_offsets(&bed.db, &bed.topic).await;
        assert!(
            offsets.get(&0).is_none_or(|offset| *offset <= 2),
            "{run}: partition 0's offset passed its reject: {offsets:?}"
        );
        assert_eq!(stored(&orders[..2]).await, 2, "{run}: before the reject");
        assert_eq!(stored(&orders[2..4]).await, 0, "{run}: after the reject");
        assert_eq!(stored(&orders[4..]).await, 5, "{run}: the other partition");
        assert_eq!(
            count(
                &bed.db,
                "SELECT count(*) FROM rejected_records WHERE kafka_offset = 2"
            )
            .await,
            1
        );
        let ready = http(port, "GET", "/health/ready").await;
        assert_eq!(ready.status, 503, "{run}");
        let halted = &ready.json()["halted"][0];
        assert_eq!(halted["partition"], 0);
        assert_eq!(halted["offset"], 2);
        assert!(
            halted["reason"]
                .as_str()
                .is_some_and(|reason| reason.starts_with("order_uid: ")),
            "{halted}"
        );
        app.stop().await;
    }

    // An operator lets the record pass; the next start resumes the partition past it.
    let mut env = binary_env(&bed.database, &bed.topic, http_port());
    env.push(("ON_REJECT".into(), "halt".into()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["rejects", "skip", "--partition", "0", "--offset", "2"])
        .envs(env.clone())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"));
    assert!(output.status.success(), "{output:?}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["rejects", "skip", "--partition", "0", "--offset", "3"])
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"));
    assert!(
        !refused.status.success(),
        "a skip of a record that is no reject"
    );

    let app = RunningApp::start(settings(&bed.database, &bed.topic, &halting)).await;
    bed.wait_until_caught_up().await;
    assert_eq!(stored(&orders).await, 9);
    assert_eq!(app.events().halted_at(0), None);
    wait_for("ready", Duration::from_secs(10), || async {
        http(app.http_port(), "GET", "/health/ready").await.status == 200
    })
    .await;
    app.stop().await;
}
