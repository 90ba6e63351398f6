//! The migrations bring a database made by an older orderstore to today's shape without losing
//! a row, each once, and a start on an up-to-date database takes no lock that writers would
//! wait for, or that would make it wait for them.

use std::time::Duration;

use crate::common::*;
use orderstore::store::postgres::schema::LATEST_VERSION;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_database_gets_body_text_filled_and_required() {
    let database = create_database(&services().admin_url).await;
    let db = connect_config(&database).await;
    // The shape of `orders` and `rejected_records` before body_text and raw_encoding.
    db.batch_execute(
        "CREATE TABLE orders (
             id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             order_uid       text        NOT NULL UNIQUE,
             date_created    timestamptz NOT NULL,
             body            jsonb       NOT NULL,
             kafka_topic     text        NOT NULL,
             kafka_partition integer     NOT NULL,
             kafka_offset    bigint      NOT NULL,
             stored_at       timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE rejected_records (
             id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             kafka_topic     text        NOT NULL,
             kafka_partition integer     NOT NULL,
             kafka_offset    bigint      NOT NULL,
             raw             bytea       NOT NULL,
             reason          text        NOT NULL,
             rejected_at     timestamptz NOT NULL DEFAULT now(),
             UNIQUE (kafka_topic, kafka_partition, kafka_offset)
         );
         INSERT INTO orders (order_uid, date_created, body, kafka_topic, kafka_partition, kafka_offset)
         VALUES ('old-1', now(), '{\"b\": [1, 2], \"a\": \"x\"}', 'orders', 0, 7);
         INSERT INTO rejected_records (kafka_topic, kafka_partition, kafka_offset, raw, reason)
         VALUES ('orders', 0, 8, '\\x00ff', '.: not JSON');",
    )
    .await
    .unwrap_or_else(|error| panic!("cannot make the old schema: {error}"));

    let store = orderstore_database(&database, "orders");
    for round in 0..2 {
        store
            .migrate()
            .await
            .unwrap_or_else(|error| panic!("migration {round} failed: {error}"));
    }
    let versions = db
        .query_one("SELECT count(*), max(version) FROM orderstore_schema", &[])
        .await
        .unwrap_or_else(|error| panic!("cannot read orderstore_schema: {error}"));
    assert_eq!(
        (versions.get::<_, i64>(0), versions.get::<_, i32>(1)),
        (i64::from(LATEST_VERSION), LATEST_VERSION),
        "each migration is recorded once"
    );

    let row = db
        .query_one(
            "SELECT body_text, body_text = body::text FROM orders WHERE order_uid = 'old-1'",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("cannot read the order: {error}"));
    let (text, same): (String, bool) = (row.get(0), row.get(1));
    assert_eq!(text, r#"{"a": "x", "b": [1, 2]}"#);
    assert!(same, "body_text is body::text");
    let nullable: String = db
        .query_one(
            "SELECT is_nullable FROM information_schema.columns \
             WHERE table_name = 'orders' AND column_name = 'body_text'",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("cannot read the column: {error}"))
        .get(0);
    assert_eq!(nullable, "NO", "body_text is required after the migration");
    // The restore plans on (date_created, id) alone: the older index on date_created is gone.
    let indexes: Vec<String> = db
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'orders' \
             AND indexdef LIKE '%date_created%'",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("cannot read the indexes: {error}"))
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        indexes,
        ["CREATE INDEX orders_date_created_id_idx ON public.orders USING btree (date_created, id)"]
    );
    let encoding: String = db
        .query_one("SELECT raw_encoding FROM rejected_records", &[])
        .await
        .unwrap_or_else(|error| panic!("cannot read the reject: {error}"))
        .get(0);
    assert_eq!(
        encoding, "bytes",
        "old rejects hold their bytes as they arrived"
    );
    let inserted = db
        .execute(
            "INSERT INTO orders (id, order_uid, date_created, body, kafka_topic, kafka_partition, \
             kafka_offset) VALUES (100, 'new-1', now(), '{}', 'orders', 0, 9)",
            &[],
        )
        .await;
    assert!(inserted.is_err(), "a row without body_text is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_does_not_wait_on_writers_when_nothing_changes() {
    let database = create_database(&services().admin_url).await;
    let store = orderstore_database(&database, "orders");
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("first migration failed: {error}"));
    // Another instance mid-batch: its transaction holds the locks writers and readers hold.
    let writer = connect_config(&database).await;
    writer
        .batch_execute(
            "BEGIN; LOCK TABLE orders IN ROW EXCLUSIVE MODE; \
             LOCK TABLE kafka_offsets IN ROW EXCLUSIVE MODE; \
             LOCK TABLE rejected_records IN ROW EXCLUSIVE MODE;",
        )
        .await
        .unwrap_or_else(|error| panic!("cannot open the writer's transaction: {error}"));
    let started = tokio::time::timeout(Duration::from_secs(10), store.migrate()).await;
    assert!(
        matches!(started, Ok(Ok(()))),
        "an up-to-date start waited or failed: {started:?}"
    );
    // A database from before the migrations were numbered, at today's shape: its first start
    // records the versions without altering (and so without locking) the live tables.
    let db = connect_config(&database).await;
    db.batch_execute("DROP TABLE orderstore_schema")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let upgraded = tokio::time::timeout(Duration::from_secs(10), store.migrate()).await;
    assert!(
        matches!(upgraded, Ok(Ok(()))),
        "the first numbered start waited or failed: {upgraded:?}"
    );
    assert_eq!(
        store.schema_version().await.unwrap_or_default(),
        LATEST_VERSION
    );
    writer
        .batch_execute("COMMIT")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_compressed_in_the_table_with_lz4() {
    let (app, db, orders) = app_with_stored_orders(200, &[]).await;
    let lz4: bool = db
        .query_one(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings \
             WHERE name = 'default_toast_compression'",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .get(0);
    assert!(
        lz4,
        "this PostgreSQL was built without lz4, which migration 9 needs to compress orders"
    );
    // Every generated order's row is above TOAST's 2 KB target with both forms, so at least
    // its largest value is compressed in place, with lz4 and never pglz.
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_column_compression(body) = 'lz4' \
                                       OR pg_column_compression(body_text) = 'lz4'), \
                    count(*) FILTER (WHERE pg_column_compression(body) = 'pglz' \
                                       OR pg_column_compression(body_text) = 'pglz'), \
                    count(*) \
             FROM orders",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (compressed, pglz, all): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(all, orders.len() as i64);
    assert_eq!(pglz, 0);
    assert_eq!(
        compressed, all,
        "{compressed} of {all} rows compressed with lz4"
    );
    // And they read back as they were written.
    let same: bool = db
        .query_one("SELECT bool_and(body_text::jsonb = body) FROM orders", &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .get(0);
    assert!(same);
    app.stop().await;
}
