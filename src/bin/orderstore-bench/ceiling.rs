//! PostgreSQL's ceiling: the orders a run would store, loaded by binary COPY over several
//! connections with the service's own encoder ([`encode_copy`]), each connection reserving its
//! ids from the sequence first, as a batch writer does.

use std::sync::Arc;

use futures_util::SinkExt;
use orderstore::order::ValidOrder;
use orderstore::store::postgres::copy::{encode_copy, COPY_ORDERS};
use orderstore::store::postgres::{Database, IncomingOrder, PostgresTls};

use crate::measure::connect;
use crate::Document;

/// A parsed order and the Kafka position it came from.
pub struct ParsedDocument {
    order: ValidOrder,
    partition: i32,
    offset: i64,
}

/// The orders orderstore would store for the documents, parsed before the clock starts: the
/// ceiling is PostgreSQL's work alone.
pub fn parse_documents(documents: &[Document]) -> Vec<ParsedDocument> {
    let now = chrono::Utc::now();
    documents
        .iter()
        .map(|document| ParsedDocument {
            order: ValidOrder::parse(&document.value, now, 1 << 20)
                .unwrap_or_else(|rejection| panic!("a generated order was rejected: {rejection}")),
            partition: document.partition,
            offset: document.offset,
        })
        .collect()
}

/// Binary COPY of the orders into the `orders` table of `config`'s database (created by the
/// service's own migration), split over `n_connections`.
pub async fn copy_orders(
    config: &tokio_postgres::Config,
    topic: &str,
    orders: Vec<ParsedDocument>,
    n_connections: usize,
) -> anyhow::Result<()> {
    Database::new(config.clone(), PostgresTls::prefer(), 1, topic)
        .migrate()
        .await?;
    let orders = Arc::new(orders);
    let share = orders.len().div_ceil(n_connections.max(1)).max(1);
    let mut copies = Vec::new();
    for start in (0..orders.len()).step_by(share) {
        let end = (start + share).min(orders.len());
        let client = connect(config).await?;
        let orders = Arc::clone(&orders);
        let topic = topic.to_string();
        copies.push(tokio::spawn(async move {
            let rows: Vec<IncomingOrder<'_>> = orders[start..end]
                .iter()
                .map(|parsed| IncomingOrder {
                    order: &parsed.order,
                    partition: parsed.partition,
                    offset: parsed.offset,
                })
                .collect();
            let n_rows = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            let ids: Vec<i64> = client
                .query(
                    "SELECT nextval(pg_get_serial_sequence('orders', 'id')) \
                     FROM generate_series(1, $1::int8)",
                    &[&n_rows],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let sink = client.copy_in(COPY_ORDERS).await?;
            futures_util::pin_mut!(sink);
            for chunk in encode_copy(&topic, &rows, &ids) {
                sink.feed(chunk).await?;
            }
            sink.finish().await?;
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for copy in copies {
        copy.await??;
    }
    Ok(())
}
