//! The `orderstore` binary: settings, logs, signals, and one of four commands. Everything
//! else is in the library, so tests build the same application.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use orderstore::app::{Application, StartError};
use orderstore::config::Settings;
use orderstore::events::Events;
use orderstore::fake_data::writer::{self, WriterOptions, WriterProgress};
use orderstore::shutdown::ShutdownManager;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// mimalloc: less time in malloc and free than glibc's allocator on the ingest path, and less
/// fragmentation for a store that holds a million small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A high-throughput order store: Kafka in, PostgreSQL and memory, HTTP out. Settings come
/// from the environment and `.env` (see README.md).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Produce random orders to KAFKA_TOPIC, creating the topic if it is missing.
    Produce {
        /// How many records to produce.
        #[arg(long)]
        count: u64,
        /// Records per second; 0 means as fast as the broker takes them.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Share of records that break the contract (0 to 1), of every kind it rejects.
        #[arg(long, default_value_t = 0.0)]
        invalid_ratio: f64,
        /// Producing tasks.
        #[arg(long, default_value_t = 4)]
        tasks: usize,
    },
    /// Exit 0 when the service on HTTP_ADDR answers /health/ready with 200 (for containers).
    Healthcheck,
    /// The rejected records of KAFKA_TOPIC, read from DATABASE_URL.
    Rejects {
        #[command(subcommand)]
        command: Option<orderstore::rejects_cli::RejectsCommand>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A missing .env is fine: every setting has a default.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            anyhow::bail!("cannot read .env: {error}");
        }
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("orderstore: {error}");
            std::process::exit(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Produce {
            count,
            rate,
            invalid_ratio,
            tasks,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&invalid_ratio),
                "--invalid-ratio must be from 0 to 1"
            );
            anyhow::ensure!(rate >= 0.0, "--rate must be 0 or more");
            let options = WriterOptions {
                tasks: tasks.max(1),
                rate,
                invalid_ratio,
                count: Some(count),
            };
            produce(settings, options).await
        }
        Command::Healthcheck => healthcheck(&settings),
        Command::Rejects { command } => {
            let command = command.unwrap_or(orderstore::rejects_cli::RejectsCommand::Summary);
            let printed = orderstore::rejects_cli::run(&settings, command).await?;
            std::io::stdout().write_all(printed.as_bytes())?;
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    orderstore::telemetry::init(&settings.log_level, settings.log_format);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone()).context("cannot install signal handlers")?;
    let application = match Application::build(settings, shutdown).await {
        Ok(application) => application,
        Err(StartError::Cancelled) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    application.run_until_stopped().await?;
    Ok(())
}

/// `orderstore produce`: a progress bar while producing, then the count and the rate.
async fn produce(settings: Settings, options: WriterOptions) -> anyhow::Result<()> {
    orderstore::telemetry::init("warn", settings.log_format);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone()).context("cannot install signal handlers")?;
    let events = Arc::new(Events::default());
    let client = orderstore::kafka::connect(&settings, &events, &shutdown)
        .await
        .context("stopped before Kafka answered")?;
    let partitions = orderstore::kafka::ensure_topic(&client, &settings.kafka_topic, &settings)
        .await
        .with_context(|| format!("cannot find or create topic {}", settings.kafka_topic))?;
    let producers =
        writer::partition_clients(&client, &settings.kafka_topic, &partitions, &shutdown)
            .await
            .context("stopped before the partitions answered")?;

    let total = options.count.unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} records, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = Arc::new(WriterProgress::default());
    let started = Instant::now();
    let manager = ShutdownManager::new(shutdown);
    let writers =
        writer::start_writers(&manager, producers, options, Arc::clone(&progress), events);
    while !writers.iter().all(|task| task.is_finished()) {
        bar.set_position(progress.produced());
        tokio::time::sleep(Duration::from_millis(100)).await;
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
        settings.kafka_topic,
        (valid + invalid) as f64 / seconds.max(1e-9)
    );
    anyhow::ensure!(
        valid + invalid == total,
        "stopped after {} of {total} records",
        valid + invalid
    );
    Ok(())
}

/// `orderstore healthcheck`: GET /health/ready on this machine's HTTP_ADDR port, over HTTPS
/// when the server speaks it (its own certificate is not checked: this asks itself).
fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], settings.http_addr.port()));
    let tcp = TcpStream::connect_timeout(&address, Duration::from_secs(3))
        .with_context(|| format!("nothing answers on {address}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut answer = Vec::new();
    if settings.http_tls.is_some() {
        let config = orderstore::tls::client_config(
            &orderstore::tls::Roots::System,
            orderstore::tls::Verification::None,
            None,
        )
        .map_err(anyhow::Error::msg)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let session = rustls::ClientConnection::new(config, name)?;
        let mut stream = rustls::StreamOwned::new(session, tcp);
        stream.write_all(request)?;
        // A server may close without TLS's close_notify; what arrived is the answer.
        if let Err(error) = stream.read_to_end(&mut answer) {
            anyhow::ensure!(!answer.is_empty(), error);
        }
    } else {
        let mut stream = tcp;
        stream.write_all(request)?;
        stream.read_to_end(&mut answer)?;
    }
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) == Some("200") {
        Ok(())
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        anyhow::bail!("not ready: {status_line} {body}")
    }
}

/// The first SIGINT or SIGTERM starts an orderly shutdown; a second one exits at once.
fn spawn_signal_handler(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        for round in 0.. {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if round == 0 {
                tracing::info!("signal received, stopping; a second signal exits at once");
                shutdown.cancel();
            } else {
                tracing::warn!("second signal received, exiting at once");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}
