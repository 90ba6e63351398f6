//! `ON_REJECT=halt` against real PostgreSQL and tansu: the first rejected record of a
//! partition is recorded and stops that partition before it (its stored `next_offset` is
//! exactly that record's offset, reading resumes at a record batch boundary before it, nothing
//! after it is stored), other partitions go on, readiness names the partition, offset and
//! reason; a restart reads only the halting record and what follows again and halts there
//! again, and after `orderstore rejects skip` the partition resumes past that record.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// Where partition 0's record batches start: each produce request is one record batch. The
/// last one holds three orders, the hostile record at offset 50 and two more orders, so any
/// fetch that brings the hostile record starts at 47 or before.
const BATCH_STARTS: [usize; 7] = [0, 10, 20, 30, 40, 47, 53];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_stops_exactly_one_partition_at_its_reject_and_skip_resumes_it() {
    let bed = TestBed::new(2).await;
    // Partition 0: fifty orders, a hostile record at offset 50 and two more orders, in the
    // record batches of `BATCH_STARTS`. Partition 1: five orders.
    let orders = valid_orders(57);
    let hostile = b"{\"order_uid\": 7}".to_vec();
    let value = |offset: usize| match offset {
        0..50 => Some(orders[offset].1.clone()),
        50 => Some(hostile.clone()),
        _ => Some(orders[offset - 1].1.clone()),
    };
    for bounds in BATCH_STARTS.windows(2) {
        let offsets = produce(
            &bed.partitions[0],
            (bounds[0]..bounds[1]).map(value).collect(),
        )
        .await;
        assert_eq!(offsets.first().copied(), Some(bounds[0] as i64));
    }
    produce(
        &bed.partitions[1],
        (52..57)
            .map(|index| Some(orders[index].1.clone()))
            .collect(),
    )
    .await;
    let stored = |range: std::ops::Range<usize>| {
        let db = &bed.db;
        let uids: Vec<String> = orders[range].iter().map(|(uid, _)| uid.clone()).collect();
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
    let fetch_from = || async {
        bed.db
            .query_one(
                "SELECT fetch_from FROM kafka_offsets \
                 WHERE kafka_topic = $1 AND kafka_partition = 0",
                &[&bed.topic],
            )
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .get::<_, i64>(0)
    };
    let halting = [("ON_REJECT", "halt")];
    let halted_offsets = HashMap::from([(0, 50), (1, 5)]);

    // The first run reads every record; the restart only the halting record and the two after
    // it (the records before it, fetched again from the batch boundary, are dropped).
    for (run, n_consumed) in [("first", 58), ("restart", 3)] {
        let app = RunningApp::start(settings(&bed.database, &bed.topic, &halting)).await;
        let port = app.http_port();
        let state = app.state();
        let events = app.events();
        wait_for(
            "partition 1 stored and partition 0 halted at exactly its reject",
            Duration::from_secs(60),
            || async {
                stored_offsets(&bed.db, &bed.topic).await == halted_offsets
                    && state.halted_at(0) == Some(50)
            },
        )
        .await;
        let ready = http(port, "GET", "/health/ready").await;
        assert_eq!(ready.status, 503, "{run}");
        let halted = &ready.json()["halted"][0];
        assert_eq!(halted["partition"], 0);
        assert_eq!(halted["offset"], 50);
        assert!(
            halted["reason"]
                .as_str()
                .is_some_and(|reason| reason.starts_with("order_uid: ")),
            "{halted}"
        );
        // An orderly stop drains the batch writers and stores the last offsets: whatever the
        // halted partition's records after the reject did, it shows now.
        app.stop().await;
        assert_eq!(
            stored_offsets(&bed.db, &bed.topic).await,
            halted_offsets,
            "{run}: a halted partition's offset is exactly its reject"
        );
        let resume_at = fetch_from().await;
        assert!(
            resume_at <= 47 && BATCH_STARTS.contains(&(resume_at as usize)),
            "{run}: reading resumes at the start of a record batch before the reject's, \
             not at {resume_at}"
        );
        assert_eq!(events.counters().consumed(), n_consumed, "{run}");
        assert_eq!(stored(0..50).await, 50, "{run}: before the reject");
        assert_eq!(stored(50..52).await, 0, "{run}: after the reject");
        assert_eq!(stored(52..57).await, 5, "{run}: the other partition");
        assert_eq!(
            count(
                &bed.db,
                "SELECT count(*) FROM rejected_records WHERE kafka_offset = 50"
            )
            .await,
            1
        );
    }

    // An operator lets the record pass; the next start resumes the partition past it.
    let mut env = binary_env(&bed.database, &bed.topic, http_port());
    env.push(("ON_REJECT".into(), "halt".into()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["rejects", "skip", "--partition", "0", "--offset", "50"])
        .envs(env.clone())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"));
    assert!(output.status.success(), "{output:?}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["rejects", "skip", "--partition", "0", "--offset", "51"])
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
    assert_eq!(stored(0..57).await, 57);
    assert_eq!(app.state().halted_at(0), None);
    wait_for("ready", Duration::from_secs(10), || async {
        http(app.http_port(), "GET", "/health/ready").await.status == 200
    })
    .await;
    app.stop().await;
    assert_eq!(
        fetch_from().await,
        53,
        "nothing in flight: reading resumes at the end"
    );
}
