//! `restore`: how fast memory is restored from PostgreSQL, and what an order costs in memory.

use std::time::Instant;

use orderstore::app::Application;
use orderstore::config::Settings;
use tokio_util::sync::CancellationToken;

use crate::measure::connect;

/// Starts orderstore on `database`, which `fill` made, and prints the restore's time, rate and
/// memory per order.
pub async fn restore(mut settings: Settings, database: &str) -> anyhow::Result<()> {
    settings.database_url.dbname(database);
    settings.memory_restore = true;
    settings.memory_max_age = None;
    settings.http_addr = "127.0.0.1:0".parse()?;
    settings.kafka_brokers = vec!["127.0.0.1:9".into()];
    let checker = connect(&settings.database_url).await?;
    let row = checker
        .query_one(
            "SELECT count(*), coalesce(sum(octet_length(body::text)), 0)::int8 FROM orders",
            &[],
        )
        .await?;
    let (n_orders, _): (i64, i64) = (row.get(0), row.get(1));
    let resident_before = resident_bytes();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let app = Application::build(settings, shutdown.clone()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let memory = app.memory();
    let json_bytes: usize = memory.json_bytes();
    let resident = resident_bytes().saturating_sub(resident_before);
    println!(
        "restore benchmark: {} orders in memory of {n_orders} stored",
        memory.len()
    );
    println!("| what | value |");
    println!("|---|---|");
    println!("| restore time | {seconds:.2} s |");
    println!(
        "| restore rate | {:.0} orders/s |",
        memory.len() as f64 / seconds
    );
    println!(
        "| JSON served, per order | {:.0} bytes |",
        json_bytes as f64 / memory.len() as f64
    );
    println!(
        "| resident memory added, per order | {:.0} bytes |",
        resident as f64 / memory.len() as f64
    );
    println!(
        "| resident / JSON | {:.2} |",
        resident as f64 / json_bytes as f64
    );
    shutdown.cancel();
    app.run_until_stopped().await?;
    Ok(())
}

/// This process's resident set size.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
