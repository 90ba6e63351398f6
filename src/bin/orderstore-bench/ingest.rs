//! The ingest benchmark: the broker's ceiling, PostgreSQL's ceiling and orderstore, on the
//! same orders.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use orderstore::app::Application;
use orderstore::config::Settings;
use orderstore::events::Events;
use orderstore::fake_data::writer::{self, WriterOptions, WriterProgress};
use orderstore::kafka;
use orderstore::shutdown::ShutdownManager;
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use tokio_util::sync::CancellationToken;

use crate::ceiling::{copy_orders, parse_documents};
use crate::measure::{connect, create_database, settle, Phase, PhaseCost};
use crate::Document;

/// A topic of generated orders, filled before anything reads it.
pub struct Backlog {
    /// The topic's name, `bench_<pid>`, which also names the run's databases.
    pub topic: String,
    /// The client that made and filled it.
    pub client: rskafka::client::Client,
    /// Its partitions.
    pub partitions: Vec<i32>,
    /// A producing client per partition.
    pub producers: Vec<Arc<PartitionClient>>,
}

/// Creates a new topic of `n_partitions` and fills it with `n_orders` generated orders, as
/// fast as the broker takes them; `settings` are set to that topic.
pub async fn fill_topic(
    settings: &mut Settings,
    n_orders: u64,
    n_partitions: i32,
) -> anyhow::Result<Backlog> {
    let topic = format!("bench_{}", std::process::id());
    settings.kafka.topic = topic.clone();
    settings.kafka.partitions = n_partitions;
    let never = CancellationToken::new();
    let client = kafka::connect(settings, &Events::default(), &Default::default(), &never)
        .await
        .context("no Kafka")?;
    let partitions = kafka::ensure_topic(&client, &topic, settings).await?;
    let producers = writer::partition_clients(&client, &topic, &partitions, &never)
        .await
        .context("no partitions")?;
    let started = Instant::now();
    let options = WriterOptions {
        tasks: 4,
        rate: 0.0,
        invalid_ratio: 0.0,
        count: Some(n_orders),
    };
    let manager = ShutdownManager::new(never.clone());
    let writers = writer::start_writers(
        &manager,
        producers.clone(),
        options,
        Arc::new(WriterProgress::default()),
        Arc::new(Events::default()),
    );
    for task in writers {
        task.await?;
    }
    if let Some(failure) = manager.take_failure() {
        bail!("filling the topic failed: {failure}");
    }
    eprintln!(
        "filled topic {topic}: {n_orders} orders, {} partitions, in {:.1} s",
        partitions.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Backlog {
        topic,
        client,
        partitions,
        producers,
    })
}

/// Runs the ingest benchmark on a new topic of `n_orders` orders over `n_partitions`.
pub async fn ingest(
    mut settings: Settings,
    n_orders: u64,
    n_partitions: i32,
    n_rounds: usize,
) -> anyhow::Result<()> {
    // Fill the topic before anything reads it.
    let Backlog {
        topic: run,
        client,
        partitions,
        ..
    } = fill_topic(&mut settings, n_orders, n_partitions).await?;

    // (a) The broker alone.
    let admin = settings.database.url.clone();
    let admin_client = connect(&admin).await?;
    let phase = Phase::start(&admin_client).await?;
    let documents = fetch_all(
        &client,
        &run,
        &partitions,
        settings.kafka.readers,
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
    // loses.
    let mut postgres_seconds = f64::INFINITY;
    let mut orderstore_seconds = f64::INFINITY;
    let mut previous: Option<String> = None;
    for round in 1..=n_rounds {
        settle(&admin_client, previous.take()).await?;
        let name = format!("{run}_copy{round}");
        let copy_database = create_database(&admin, &name).await?;
        let orders = parse_documents(&documents);
        let phase = Phase::start(&admin_client).await?;
        copy_orders(&copy_database, &run, orders, settings.ingest.batch_writers).await?;
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
        app_settings.database.url = create_database(&admin, &name).await?;
        let label = format!("(c) orderstore, round {round}");
        let cost = run_orderstore(app_settings, &run, n_orders, 0, &admin_client, &label).await?;
        orderstore_seconds = orderstore_seconds.min(cost.seconds);
        previous = Some(name);
    }
    settle(&admin_client, previous).await?;

    let rate = |seconds: f64| n_orders as f64 / seconds;
    let ceiling = rate(broker_seconds).min(rate(postgres_seconds));
    println!("ingest benchmark: {n_orders} orders ({:.0} bytes of JSON each), {} partitions, {} readers, {} batch writers, batch {}, best of {n_rounds} rounds",
        json_bytes as f64 / n_orders as f64,
        partitions.len(),
        settings.kafka.readers,
        settings.ingest.batch_writers,
        settings.ingest.batch_size,
    );
    println!("| what | seconds | orders/s |");
    println!("|---|---|---|");
    println!(
        "| (a) broker alone: fetch the topic, {} readers | {broker_seconds:.2} | {:.0} |",
        settings.kafka.readers,
        rate(broker_seconds)
    );
    println!(
        "| (b) PostgreSQL alone: binary COPY, {} connections | {postgres_seconds:.2} | {:.0} |",
        settings.ingest.batch_writers,
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

/// Runs orderstore on the benchmark's topic from offset 0, into the database of `settings`
/// (which holds `already_stored` orders and no offsets), until the offsets it stored cover all
/// `n_orders`, and returns what that took; then stops it and checks that every order was
/// stored once.
pub async fn run_orderstore(
    mut settings: Settings,
    topic: &str,
    n_orders: u64,
    already_stored: i64,
    admin: &tokio_postgres::Client,
    label: &str,
) -> anyhow::Result<PhaseCost> {
    settings.memory.restore = false;
    settings.http.addr = "127.0.0.1:0".parse()?;
    settings.kafka.start_offset = orderstore::config::StartOffset::Earliest;
    // Each round reads the topic from the start into a fresh database: a group of its own, so
    // the consumer group mirror commits as a first run would (an earlier round's group is
    // ahead, and would be left alone).
    let database_name = settings
        .database
        .url
        .get_dbname()
        .unwrap_or("bench")
        .to_string();
    if let Some(group) = &mut settings.kafka.group_id {
        group.push_str(&format!("-{database_name}"));
    }
    let checker = connect(&settings.database.url).await?;
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
    let cost = phase.report_cost(label, admin, n_orders).await?;
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
    if stored - already_stored != n_orders as i64 {
        bail!(
            "orderstore stored {} of {n_orders} orders",
            stored - already_stored
        );
    }
    Ok(cost)
}

/// Every record of the topic, fetched by `n_readers` tasks with the fetch sizes and waits of
/// orderstore's readers.
pub async fn fetch_all(
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
            settings.kafka.fetch_max_bytes,
            settings.kafka.fetch_max_wait,
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
    let mut plan = kafka::FetchPlan::new(max_bytes, max_wait, std::time::Instant::now());
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
        plan.answered(n_records, offset, high_watermark, std::time::Instant::now());
        if offset >= high_watermark {
            return Ok(documents);
        }
    }
}
