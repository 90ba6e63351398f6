//! The migrations bring a database made by an older orderstore to today's shape without losing
//! a row.

mod common;

use common::*;

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
