//! Rejected records end up in `rejected_records`, all of them, whatever they hold: a flood of
//! hostile records is kept whole while the log grows by a bounded number of lines, and a
//! record whose bytes PostgreSQL refuses is kept in hex instead of only in a log line.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_hostile_records_is_kept_whole_in_a_few_log_lines() {
    const N_HOSTILE: usize = 10_000;
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(3).await;
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    let hostile: Vec<Option<Vec<u8>>> = (0..N_HOSTILE)
        .map(|_| Some(orderstore::fake_data::invalid_record(&mut rng, now).1))
        .collect();
    for (index, partition) in partitions.iter().enumerate() {
        let share: Vec<Option<Vec<u8>>> = hostile
            .iter()
            .skip(index)
            .step_by(partitions.len())
            .cloned()
            .collect();
        for chunk in share.chunks(1000) {
            produce(partition, chunk.to_vec()).await;
        }
    }

    let log_path = std::env::temp_dir().join(format!("{}.log", unique_name("flood")));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    let mut env = binary_env(&database, &topic, http_port());
    env.retain(|(name, _)| name != "LOG_LEVEL");
    env.push(("LOG_LEVEL".into(), "info".into()));
    let instance = start_binary(&env, Stdio::from(log));
    wait_for(
        "the binary to store its first rejects",
        Duration::from_secs(60),
        || async { count_if_exists(&db, "SELECT count(*) FROM rejected_records").await > 0 },
    )
    .await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(120)).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM rejected_records").await,
        N_HOSTILE as i64,
        "every hostile record is kept"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 0);
    instance.terminate();

    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<&str> = text.lines().collect();
    let summaries = lines
        .iter()
        .filter(|line| line.contains("records rejected in the last"))
        .count();
    assert!(summaries >= 1, "no rejection summary was logged:\n{text}");
    assert!(
        lines.len() < 60,
        "{} log lines for {N_HOSTILE} hostile records:\n{text}",
        lines.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_whose_bytes_postgres_refuses_is_kept_in_hex() {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(1).await;
    // The tables exist before the service starts, so that a trigger can stand for what
    // PostgreSQL may refuse: a data exception (SQLSTATE 22000) on bytes holding "poison".
    create_tables(&database, &topic).await;
    db.batch_execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF position('poison'::bytea IN NEW.raw) > 0 THEN
                 RAISE EXCEPTION 'these bytes are refused' USING ERRCODE = 'data_exception';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON rejected_records
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await
    .unwrap_or_else(|error| panic!("cannot create the trigger: {error}"));

    let orders = valid_orders(2);
    let poison = b"poison \x00\xff not an order".to_vec();
    let offsets = produce(
        &partitions[0],
        vec![
            Some(orders[0].1.clone()),
            Some(poison.clone()),
            Some(b"plain garbage".to_vec()),
            Some(orders[1].1.clone()),
        ],
    )
    .await;

    let app = RunningApp::start(settings(&database, &topic, &[])).await;
    wait_until_caught_up(&db, &topic, &partitions, Duration::from_secs(60)).await;

    assert_eq!(
        count(&db, "SELECT count(*) FROM orders").await,
        2,
        "both orders stored"
    );
    let rows = db
        .query(
            "SELECT kafka_offset, raw, raw_encoding, reason FROM rejected_records \
             ORDER BY kafka_offset",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("cannot read the rejects: {error}"));
    assert_eq!(rows.len(), 2, "both rejects are kept");
    let (offset, raw, encoding, reason): (i64, Vec<u8>, String, String) = (
        rows[0].get(0),
        rows[0].get(1),
        rows[0].get(2),
        rows[0].get(3),
    );
    assert_eq!(offset, offsets[1]);
    assert_eq!(encoding, "hex");
    let expected_hex: String = poison.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(String::from_utf8_lossy(&raw), expected_hex);
    assert!(reason.contains("refused"), "{reason}");
    let (offset, raw, encoding): (i64, Vec<u8>, String) =
        (rows[1].get(0), rows[1].get(1), rows[1].get(2));
    assert_eq!(offset, offsets[2]);
    assert_eq!(encoding, "bytes");
    assert_eq!(raw, b"plain garbage");
    assert_eq!(app.events().counters().rejected(), 2);
    app.stop().await;
}
