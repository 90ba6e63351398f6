//! `orderstore-bench`: the load harnesses behind `scripts/bench-ingest`,
//! `scripts/bench-http` and `scripts/bench-restore`. It measures orderstore against the
//! ceilings of the services it sits between, on the same orders and the same machine.
//!
//! - `ingest` (`ingest.rs`): fills a topic with generated orders, then measures (a) the broker
//!   alone: fetching the whole topic with `KAFKA_READERS` readers; (b) PostgreSQL alone: binary
//!   COPY of the same orders into `orders`, over `HANDLERS` connections, with the service's own
//!   COPY encoder (`ceiling.rs`); (c) orderstore from offset 0 until every order is durable.
//!   Prints orders/s and orderstore's ratio.
//! - `fleet` (`fleet.rs`): fills a topic the same way, then for each instance count starts that
//!   many `orderstore` processes on a fresh database, times them until the topic is stored,
//!   and with two or more, kills one with SIGKILL and times the takeover of its partitions
//!   (`instances.rs`: the processes, killed whatever way the benchmark ends; `stream.rs`: the
//!   steady stream around the SIGKILL).
//! - `fill` (`fill.rs`): writes generated orders straight into orderstore's `orders` table, and
//!   the file of their uids the HTTP benchmark draws from.
//! - `restore` (`restore.rs`): times restoring memory from PostgreSQL and measures resident
//!   memory per order against the orders' JSON size.
//! - `freshness` (`freshness.rs`): produces at a steady rate to a running orderstore's topic and
//!   times each sampled order from the broker's acknowledgement to its first 200 by uid
//!   (`poll.rs`: the HTTP client), then counts the instance's fetches while it idles;
//!   `fsync_probe.rs` times the disk under PostgreSQL meanwhile.
//!
//! `measure.rs` has what every phase reports (time, CPU, page faults, WAL). Services come from
//! `KAFKA_BROKERS` and `DATABASE_URL` (a superuser URL: databases are created per run); other
//! settings from the environment and `.env`, as for the service.

mod ceiling;
mod fill;
mod fleet;
mod freshness;
mod fsync_probe;
mod ingest;
mod instances;
mod measure;
mod poll;
mod restore;
mod scale;
mod scale_plot;
mod scale_serve;
mod scale_store;
mod stream;

use clap::{Parser, Subcommand};
use orderstore::config::Settings;

/// The service's allocator, so that orderstore runs here as it does on its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The load harnesses (see the module documentation).
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest benchmark: broker ceiling, PostgreSQL ceiling, orderstore.
    Ingest {
        /// Orders in the topic.
        #[arg(long, default_value_t = 200_000)]
        orders: u64,
        /// Partitions of the topic.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// Rounds of (b) and (c); the best time of each counts.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Fleet benchmark: several orderstore processes sharing the topic, then a SIGKILL.
    Fleet {
        /// Instance counts, one run each, such as 1,2,3.
        #[arg(long, value_delimiter = ',', required = true)]
        instances: Vec<usize>,
        /// Orders in the topic.
        #[arg(long, default_value_t = 200_000)]
        orders: u64,
        /// Partitions of the topic.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// The instances' LEASE_TTL.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        lease_ttl: std::time::Duration,
    },
    /// Fill orderstore's tables in a new database with generated orders.
    Fill {
        /// Orders to write.
        #[arg(long, default_value_t = 1_000_000)]
        orders: u64,
        /// Database to create and fill.
        #[arg(long)]
        database: String,
        /// File to write the orders' uids to, one a line, in id order.
        #[arg(long)]
        uids: Option<std::path::PathBuf>,
    },
    /// Restore benchmark on a database `fill` made: restore time and memory per order.
    Restore {
        /// Database to restore from.
        #[arg(long)]
        database: String,
    },
    /// Scale benchmark: the store grown to each size, and ingest, restore, HTTP and bytes per
    /// order measured at each.
    Scale {
        /// Orders stored at each step, ascending.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000000,3000000,10000000"
        )]
        sizes: Vec<u64>,
        /// Orders ingested from Kafka at each size.
        #[arg(long, default_value_t = 200_000)]
        batch: u64,
        /// Orders in memory (the newest) for the restore and HTTP.
        #[arg(long, default_value_t = 1_000_000)]
        in_memory: u64,
        /// Where the table (scale.md) and the chart (scale.svg) go.
        #[arg(long, default_value = "docs/scale")]
        out: std::path::PathBuf,
    },
    /// Freshness benchmark against a running orderstore that reads KAFKA_TOPIC.
    Freshness {
        /// Its HTTP address, host:port.
        #[arg(long)]
        http: String,
        /// Orders per second.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// How long the stream runs.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// One order in this many is polled.
        #[arg(long, default_value_t = 20)]
        sample: u64,
        /// Also write every polled order to this file: seconds from the stream's start to its
        /// acknowledgement, milliseconds to its first 200, and its partition.
        #[arg(long)]
        samples: Option<std::path::PathBuf>,
        /// Also time fdatasync in this directory, which should be on PostgreSQL's disk, and
        /// count the slow orders that waited through a slow one.
        #[arg(long)]
        fsync_probe: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = dotenvy::dotenv();
    let settings = Settings::from_env()?;
    orderstore::telemetry::init("warn,rskafka=error", settings.log.format);
    match cli.command {
        Command::Ingest {
            orders,
            partitions,
            rounds,
        } => ingest::ingest(settings, orders, partitions, rounds.max(1)).await,
        Command::Fleet {
            instances,
            orders,
            partitions,
            lease_ttl,
        } => fleet::fleet(settings, orders, partitions, &instances, lease_ttl).await,
        Command::Fill {
            orders,
            database,
            uids,
        } => fill::fill(&settings, orders, &database, uids.as_deref()).await,
        Command::Restore { database } => restore::restore(settings, &database).await,
        Command::Scale {
            sizes,
            batch,
            in_memory,
            out,
        } => {
            let run = scale::ScaleRun {
                sizes,
                batch,
                in_memory,
                out,
            };
            scale::scale(settings, run).await
        }
        Command::Freshness {
            http,
            rate,
            duration,
            sample,
            samples,
            fsync_probe,
        } => {
            let run = freshness::FreshnessRun {
                http,
                rate,
                duration,
                sample,
                samples,
                fsync_probe,
            };
            freshness::freshness(settings, run).await
        }
    }
}

/// A stored document, as fetched back from the topic.
pub struct Document {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The record value.
    pub value: Vec<u8>,
}
