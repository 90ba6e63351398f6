//! The command line: `orderstore [serve | produce | healthcheck | rejects | top | targets]`. `main.rs`
//! parses it into a [`Cli`] and hands it to [`run`], which reads the settings once and runs the
//! command; each command, with what only it needs (the producer's progress bar, the
//! health-check client, top's screen), lives in a file of its own here.

mod healthcheck;
mod produce;
mod serve;
mod targets;
mod top;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::rejects::cli::RejectsCommand;

/// A high-throughput order store: Kafka in, PostgreSQL and memory, HTTP out. Settings come
/// from the environment and `.env` (see README.md).
#[derive(Debug, Parser)]
#[command(name = "orderstore", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
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
        command: Option<RejectsCommand>,
    },
    /// The status page in a terminal: GET /status.json every interval (q or Ctrl-C quits).
    Top {
        /// The service's base URL [default: this machine's HTTP_ADDR port, https with
        /// HTTP_TLS_CERT_FILE].
        #[arg(long)]
        url: Option<String>,
        /// The bearer token [default: ORDERSTORE_TOKEN, else the first of HTTP_AUTH_TOKENS].
        #[arg(long)]
        token: Option<String>,
        /// A PEM file of the CA that signed the server's certificate [default: system roots].
        #[arg(long)]
        ca_file: Option<String>,
        /// How often the screen refreshes, such as 1s or 500ms.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Print one frame as plain text and exit: 0 when fetched, 1 with the reason if not.
        #[arg(long)]
        once: bool,
    },
    /// Request targets for a load test (vegeta, oha, wrk), made of orders stored in
    /// DATABASE_URL for KAFKA_TOPIC.
    Targets {
        /// How many targets, each a different order.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// Which route each target asks: /orders/{id}, /orders/uid/{order_uid}, or both in turn.
        #[arg(long, value_enum, default_value_t = targets::TargetsBy::Mixed)]
        by: targets::TargetsBy,
        /// The service's base URL [default: this machine's HTTP_ADDR port, https with
        /// HTTP_TLS_CERT_FILE].
        #[arg(long)]
        url: Option<String>,
        /// vegeta's http format (with the first of HTTP_AUTH_TOKENS as a header), or one URL
        /// a line (for oha --urls-from-file and wrk).
        #[arg(long, value_enum, default_value_t = targets::TargetsFormat::Vegeta)]
        format: targets::TargetsFormat,
    },
}

/// Exit code of a start refused for its settings, apart from a failure while running (1).
const BAD_SETTINGS: u8 = 2;

/// Reads `.env` and the settings, then runs the command. A bad setting prints one line naming
/// every bad variable and exits with 2, before anything starts.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
            return Ok(ExitCode::from(BAD_SETTINGS));
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::serve(settings).await?,
        Command::Produce {
            count,
            rate,
            invalid_ratio,
            tasks,
        } => {
            let options = produce::options(count, rate, invalid_ratio, tasks)?;
            produce::produce(settings, options).await?;
        }
        Command::Healthcheck => healthcheck::healthcheck(&settings)?,
        Command::Rejects { command } => {
            let command = command.unwrap_or(RejectsCommand::Summary);
            let printed = crate::rejects::cli::run(&settings, command).await?;
            std::io::Write::write_all(&mut std::io::stdout(), printed.as_bytes())?;
        }
        Command::Top {
            url,
            token,
            ca_file,
            interval,
            once,
        } => {
            let options = top::TopOptions {
                url,
                token,
                ca_file,
                interval,
                once,
            };
            return top::top(&settings, options).await;
        }
        Command::Targets {
            count,
            by,
            url,
            format,
        } => {
            let options = targets::TargetsOptions {
                count,
                by,
                url,
                format,
            };
            return targets::targets(&settings, options).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// This machine's service, for the commands that ask it (`top`, `targets`): `HTTP_ADDR`'s port
/// on loopback, over HTTPS when the server speaks it.
fn local_service_url(settings: &Settings) -> String {
    let scheme = if settings.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://127.0.0.1:{}", settings.http.addr.port())
}

/// The first of the server's `HTTP_AUTH_TOKENS`, when a command runs with the service's
/// environment (the settings keep only the tokens' digests).
fn first_http_token() -> Option<String> {
    let tokens = std::env::var("HTTP_AUTH_TOKENS").ok()?;
    tokens
        .split(',')
        .map(str::trim)
        .find(|token| !token.is_empty())
        .map(str::to_owned)
}
