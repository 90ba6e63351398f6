//! A batch fenced by a lost lease, against real PostgreSQL: nothing of it is written, it is
//! written again without the lost partition's records, and its rejected records are counted
//! once (when their rows are committed), also under `ON_REJECT=halt`, where the halting
//! record is written as its reject on the second write and halts its partition once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use orderstore::events::Events;
use orderstore::ingest::{run_batch_writer, IngestContext};
use orderstore::kafka::KafkaRecord;
use orderstore::offsets::{OffsetTracker, StoredOffset};
use orderstore::rejects::halt::{HaltPolicy, OnReject};
use orderstore::store::memory::MemoryStore;

/// The instance the batch writer runs as.
const INSTANCE: &str = "fenced-batch-test";

/// What one fenced batch left behind.
struct Outcome {
    events: Arc<Events>,
    state: Arc<orderstore::state::ServiceState>,
    tracker: Arc<OffsetTracker>,
    db: tokio_postgres::Client,
}

/// Runs one batch writer over one batch: partition 0 (held by this instance at epoch 1) has
/// a hostile record at offset 0 and an order at offset 1; partition 1 has an order read
/// under epoch 1, but its lease moved to another instance at epoch 2, so the first write is
/// fenced.
async fn write_a_fenced_batch(on_reject: OnReject) -> Outcome {
    let database = create_database(&services().admin_url).await;
    let db = connect_config(&database).await;
    let topic = unique_name("orders");
    create_tables(&database, &topic).await;
    db.execute(
        "INSERT INTO partition_leases (kafka_topic, kafka_partition, owner, epoch, expires_at) \
         VALUES ($1, 0, $2, 1, now() + interval '1 hour'), \
                ($1, 1, 'another-instance', 2, now() + interval '1 hour')",
        &[&topic, &INSTANCE],
    )
    .await
    .unwrap_or_else(|error| panic!("cannot make the leases: {error}"));

    let orders = valid_orders(2);
    let record = |partition: i32, offset: i64, value: &[u8]| KafkaRecord {
        partition,
        offset,
        epoch: 1,
        value: Some(value.to_vec()),
        key: None,
        headers: BTreeMap::new(),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(10);
    for kafka_record in [
        record(0, 0, b"{\"order_uid\": 7}"),
        record(0, 1, &orders[0].1),
        record(1, 0, &orders[1].1),
    ] {
        sender
            .send(kafka_record)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }
    // Closed: the batch writer returns once it has written what the channel holds.
    drop(sender);

    let events = Arc::new(Events::default());
    let state = Arc::new(orderstore::state::ServiceState::default());
    let tracker = Arc::new(OffsetTracker::new());
    tracker.start_partition(0, StoredOffset::at(0), None, 1);
    tracker.register_fetch(0, 0, 2, [0, 1]);
    let context = Arc::new(IngestContext {
        receiver: tokio::sync::Mutex::new(receiver),
        batch_size: 10,
        max_record_bytes: 1 << 20,
        database: orderstore_database(&database, &topic),
        memory: Arc::new(MemoryStore::new()),
        tracker: Arc::clone(&tracker),
        events: Arc::clone(&events),
        state: Arc::clone(&state),
        instance: INSTANCE.to_string(),
        lease_ttl: Duration::from_secs(10),
        halt: HaltPolicy {
            on_reject,
            approved: HashSet::new(),
        },
    });
    tokio::time::timeout(Duration::from_secs(60), run_batch_writer(context))
        .await
        .unwrap_or_else(|_| panic!("the batch writer did not finish its one batch"));
    Outcome {
        events,
        state,
        tracker,
        db,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_batch_counts_its_rejected_record_once() {
    let Outcome {
        events,
        tracker,
        db,
        ..
    } = write_a_fenced_batch(OnReject::Skip).await;
    assert_eq!(events.counters().rejected(), 1, "counted once");
    assert_eq!(events.counters().stored(), 1, "partition 0's order");
    assert_eq!(count(&db, "SELECT count(*) FROM rejected_records").await, 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM orders WHERE kafka_partition = 1").await,
        0,
        "nothing of the lost partition"
    );
    assert_eq!(tracker.positions()[0].committable, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_batch_under_halt_records_its_halting_reject_once() {
    let Outcome {
        events,
        state,
        tracker,
        db,
    } = write_a_fenced_batch(OnReject::Halt).await;
    assert_eq!(events.counters().rejected(), 1, "counted once");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM rejected_records WHERE kafka_partition = 0 AND kafka_offset = 0"
        )
        .await,
        1,
        "the halting record is kept as its reject"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(state.halted_at(0), Some(0));
    assert_eq!(state.halted_partitions().len(), 1);
    let position = tracker.positions()[0];
    assert_eq!((position.committable, position.in_flight), (0, 2));
}
