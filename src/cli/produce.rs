//! `orderstore produce`: random orders to the topic, with a progress bar, then the count and
//! the rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::events::Events;
use crate::fake_data::writer::{self, WriterOptions, WriterProgress};
use crate::shutdown::{cancel_on_signals, ShutdownManager};

/// How often the progress bar moves.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The writer's options from the command's flags, checked.
pub fn options(
    count: u64,
    rate: f64,
    invalid_ratio: f64,
    tasks: usize,
) -> anyhow::Result<WriterOptions> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&invalid_ratio),
        "--invalid-ratio must be from 0 to 1"
    );
    anyhow::ensure!(rate >= 0.0, "--rate must be 0 or more");
    Ok(WriterOptions {
        tasks: tasks.max(1),
        rate,
        invalid_ratio,
        count: Some(count),
    })
}

/// Produces `options.count` records to `KAFKA_TOPIC` (creating it if missing) and prints the
/// rate; fails if it stopped short (a signal, or the broker refusing).
pub async fn produce(settings: Settings, options: WriterOptions) -> anyhow::Result<()> {
    crate::telemetry::init("warn", settings.log.format);
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone()).context("cannot install signal handlers")?;
    let events = Arc::new(Events::default());
    let state = crate::state::ServiceState::default();
    let client = crate::kafka::connect(&settings, &events, &state, &shutdown)
        .await
        .context("stopped before Kafka answered")?;
    let partitions = crate::kafka::ensure_topic(&client, &settings.kafka.topic, &settings)
        .await
        .with_context(|| format!("cannot find or create topic {}", settings.kafka.topic))?;
    let producers =
        writer::partition_clients(&client, &settings.kafka.topic, &partitions, &shutdown)
            .await
            .context("stopped before the partitions answered")?;

    let total = options.count.unwrap_or(0);
    let bar = progress_bar(total);
    let progress = Arc::new(WriterProgress::default());
    let started = Instant::now();
    let manager = ShutdownManager::new(shutdown);
    let writers =
        writer::start_writers(&manager, producers, options, Arc::clone(&progress), events);
    while !writers.iter().all(|task| task.is_finished()) {
        bar.set_position(progress.produced());
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    if let Some(failure) = manager.take_failure() {
        return Err(failure.into());
    }
    bar.set_position(progress.produced());
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let valid = progress.valid.load(std::sync::atomic::Ordering::Relaxed);
    let invalid = progress.invalid.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "produced {} records ({valid} valid, {invalid} invalid) to {} in {seconds:.2} s: {:.0} records/s",
        valid + invalid,
        settings.kafka.topic,
        (valid + invalid) as f64 / seconds.max(1e-9)
    );
    anyhow::ensure!(
        valid + invalid == total,
        "stopped after {} of {total} records",
        valid + invalid
    );
    Ok(())
}

/// A bar of `total` records with the rate and the time left.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} records, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
