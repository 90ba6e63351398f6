//! The serving side of `scale`, each measure in a process of its own so that its memory is its
//! own: the restore (this benchmark's `restore` command, with `MEMORY_ORDERS_LIMIT` and
//! `MEMORY_COMPRESSION` set), and HTTP against the `orderstore` binary with the newest
//! orders in memory (1,000,000 unless told otherwise): wrk by uid at full speed, oha by id at a constant rate, and oha
//! at 1,000 requests/s on orders that are not in memory, which PostgreSQL answers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use orderstore::config::Settings;

use crate::instances::{connection_string, free_port};
use crate::measure::connect;
use crate::poll::HttpPool;

/// What a restore took and cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreFigures {
    /// Orders per second.
    pub rate: f64,
    /// Seconds.
    pub seconds: f64,
    /// Resident memory added per order, in bytes.
    pub resident_per_order: f64,
}

/// Restores the newest `limit` orders of `database` in a child process, with `compression`.
pub fn restore(database: &str, limit: u64, compression: &str) -> anyhow::Result<RestoreFigures> {
    let output = Command::new(std::env::current_exe()?)
        .args(["restore", "--database", database])
        .env("MEMORY_ORDERS_LIMIT", limit.to_string())
        .env("MEMORY_MAX_AGE", "0")
        .env("MEMORY_COMPRESSION", compression)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the restore benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the restore benchmark failed: {text}");
    }
    let value = |row: &str| -> anyhow::Result<f64> {
        text.lines()
            .find(|line| line.starts_with(&format!("| {row} |")))
            .and_then(|line| line.split('|').nth(2))
            .and_then(|cell| cell.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .with_context(|| format!("no {row:?} in the restore benchmark's table:\n{text}"))
    };
    Ok(RestoreFigures {
        rate: value("restore rate")?,
        seconds: value("restore time")?,
        resident_per_order: value("resident memory added, per order")?,
    })
}

/// HTTP figures at one size.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpFigures {
    /// wrk by uid: requests per second.
    pub by_uid_rate: f64,
    /// wrk by uid: p99 in milliseconds.
    pub by_uid_p99_ms: f64,
    /// oha by id at [`HIT_RATE`]: p99 in milliseconds.
    pub by_id_p99_ms: f64,
    /// oha at [`MISS_RATE`] on orders not in memory: p99 in milliseconds; `None` when every
    /// order is in memory.
    pub miss_p99_ms: Option<f64>,
}

/// The constant rate of the lookups by id.
pub const HIT_RATE: u32 = 5_000;
/// The constant rate of the lookups that miss memory.
pub const MISS_RATE: u32 = 1_000;

/// Runs `orderstore` on `database` with the newest `in_memory` orders in memory and
/// measures HTTP; `work` holds the request files.
pub async fn http(
    settings: &Settings,
    database: &tokio_postgres::Config,
    in_memory: u64,
    work: &Path,
) -> anyhow::Result<HttpFigures> {
    let client = connect(database).await?;
    let newest = client
        .query(
            "SELECT id, order_uid FROM orders ORDER BY date_created DESC LIMIT $1",
            &[&(in_memory as i64)],
        )
        .await?;
    let uids: Vec<String> = newest.iter().map(|row| row.get(1)).collect();
    let uids_file = work.join("uids");
    std::fs::write(&uids_file, uids.join("\n") + "\n")?;
    let hits: Vec<i64> = newest.iter().map(|row| row.get(0)).step_by(10).collect();
    let misses: Vec<i64> = client
        .query(
            "SELECT id FROM (SELECT id FROM orders ORDER BY date_created DESC OFFSET $1) older \
             ORDER BY random() LIMIT 100000",
            &[&(in_memory as i64)],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    drop(client);

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let write_urls = |name: &str, ids: &[i64]| -> anyhow::Result<PathBuf> {
        let path = work.join(name);
        let urls: Vec<String> = ids.iter().map(|id| format!("{base}/orders/{id}")).collect();
        std::fs::write(&path, urls.join("\n") + "\n")?;
        Ok(path)
    };
    let hits_file = write_urls("hits", &hits)?;
    let misses_file = write_urls("misses", &misses)?;

    let binary = std::env::current_exe()?.with_file_name("orderstore");
    let mut service = Command::new(binary)
        .env("DATABASE_URL", connection_string(database))
        .env("KAFKA_TOPIC", &settings.kafka.topic)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("MEMORY_ORDERS_LIMIT", in_memory.to_string())
        .env("MEMORY_MAX_AGE", "0")
        .env("KAFKA_GROUP_ID", "")
        // Serving only: nothing of the topic is read (its batch was measured and removed).
        .env("KAFKA_START_OFFSET", "latest")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start orderstore")?;
    let figures = async {
        wait_ready(&format!("127.0.0.1:{port}")).await?;
        let scripts = std::env::current_dir()?.join("scripts/bench");
        let wrk = Command::new("wrk")
            .args(["-t2", "-c100", "-d10s", "--latency", "-s"])
            .arg(scripts.join("random-uid.lua"))
            .arg(&base)
            .env("UIDS", &uids_file)
            .output()
            .context("cannot run wrk (scripts/bench-scale installs it)")?;
        let wrk = String::from_utf8_lossy(&wrk.stdout).into_owned();
        let by_id_p99_ms = oha_p99_ms(&hits_file, HIT_RATE)?;
        let miss_p99_ms = if misses.is_empty() {
            None
        } else {
            Some(oha_p99_ms(&misses_file, MISS_RATE)?)
        };
        anyhow::Ok(HttpFigures {
            by_uid_rate: wrk_rate(&wrk).with_context(|| format!("wrk said:\n{wrk}"))?,
            by_uid_p99_ms: wrk_p99_ms(&wrk).with_context(|| format!("wrk said:\n{wrk}"))?,
            by_id_p99_ms,
            miss_p99_ms,
        })
    }
    .await;
    // SIGTERM: an orderly stop releases the leases, so the next size's ingest need not wait
    // for them to expire.
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    let _ = service.wait();
    figures
}

async fn wait_ready(address: &str) -> anyhow::Result<()> {
    let pool = HttpPool::new(address.to_string());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(600) {
        if matches!(pool.get("/health/ready").await, Ok(200)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("orderstore was not ready within 10 minutes")
}

/// oha at `rate` requests/s for 10 s over the URLs of `file` (100 connections, latency
/// corrected): p99 in milliseconds.
fn oha_p99_ms(file: &Path, rate: u32) -> anyhow::Result<f64> {
    let output = Command::new("oha")
        .args(["--no-tui", "-z", "10s", "-c", "100", "--latency-correction"])
        .args([
            "-q",
            &rate.to_string(),
            "--output-format",
            "json",
            "--urls-from-file",
        ])
        .arg(file)
        .output()
        .context("cannot run oha (scripts/bench-scale installs it)")?;
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("oha said: {}", String::from_utf8_lossy(&output.stdout)))?;
    let p99 = answer["latencyPercentiles"]["p99"]
        .as_f64()
        .with_context(|| format!("no p99 in oha's answer: {answer}"))?;
    Ok(p99 * 1000.0)
}

fn wrk_rate(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
}

/// wrk's 99th percentile (with `--latency`), in milliseconds.
fn wrk_p99_ms(output: &str) -> Option<f64> {
    let cell = output
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))?
        .trim();
    let (number, unit) = cell.split_at(cell.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_figures_are_read() {
        let output = "  Latency Distribution\n     50%  520.00us\n     99%    7.35ms\n\
                      Requests/sec:  83822.11\n";
        assert_eq!(wrk_rate(output), Some(83822.11));
        assert_eq!(wrk_p99_ms(output), Some(7.35));
        assert_eq!(wrk_p99_ms("     99%  900.00us\n"), Some(0.9));
    }
}
