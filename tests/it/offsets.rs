//! The stored positions in PostgreSQL (`kafka_offsets`): a database of an older orderstore,
//! whose `next_offset` was a fetch start, gets `fetch_from` filled from it; a row written by
//! hand without `fetch_from` (or with one past `next_offset`) resumes at `next_offset`; a
//! position is stored only under the lease it was read under.

use crate::common::*;
use orderstore::offsets::{OffsetToStore, StoredOffset};
use orderstore::store::postgres::schema::LATEST_VERSION;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_offsets_resume_where_they_did_and_hand_written_ones_at_next_offset() {
    let database = create_database(&services().admin_url).await;
    let db = connect_config(&database).await;
    let store = orderstore_database(&database, "orders");
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("migration failed: {error}"));
    // Back to the shape of version 7, with two partitions' offsets stored by it.
    db.batch_execute(
        "ALTER TABLE kafka_offsets DROP COLUMN fetch_from;
         DELETE FROM orderstore_schema WHERE version > 7;
         INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset)
         VALUES ('orders', 0, 47), ('orders', 1, 5);",
    )
    .await
    .unwrap_or_else(|error| panic!("cannot make the older shape: {error}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("migration failed: {error}"));
    assert_eq!(
        store.schema_version().await.unwrap_or_default(),
        LATEST_VERSION
    );
    // Rows written by hand: without fetch_from, and with one past next_offset.
    db.batch_execute(
        "INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset)
         VALUES ('orders', 2, 100);
         INSERT INTO kafka_offsets (kafka_topic, kafka_partition, next_offset, fetch_from)
         VALUES ('orders', 3, 10, 20);",
    )
    .await
    .unwrap_or_else(|error| panic!("cannot write offsets by hand: {error}"));
    let loaded = store
        .load_offsets()
        .await
        .unwrap_or_else(|error| panic!("cannot load the offsets: {error}"));
    assert_eq!(loaded.len(), 4);
    assert_eq!(loaded[&0], StoredOffset::at(47), "an older fetch start");
    assert_eq!(loaded[&1], StoredOffset::at(5));
    assert_eq!(loaded[&2], StoredOffset::at(100), "no fetch_from");
    assert_eq!(
        loaded[&3],
        StoredOffset::at(10),
        "fetch_from past next_offset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_is_stored_whole_and_only_under_its_lease() {
    let database = create_database(&services().admin_url).await;
    let db = connect_config(&database).await;
    let store = orderstore_database(&database, "orders");
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("migration failed: {error}"));
    db.batch_execute(
        "INSERT INTO partition_leases (kafka_topic, kafka_partition, owner, epoch, expires_at)
         VALUES ('orders', 0, 'me', 3, now() + interval '1 hour'),
                ('orders', 1, 'someone-else', 4, now() + interval '1 hour');",
    )
    .await
    .unwrap_or_else(|error| panic!("cannot make the leases: {error}"));
    let halted = StoredOffset {
        next_offset: 50,
        fetch_from: 47,
    };
    let offsets = [
        OffsetToStore {
            partition: 0,
            offset: halted,
            epoch: 3,
        },
        OffsetToStore {
            partition: 1,
            offset: StoredOffset::at(9),
            epoch: 3,
        },
    ];
    let stored = store
        .store_offsets("me", &offsets)
        .await
        .unwrap_or_else(|error| panic!("cannot store the offsets: {error}"));
    assert_eq!(
        stored,
        offsets[..1],
        "only the partition whose lease is held"
    );
    let loaded = store
        .load_offsets()
        .await
        .unwrap_or_else(|error| panic!("cannot load the offsets: {error}"));
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[&0], halted);
}
