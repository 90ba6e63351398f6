//! `fill`: a database of generated orders, written the way orderstore writes them, for the
//! HTTP and restore benchmarks.

use std::time::Instant;

use anyhow::Context;
use orderstore::config::Settings;

use crate::ceiling::{copy_orders, parse_documents};
use crate::measure::{connect, create_database, settle};
use crate::scale_store::GrownDates;
use crate::Document;

/// Creates `database` and fills it with `n_orders` generated orders, created over time as
/// [`GrownDates`] says; writes their uids, in id order, to `uids_path`.
pub async fn fill(
    settings: &Settings,
    n_orders: u64,
    database: &str,
    uids_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let config = create_database(&settings.database.url, database).await?;
    let started = Instant::now();
    let mut rng = rand::rng();
    let dates = GrownDates::new(chrono::Utc::now(), n_orders);
    let documents: Vec<Document> = (0..n_orders)
        .map(|index| Document {
            partition: 0,
            offset: index as i64,
            value: orderstore::fake_data::random_order_json(&mut rng, dates.latest_for(index)).1,
        })
        .collect();
    copy_orders(
        &config,
        &settings.kafka.topic,
        parse_documents(&documents),
        2,
    )
    .await?;
    let client = connect(&config).await?;
    client.batch_execute("VACUUM ANALYZE orders").await?;
    // Leave nothing for the measurement that follows to pay for: dirty buffers written,
    // the kernel's dirty pages flushed. CHECKPOINT covers the whole cluster.
    settle(&client, None).await?;
    if let Some(path) = uids_path {
        let rows = client
            .query("SELECT order_uid FROM orders ORDER BY id", &[])
            .await?;
        let uids: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
        std::fs::write(path, uids.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let json_bytes: usize = documents.iter().map(|document| document.value.len()).sum();
    eprintln!(
        "filled {database}: {n_orders} orders, {:.0} bytes of JSON each, in {:.1} s",
        json_bytes as f64 / n_orders as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
