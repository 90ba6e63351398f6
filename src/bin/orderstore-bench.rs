//! `orderstore-bench`: the load harnesses behind `scripts/bench-ingest` and
//! `scripts/bench-http`. It measures orderstore against the ceilings of the services it sits
//! between, on the same orders and the same machine.
//!
//! - `ingest`: fills a topic with generated orders, then measures (a) the broker alone: fetching
//!   the whole topic with `KAFKA_READERS` readers; (b) PostgreSQL alone: binary COPY of the same
//!   documents into a table shaped like `orders`, over `HANDLERS` connections; (c) orderstore
//!   from offset 0 until every order is durable. Prints orders/s and orderstore's ratio.
//! - `fill`: writes generated orders straight into orderstore's `orders` table, and the file of
//!   their uids the HTTP benchmark draws from.
//! - `restore`: times restoring memory from PostgreSQL and measures resident memory per order
//!   against the orders' JSON size.
//!
//! Services come from `KAFKA_BROKERS` and `DATABASE_URL` (a superuser URL: databases are
//! created per run); other settings from the environment and `.env`, as for the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BufMut;
use clap::{Parser, Subcommand};
use orderstore::app::Application;
use orderstore::config::Settings;
use orderstore::kafka;
use orderstore::writer::{self, WriterOptions, WriterProgress};
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_util::sync::CancellationToken;

/// mimalloc: far less time in malloc and free than glibc's allocator on the ingest path, and
/// less fragmentation for a store that holds a million small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = dotenvy::dotenv();
    let settings = Settings::from_env()?;
    orderstore::telemetry::init("warn,rskafka=error", settings.log_format);
    match cli.command {
        Command::Ingest {
            orders,
            partitions,
            rounds,
        } => ingest(settings, orders, partitions, rounds.max(1)).await,
        Command::Fill {
            orders,
            database,
            uids,
        } => fill(&settings, orders, &database, uids.as_deref()).await,
        Command::Restore { database } => restore(settings, &database).await,
    }
}

/// A stored document, as fetched back from the topic.
struct Document {
    partition: i32,
    offset: i64,
    value: Vec<u8>,
}

async fn ingest(
    mut settings: Settings,
    n_orders: u64,
    n_partitions: i32,
    n_rounds: usize,
) -> anyhow::Result<()> {
    let run = format!("bench_{}", std::process::id());
    settings.kafka_topic = run.clone();
    settings.kafka_partitions = n_partitions;
    let never = CancellationToken::new();
    let client = kafka::connect(&settings.kafka_brokers, &never)
        .await
        .context("no Kafka")?;
    let partitions = kafka::ensure_topic(&client, &settings).await?;

    // Fill the topic before anything reads it.
    let producers = writer::partition_clients(&client, &run, &partitions, &never)
        .await
        .context("no partitions")?;
    let started = Instant::now();
    let options = WriterOptions {
        tasks: 4,
        rate: 0.0,
        invalid_ratio: 0.0,
        count: Some(n_orders),
    };
    writer::run_writers(
        producers,
        options,
        Arc::new(WriterProgress::default()),
        never.clone(),
    )
    .await;
    eprintln!(
        "filled topic {run}: {n_orders} orders, {} partitions, in {:.1} s",
        partitions.len(),
        started.elapsed().as_secs_f64()
    );

    // (a) The broker alone.
    let admin = settings.database_url.clone();
    let admin_client = connect(&admin).await?;
    let phase = Phase::start(&admin_client).await?;
    let documents = fetch_all(
        &client,
        &run,
        &partitions,
        settings.kafka_readers,
        &settings,
    )
    .await?;
    let broker_seconds = phase.report("(a) broker", &admin_client, n_orders).await?;
    if documents.len() as u64 != n_orders {
        bail!("fetched {} of {n_orders} orders", documents.len());
    }
    let json_bytes: usize = documents.iter().map(|document| document.value.len()).sum();

    // (b) PostgreSQL alone and (c) orderstore, in turns. Each phase starts from the same
    // state: the previous phase's database dropped, a checkpoint, dirty pages flushed. Without
    // that, a phase pays for the writeback of the one before it, and whichever runs second
    // loses by up to 40%.
    let mut postgres_seconds = f64::INFINITY;
    let mut orderstore_seconds = f64::INFINITY;
    let mut previous: Option<String> = None;
    for round in 1..=n_rounds {
        settle(&admin_client, previous.take()).await?;
        let name = format!("{run}_copy{round}");
        let copy_database = create_database(&admin, &name).await?;
        let rows = copy_rows(&documents);
        let phase = Phase::start(&admin_client).await?;
        copy_documents(&copy_database, &run, rows, settings.handlers).await?;
        let seconds = phase
            .report(
                &format!("(b) PostgreSQL, round {round}"),
                &admin_client,
                n_orders,
            )
            .await?;
        postgres_seconds = postgres_seconds.min(seconds);
        settle(&admin_client, Some(name)).await?;

        let name = format!("{run}_os{round}");
        let mut app_settings = settings.clone();
        app_settings.database_url = create_database(&admin, &name).await?;
        let label = format!("(c) orderstore, round {round}");
        let seconds = run_orderstore(app_settings, &run, n_orders, &admin_client, &label).await?;
        orderstore_seconds = orderstore_seconds.min(seconds);
        previous = Some(name);
    }
    settle(&admin_client, previous).await?;

    let rate = |seconds: f64| n_orders as f64 / seconds;
    let ceiling = rate(broker_seconds).min(rate(postgres_seconds));
    println!("ingest benchmark: {n_orders} orders ({:.0} bytes of JSON each), {} partitions, {} readers, {} handlers, batch {}, best of {n_rounds} rounds",
        json_bytes as f64 / n_orders as f64,
        partitions.len(),
        settings.kafka_readers,
        settings.handlers,
        settings.batch_size,
    );
    println!("| what | seconds | orders/s |");
    println!("|---|---|---|");
    println!(
        "| (a) broker alone: fetch the topic, {} readers | {broker_seconds:.2} | {:.0} |",
        settings.kafka_readers,
        rate(broker_seconds)
    );
    println!(
        "| (b) PostgreSQL alone: binary COPY, {} connections | {postgres_seconds:.2} | {:.0} |",
        settings.handlers,
        rate(postgres_seconds)
    );
    println!(
        "| (c) orderstore, offset 0 to all durable | {orderstore_seconds:.2} | {:.0} |",
        rate(orderstore_seconds)
    );
    println!(
        "orderstore / min(a, b) = {:.2}",
        rate(orderstore_seconds) / ceiling
    );
    Ok(())
}

/// Runs orderstore on the benchmark's topic from offset 0, into the empty database of
/// `settings`, until the offsets it stored cover all `n_orders`, and returns the seconds that
/// took; then stops it and checks that every order was stored once.
async fn run_orderstore(
    mut settings: Settings,
    topic: &str,
    n_orders: u64,
    admin: &tokio_postgres::Client,
    label: &str,
) -> anyhow::Result<f64> {
    settings.memory_restore = false;
    settings.http_addr = "127.0.0.1:0".parse()?;
    settings.kafka_start_offset = orderstore::config::StartOffset::Earliest;
    let checker = connect(&settings.database_url).await?;
    let shutdown = CancellationToken::new();
    let phase = Phase::start(admin).await?;
    let app = Application::build(settings, shutdown.clone()).await?;
    let built = phase.started.elapsed().as_secs_f64();
    let memory = app.memory();
    let running = tokio::spawn(app.run_until_stopped());
    // Where the time goes: start-up, the first and the last order in memory, offsets durable.
    let (mut first_stored, mut all_stored) = (None, None);
    loop {
        let n_in_memory = memory.len() as u64;
        let now = || Some(phase.started.elapsed().as_secs_f64());
        if n_in_memory > 0 && first_stored.is_none() {
            first_stored = now();
        }
        if n_in_memory >= n_orders && all_stored.is_none() {
            all_stored = now();
        }
        let row = checker
            .query_one(
                "SELECT coalesce(sum(next_offset), 0)::int8 FROM kafka_offsets WHERE kafka_topic = $1",
                &[&topic],
            )
            .await;
        if matches!(row.map(|row| row.get::<_, i64>(0)), Ok(stored) if stored as u64 >= n_orders) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = phase.report(label, admin, n_orders).await?;
    let at = |time: Option<f64>| time.map_or("-".into(), |time| format!("{time:.2} s"));
    eprintln!(
        "    built at {built:.2} s, first order in memory at {}, all at {}",
        at(first_stored),
        at(all_stored)
    );
    shutdown.cancel();
    running.await??;
    let stored: i64 = checker
        .query_one("SELECT count(*) FROM orders", &[])
        .await?
        .get(0);
    if stored as u64 != n_orders {
        bail!("orderstore stored {stored} of {n_orders} orders");
    }
    Ok(seconds)
}

/// Puts PostgreSQL back in the same state before a phase: drops the last phase's database,
/// checkpoints, and has the kernel write out every dirty page.
async fn settle(admin: &tokio_postgres::Client, drop: Option<String>) -> anyhow::Result<()> {
    if let Some(name) = drop {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
    }
    admin.batch_execute("CHECKPOINT").await?;
    let synced = std::process::Command::new("sync").status()?;
    if !synced.success() {
        bail!("sync failed: {synced}");
    }
    Ok(())
}

/// Fetches every record of the topic with `n_readers` concurrent readers.
async fn fetch_all(
    client: &rskafka::client::Client,
    topic: &str,
    partitions: &[i32],
    n_readers: usize,
    settings: &Settings,
) -> anyhow::Result<Vec<Document>> {
    let mut readers = Vec::new();
    for owned in kafka::assign_partitions(partitions, n_readers) {
        let mut clients = Vec::new();
        for partition in owned {
            clients.push(
                client
                    .partition_client(topic, partition, UnknownTopicHandling::Retry)
                    .await?,
            );
        }
        let (max_bytes, max_wait) = (
            settings.kafka_fetch_max_bytes,
            settings.kafka_fetch_max_wait,
        );
        readers.push(tokio::spawn(async move {
            let reads = clients
                .into_iter()
                .map(|client| read_partition(client, max_bytes, max_wait));
            futures_util::future::join_all(reads).await
        }));
    }
    let mut documents = Vec::new();
    for reader in readers {
        for read in reader.await? {
            documents.extend(read?);
        }
    }
    Ok(documents)
}

async fn read_partition(
    client: PartitionClient,
    max_bytes: i32,
    max_wait: Duration,
) -> anyhow::Result<Vec<Document>> {
    let mut documents = Vec::new();
    let mut offset = 0;
    // The same fetch sizes and waits as orderstore's readers.
    let mut plan = kafka::FetchPlan::new(max_bytes, max_wait);
    loop {
        let (records, high_watermark) = client
            .fetch_records(offset, plan.bytes(), plan.max_wait_ms())
            .await?;
        let n_records = records.len();
        for record in records {
            offset = record.offset + 1;
            documents.push(Document {
                partition: client.partition(),
                offset: record.offset,
                value: record.record.value.unwrap_or_default(),
            });
        }
        plan.answered(n_records, offset, high_watermark);
        if offset >= high_watermark {
            return Ok(documents);
        }
    }
}

/// JSON text sent as a binary `jsonb` value (format version 1, then the text).
#[derive(Debug)]
struct JsonbText<'a>(&'a [u8]);

impl ToSql for JsonbText<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// One row of the PostgreSQL ceiling's COPY.
struct CopyRow {
    order_uid: String,
    /// The document as text, for the table's `body_text` column.
    text: String,
    created: chrono::DateTime<chrono::Utc>,
    partition: i32,
    offset: i64,
    value: Vec<u8>,
}

/// The rows orderstore would store for the documents: uid, date and served text taken from
/// the parsed order. Made before the clock starts: the ceiling is PostgreSQL's work alone.
fn copy_rows(documents: &[Document]) -> Vec<CopyRow> {
    let now = chrono::Utc::now();
    documents
        .iter()
        .map(|document| {
            let order = orderstore::order::Order::parse(&document.value, now, 1 << 20)
                .unwrap_or_else(|rejection| panic!("a generated order was rejected: {rejection}"));
            CopyRow {
                order_uid: order.order_uid().to_string(),
                text: String::from_utf8_lossy(order.json()).into_owned(),
                created: order.date_created(),
                partition: document.partition,
                offset: document.offset,
                value: document.value.clone(),
            }
        })
        .collect()
}

/// Binary COPY of the rows into a table shaped like `orders`, split over `n_connections`.
async fn copy_documents(
    config: &tokio_postgres::Config,
    topic: &str,
    rows: Vec<CopyRow>,
    n_connections: usize,
) -> anyhow::Result<()> {
    orderstore::store::postgres::Database::new(config.clone(), 1, topic)
        .migrate()
        .await?;
    let chunk = rows.len().div_ceil(n_connections.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    let mut copies = Vec::new();
    while rows.peek().is_some() {
        let share: Vec<CopyRow> = rows.by_ref().take(chunk).collect();
        let client = connect(config).await?;
        let topic = topic.to_string();
        copies.push(tokio::spawn(async move {
            let sink = client
                .copy_in(
                    "COPY orders (order_uid, date_created, body, body_text, kafka_topic, \
                     kafka_partition, kafka_offset) FROM STDIN (FORMAT binary)",
                )
                .await?;
            let types = [
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::JSONB,
                Type::TEXT,
                Type::TEXT,
                Type::INT4,
                Type::INT8,
            ];
            let writer = BinaryCopyInWriter::new(sink, &types);
            futures_util::pin_mut!(writer);
            for row in &share {
                writer
                    .as_mut()
                    .write(&[
                        &row.order_uid,
                        &row.created,
                        &JsonbText(&row.value),
                        &row.text,
                        &topic,
                        &row.partition,
                        &row.offset,
                    ])
                    .await?;
            }
            writer.finish().await?;
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for copy in copies {
        copy.await??;
    }
    Ok(())
}

async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn create_database(
    admin: &tokio_postgres::Config,
    name: &str,
) -> anyhow::Result<tokio_postgres::Config> {
    let client = connect(admin).await?;
    // CREATE DATABASE cannot share an implicit transaction with another statement.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let mut config = admin.clone();
    config.dbname(name);
    Ok(config)
}

async fn fill(
    settings: &Settings,
    n_orders: u64,
    database: &str,
    uids_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let config = create_database(&settings.database_url, database).await?;
    let started = Instant::now();
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    let documents: Vec<Document> = (0..n_orders)
        .map(|index| Document {
            partition: 0,
            offset: index as i64,
            value: orderstore::generate::random_order_json(&mut rng, now).1,
        })
        .collect();
    copy_documents(&config, &settings.kafka_topic, copy_rows(&documents), 2).await?;
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

async fn restore(mut settings: Settings, database: &str) -> anyhow::Result<()> {
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

/// What the machine and this process have used so far, to see who works in each phase.
#[derive(Clone, Copy)]
struct Usage {
    /// Busy time of all cores, in seconds.
    machine: f64,
    /// This process's user and system time, in seconds.
    own: f64,
    /// This process's minor page faults: pages the kernel had to map (and zero) for it.
    own_faults: f64,
}

fn usage() -> Usage {
    let ticks = 100.0; // USER_HZ on Linux
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<f64> = stat
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(fields.iter().take(8).sum::<f64>() - fields.get(3)? - fields.get(4)?)
        })
        .unwrap_or(0.0);
    // After the command name: state ppid pgrp session tty_nr tpgid flags minflt cminflt
    // majflt cmajflt utime stime ...
    let own: Vec<f64> = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            Some(
                after_name
                    .split_whitespace()
                    .map(|field| field.parse().unwrap_or(0.0))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let field = |index: usize| own.get(index).copied().unwrap_or(0.0);
    Usage {
        machine: machine / ticks,
        own: (field(11) + field(12)) / ticks,
        own_faults: field(7),
    }
}

/// A phase being measured: its start, the CPU used so far and the WAL position.
struct Phase {
    started: Instant,
    usage: Usage,
    wal: i64,
}

impl Phase {
    async fn start(admin: &tokio_postgres::Client) -> anyhow::Result<Self> {
        Ok(Self {
            wal: wal_position(admin).await?,
            usage: usage(),
            started: Instant::now(),
        })
    }

    /// Prints what the phase cost: time, CPU of the machine and of this process, the process's
    /// page faults and the WAL bytes per order; returns its seconds.
    async fn report(
        self,
        label: &str,
        admin: &tokio_postgres::Client,
        n_orders: u64,
    ) -> anyhow::Result<f64> {
        let seconds = self.started.elapsed().as_secs_f64();
        let now = usage();
        let wal = wal_position(admin).await? - self.wal;
        let n_orders = n_orders as f64;
        eprintln!(
            "{label}: {seconds:.2} s, machine busy {:.2} cpu-s, of which this process {:.2} \
             cpu-s and {:.2} page faults per order; WAL {:.0} bytes per order",
            now.machine - self.usage.machine,
            now.own - self.usage.own,
            (now.own_faults - self.usage.own_faults) / n_orders,
            wal as f64 / n_orders
        );
        Ok(seconds)
    }
}

/// PostgreSQL's current WAL position in bytes.
async fn wal_position(admin: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let row = admin
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8",
            &[],
        )
        .await?;
    Ok(row.get(0))
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
