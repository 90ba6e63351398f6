//! The application: wires every stage together, runs them as named tokio tasks, and stops them
//! in order.
//!
//! Start-up: wait for PostgreSQL and create the tables, restore memory, load stored offsets,
//! bind HTTP (the service is ready from here), then start handlers, the offset committer, the
//! sweeper, and the Kafka side (connect, create the topic if missing, one task per reader).
//! Kafka being down delays only ingestion: reads are served meanwhile.
//!
//! Shutdown, from one [`CancellationToken`]: readers stop fetching, handlers drain the channel
//! and write their last batches, the committer writes the final offsets, then HTTP stops and
//! the pools close. A task that ends on its own or panics is reported by name and stops the
//! service with an error, so a supervisor restarts it and nothing is silently half-running.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::handler::{run_handler, HandlerContext};
use crate::http::{build_server, HttpState};
use crate::kafka::{self, retry_until_ok, ReaderContext};
use crate::offsets::OffsetTracker;
use crate::stats::Stats;
use crate::store::memory::MemoryStore;
use crate::store::postgres::{Database, DbError};
use crate::sweeper::{run_sweeper, Clock, SweepPolicy};
use crate::writer::{self, WriterOptions, WriterProgress};

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Shutdown was asked for while start-up was still waiting for PostgreSQL.
    #[error("stopped before start-up finished")]
    Cancelled,
    /// The HTTP address could not be bound.
    #[error("cannot listen on HTTP_ADDR {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("task {task} ended unexpectedly: {reason}")]
pub struct RunError {
    /// The task's name.
    pub task: String,
    /// What happened to it.
    pub reason: String,
}

/// A running orderstore.
pub struct Application {
    http_port: u16,
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
    /// Cancelled once handlers have drained, to let the committer write its last offsets.
    handlers_done: CancellationToken,
    memory: Arc<MemoryStore>,
    tracker: Arc<OffsetTracker>,
    stats: Arc<Stats>,
    databases: Vec<Database>,
    failure: Arc<std::sync::Mutex<Option<RunError>>>,
    kafka_side: JoinHandle<()>,
    handlers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("http_port", &self.http_port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Starts everything; returns once HTTP is listening. `shutdown` stops the service.
    pub async fn build(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        tracing::info!(
            database = settings.database_display(),
            brokers = ?settings.kafka_brokers,
            topic = settings.kafka_topic,
            "starting orderstore"
        );
        let topic = settings.kafka_topic.clone();
        let database = Database::new(settings.database_url.clone(), settings.db_pool_size, &topic);
        retry_until_ok("connecting to PostgreSQL", &shutdown, || database.migrate())
            .await
            .ok_or(StartError::Cancelled)?;

        let memory = if settings.memory_restore {
            // A failed attempt leaves nothing behind: the next one starts a new store.
            retry_until_ok("restoring memory from PostgreSQL", &shutdown, || {
                restore(&settings, &database)
            })
            .await
            .ok_or(StartError::Cancelled)?
        } else {
            Arc::new(MemoryStore::new())
        };
        let stored_offsets = retry_until_ok("loading stored offsets", &shutdown, || {
            database.load_offsets()
        })
        .await
        .ok_or(StartError::Cancelled)?;

        let listener =
            TcpListener::bind(settings.http_addr).map_err(|source| StartError::Bind {
                addr: settings.http_addr,
                source,
            })?;
        let http_port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: settings.http_addr,
                source,
            })?
            .port();
        let stats = Arc::new(Stats::default());
        // Install the metrics recorder before anything records.
        crate::stats::prometheus();
        // HTTP reads get a pool of their own, so ingestion and reads never starve each other.
        let http_database =
            Database::new(settings.database_url.clone(), settings.db_pool_size, &topic);
        let server = build_server(
            listener,
            HttpState {
                memory: Arc::clone(&memory),
                database: http_database.clone(),
                stats: Arc::clone(&stats),
            },
            settings.http_workers,
        )
        .map_err(|source| StartError::Bind {
            addr: settings.http_addr,
            source,
        })?;
        tracing::info!(
            port = http_port,
            orders_in_memory = memory.len(),
            "HTTP is ready"
        );

        let failure = Arc::new(std::sync::Mutex::new(None));
        let tracker = Arc::new(OffsetTracker::new());
        let (sender, receiver) = mpsc::channel(settings.channel_capacity);
        let supervise = |name: String, task: JoinHandle<()>| {
            supervise(name, task, shutdown.clone(), Arc::clone(&failure))
        };

        let handler_context = Arc::new(HandlerContext {
            receiver: tokio::sync::Mutex::new(receiver),
            batch_size: settings.batch_size,
            max_record_bytes: settings.max_record_bytes,
            database: database.clone(),
            memory: Arc::clone(&memory),
            tracker: Arc::clone(&tracker),
            stats: Arc::clone(&stats),
        });
        let handlers = (0..settings.handlers)
            .map(|index| {
                supervise(
                    format!("handler-{index}"),
                    tokio::spawn(run_handler(Arc::clone(&handler_context))),
                )
            })
            .collect();

        let handlers_done = CancellationToken::new();
        let background = vec![
            supervise(
                "offset-committer".into(),
                tokio::spawn(run_committer(
                    database.clone(),
                    Arc::clone(&tracker),
                    settings.offset_commit_interval,
                    handlers_done.clone(),
                )),
            ),
            supervise(
                "sweeper".into(),
                tokio::spawn(run_sweeper(
                    Arc::clone(&memory),
                    SweepPolicy {
                        orders_limit: settings.memory_orders_limit,
                        max_age: settings.memory_max_age,
                    },
                    settings.sweep_interval,
                    Clock::new(),
                    Arc::clone(&stats),
                    shutdown.clone(),
                )),
            ),
            supervise(
                "observer".into(),
                tokio::spawn(run_observer(
                    Arc::clone(&stats),
                    Arc::clone(&tracker),
                    Arc::clone(&memory),
                    sender.downgrade(),
                    shutdown.clone(),
                )),
            ),
        ];
        let kafka_side = supervise(
            "kafka-readers".into(),
            tokio::spawn(run_kafka_side(
                settings,
                stored_offsets,
                Arc::clone(&tracker),
                Arc::clone(&stats),
                sender,
                shutdown.clone(),
                Arc::clone(&failure),
            )),
        );

        Ok(Self {
            http_port,
            server,
            shutdown,
            handlers_done,
            memory,
            tracker,
            stats,
            databases: vec![database, http_database],
            failure,
            kafka_side,
            handlers,
            background,
        })
    }

    /// The port HTTP listens on (useful with `HTTP_ADDR=127.0.0.1:0`).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Orders in memory, shared with the running service.
    pub fn memory(&self) -> Arc<MemoryStore> {
        Arc::clone(&self.memory)
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The offsets in flight and done.
    pub fn offsets(&self) -> Arc<OffsetTracker> {
        Arc::clone(&self.tracker)
    }

    /// Serves and ingests until the shutdown token is cancelled, then stops in order.
    pub async fn run_until_stopped(self) -> Result<(), RunError> {
        let server_handle = self.server.handle();
        let server = tokio::spawn(self.server);
        self.shutdown.cancelled().await;
        tracing::info!("shutting down: readers stop, handlers drain the channel");

        let _ = self.kafka_side.await;
        for handler in self.handlers {
            let _ = handler.await;
        }
        self.handlers_done.cancel();
        for task in self.background {
            let _ = task.await;
        }
        server_handle.stop(true).await;
        let _ = server.await;
        for database in &self.databases {
            database.close();
        }
        tracing::info!(
            stored = Stats::get(&self.stats.stored),
            rejected = Stats::get(&self.stats.rejected),
            duplicates = Stats::get(&self.stats.duplicates),
            "orderstore stopped"
        );
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// Waits for `task`; if it ends before shutdown was asked for, or panics, reports it by name
/// and stops the service.
fn supervise(
    name: String,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    failure: Arc<std::sync::Mutex<Option<RunError>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let result = task.await;
        let reason = match result {
            Err(join_error) => join_error.to_string(),
            Ok(()) if !shutdown.is_cancelled() => {
                "it returned while the service was running".into()
            }
            Ok(()) => return,
        };
        tracing::error!(
            task = name,
            reason,
            "a task ended unexpectedly, stopping the service"
        );
        failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(RunError { task: name, reason });
        shutdown.cancel();
    })
}

async fn restore(settings: &Settings, database: &Database) -> Result<Arc<MemoryStore>, DbError> {
    let started = Instant::now();
    let created_after = settings
        .memory_max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| chrono::Utc::now().checked_sub_signed(age));
    let plan = database
        .plan_restore(settings.memory_orders_limit, created_after)
        .await?;
    let memory = Arc::new(MemoryStore::with_capacity(plan.n_orders));
    let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
    let restored = database
        .restore_into(&memory, &plan, parallelism.min(settings.db_pool_size))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        restored,
        seconds,
        orders_per_second = (restored as f64 / seconds.max(1e-9)) as u64,
        "memory restored from PostgreSQL"
    );
    Ok(memory)
}

/// Connects to Kafka, makes sure the topic exists and runs the readers until shutdown. The
/// channel's sender is dropped when this returns, which lets the handlers drain and stop.
async fn run_kafka_side(
    settings: Settings,
    stored_offsets: std::collections::HashMap<i32, i64>,
    tracker: Arc<OffsetTracker>,
    stats: Arc<Stats>,
    sender: mpsc::Sender<crate::kafka::KafkaRecord>,
    shutdown: CancellationToken,
    failure: Arc<std::sync::Mutex<Option<RunError>>>,
) {
    let Some(client) = kafka::connect(&settings.kafka_brokers, &shutdown).await else {
        return;
    };
    let Some(partitions) = retry_until_ok("finding or creating the topic", &shutdown, || {
        kafka::ensure_topic(&client, &settings)
    })
    .await
    else {
        return;
    };
    stats.kafka_answered(true);
    tracing::info!(
        topic = settings.kafka_topic,
        partitions = partitions.len(),
        readers = settings.kafka_readers,
        "consuming"
    );
    let client = Arc::new(client);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    if settings.writer_enabled {
        let Some(producers) =
            writer::partition_clients(&client, &settings.kafka_topic, &partitions, &shutdown).await
        else {
            return;
        };
        tracing::info!(
            tasks = settings.writer_tasks,
            rate = settings.writer_rate,
            invalid_ratio = settings.writer_invalid_ratio,
            "the fake-data writer is on"
        );
        let options = WriterOptions {
            tasks: settings.writer_tasks,
            rate: settings.writer_rate,
            invalid_ratio: settings.writer_invalid_ratio,
            count: None,
        };
        tasks.push(supervise(
            "writer".into(),
            tokio::spawn(writer::run_writers(
                producers,
                options,
                Arc::new(WriterProgress::default()),
                shutdown.clone(),
            )),
            shutdown.clone(),
            Arc::clone(&failure),
        ));
    }
    let context = Arc::new(ReaderContext {
        client,
        topic: settings.kafka_topic.clone(),
        stored_offsets,
        start_offset: settings.kafka_start_offset,
        fetch_max_bytes: settings.kafka_fetch_max_bytes,
        fetch_max_wait: settings.kafka_fetch_max_wait,
        tracker,
        stats,
        shutdown: shutdown.clone(),
    });
    for (index, owned) in kafka::assign_partitions(&partitions, settings.kafka_readers)
        .into_iter()
        .enumerate()
        .filter(|(_, owned)| !owned.is_empty())
    {
        tasks.push(supervise(
            format!("reader-{index}"),
            tokio::spawn(kafka::run_reader(
                Arc::clone(&context),
                owned,
                sender.clone(),
            )),
            shutdown.clone(),
            Arc::clone(&failure),
        ));
    }
    drop(sender);
    for task in tasks {
        let _ = task.await;
    }
}

/// Writes finished offsets as soon as a batch is done, at most once per `interval` (batches
/// finishing meanwhile are written together), and retries a failed write with backoff; after
/// `handlers_done`, writes the last ones, retrying until PostgreSQL takes them.
async fn run_committer(
    database: Database,
    tracker: Arc<OffsetTracker>,
    interval: Duration,
    handlers_done: CancellationToken,
) {
    let mut next_write = tokio::time::Instant::now();
    let mut backoff = Backoff::for_outages();
    let mut retry_in = None;
    loop {
        let last = tokio::select! {
            _ = handlers_done.cancelled() => true,
            _ = async {
                match retry_in {
                    // After a failed write, the offsets are tried again without news.
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => {
                        tracker.changed().await;
                        tokio::time::sleep_until(next_write).await;
                    }
                }
            } => false,
        };
        next_write = tokio::time::Instant::now() + interval;
        retry_in = None;
        let offsets = tracker.to_write();
        if !offsets.is_empty() {
            if last {
                let never = CancellationToken::new();
                let written = retry_until_ok("writing the last offsets", &never, || {
                    database.store_offsets(&offsets)
                })
                .await;
                if written.is_some() {
                    tracker.written(&offsets);
                    tracing::info!(?offsets, "final offsets stored");
                }
            } else {
                match database.store_offsets(&offsets).await {
                    Ok(()) => {
                        tracker.written(&offsets);
                        backoff.reset();
                    }
                    Err(error) => {
                        let delay = backoff.next_delay();
                        retry_in = Some(delay);
                        tracing::warn!(%error, ?delay, "storing offsets failed, will retry");
                    }
                }
            }
        }
        if last {
            return;
        }
    }
}

/// Every second, sets the state gauges (memory, channel, lag per partition); every 10 s
/// while anything happens, logs one line: rate, lag, stored, rejected.
async fn run_observer(
    stats: Arc<Stats>,
    tracker: Arc<OffsetTracker>,
    memory: Arc<MemoryStore>,
    channel: mpsc::WeakSender<crate::kafka::KafkaRecord>,
    shutdown: CancellationToken,
) {
    const GAUGES_EVERY: Duration = Duration::from_secs(1);
    const TICKS_PER_LOG: u64 = 10;
    let mut ticker = tokio::time::interval(GAUGES_EVERY);
    let mut last_consumed = 0;
    for tick in 1_u64.. {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let lags: Vec<(i32, i64)> = tracker
            .positions()
            .iter()
            .map(|position| {
                let lag = (position.high_watermark - position.committable).max(0);
                (position.partition, lag)
            })
            .collect();
        // A sender is upgraded only for the time of the reading, so the channel still closes
        // when the readers stop.
        let (fill, capacity) = channel
            .upgrade()
            .map(|sender| {
                (
                    sender.max_capacity() - sender.capacity(),
                    sender.max_capacity(),
                )
            })
            .unwrap_or((0, 0));
        stats.observe_state(memory.len(), fill, capacity, &lags);
        crate::stats::prometheus().run_upkeep();

        let consumed = Stats::get(&stats.consumed);
        if tick % TICKS_PER_LOG != 0 || consumed == last_consumed {
            continue;
        }
        tracing::info!(
            records_per_second =
                (consumed - last_consumed) / (TICKS_PER_LOG * GAUGES_EVERY.as_secs()),
            lag = lags.iter().map(|(_, lag)| lag).sum::<i64>(),
            stored = Stats::get(&stats.stored),
            duplicates = Stats::get(&stats.duplicates),
            rejected = Stats::get(&stats.rejected),
            in_memory = memory.len(),
            "ingesting"
        );
        last_consumed = consumed;
    }
}
