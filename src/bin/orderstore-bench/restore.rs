//! `restore`: how fast memory is restored from PostgreSQL, and what an order costs in memory.

use std::time::Instant;

use orderstore::config::Settings;
use orderstore::restore::{restore_partitions, sized_memory, RestoreLimits};
use orderstore::store::postgres::Database;

use crate::measure::connect;

/// Restores memory from `database`, which `fill` made, as an instance that takes every
/// partition at start-up does (sized, then loaded), and prints the restore's time, rate and
/// memory per order.
pub async fn restore(mut settings: Settings, database: &str) -> anyhow::Result<()> {
    settings.database.url.dbname(database);
    let limits = RestoreLimits {
        enabled: true,
        max_age: None,
        ..RestoreLimits::from_settings(&settings)
    };
    let checker = connect(&settings.database.url).await?;
    let row = checker
        .query_one(
            "SELECT count(*), coalesce(sum(octet_length(body::text)), 0)::int8 FROM orders",
            &[],
        )
        .await?;
    let (n_orders, _): (i64, i64) = (row.get(0), row.get(1));
    let resident_before = resident_bytes();
    let pool = Database::new(
        settings.database.url.clone(),
        settings.database.tls.clone(),
        settings.database.pool_size,
        &settings.kafka.topic,
    );
    let started = Instant::now();
    let memory = sized_memory(limits, &pool).await?;
    restore_partitions(limits, &pool, &memory, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let json_bytes: usize = memory.json_bytes();
    let held_bytes: usize = memory.held_json_bytes();
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
        "| JSON held ({:?}), per order | {:.0} bytes |",
        limits.compression,
        held_bytes as f64 / memory.len() as f64
    );
    println!(
        "| resident memory added, per order | {:.0} bytes |",
        resident as f64 / memory.len() as f64
    );
    println!(
        "| resident / JSON | {:.2} |",
        resident as f64 / json_bytes as f64
    );
    pool.close();
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
