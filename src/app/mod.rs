//! The application, the one place that starts the service's components:
//! `Application::build` is the start-up order, `run_until_stopped` the shutdown order. Every
//! task is a named component of one [`ShutdownManager`].
//!
//! Start-up: wait for PostgreSQL and migrate, size memory, bind HTTP (orders are read from
//! PostgreSQL until memory holds them), then start the batch writers, the offset committer,
//! the sweeper, the observer, the consumer group mirror (with `KAFKA_GROUP_ID`, on a
//! connection of its own), and the Kafka side (`kafka_side.rs`), which waits for the
//! broker and then starts the writer, the readers, the dead-letter publisher, the restorer
//! and the lease keeper. The keeper takes this instance's partitions and has the restorer
//! load their orders: the service is ready once those are loaded. Kafka being down delays
//! ingestion and the restore, not HTTP.
//!
//! Shutdown, from one token: readers stop fetching, batch writers drain the channel and write
//! their last batches, the committer stores the final offsets and the group mirror commits
//! them, then HTTP stops and the pools close.

use std::net::TcpListener;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod kafka_side;

use crate::backoff::{retry_described, retry_until_ok};
use crate::config::Settings;
use crate::consumer_group::{run_group_mirror, GroupClient, MirrorContext};
use crate::events::{Events, LeaseStepFailed};
use crate::http::{build_server, HttpState, ServerOptions};
use crate::ingest::{run_batch_writer, IngestContext};
use crate::observer::{run_observer, ObserverContext};
use crate::offsets::{run_committer, OffsetTracker};
use crate::rejects::halt::{HaltPolicy, OnReject};
use crate::restore::{sized_memory, RestoreLimits};
use crate::shutdown::{Component, ComponentFailure, ShutdownManager};
use crate::state::ServiceState;
use crate::store::memory::MemoryStore;
use crate::store::postgres::Database;
use crate::sweeper::{run_sweeper, Clock, SweepPolicy};
use kafka_side::{run_kafka_side, KafkaSide};

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

/// A running orderstore.
pub struct Application {
    http_port: u16,
    manager: ShutdownManager,
    /// Cancelled once the batch writers have drained, to let the committer store the last
    /// offsets.
    batch_writers_done: CancellationToken,
    memory: Arc<MemoryStore>,
    tracker: Arc<OffsetTracker>,
    events: Arc<Events>,
    state: Arc<ServiceState>,
    /// This instance's id, whose leases are released at the end.
    instance: String,
    /// The ingest pool first, then the HTTP pool.
    databases: Vec<Database>,
    http_server: (actix_web::dev::ServerHandle, JoinHandle<()>),
    /// The Kafka side, which joins every component that needs Kafka.
    kafka_side: JoinHandle<()>,
    batch_writers: Vec<JoinHandle<()>>,
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
        mut settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let instance = settings.fleet.pick_instance_id();
        tracing::info!(
            instance,
            database = settings.database.display(),
            brokers = ?settings.kafka.brokers,
            topic = settings.kafka.topic,
            "starting orderstore"
        );
        let manager = ShutdownManager::new(shutdown.clone());
        let topic = settings.kafka.topic.clone();
        // Sessions named after the instance: operators see whose they are, and a taker finds
        // those of an instance whose leases expired.
        settings
            .database
            .url
            .application_name(crate::store::postgres::leases::session_name(&instance));
        let database = Database::new(
            settings.database.url.clone(),
            settings.database.tls.clone(),
            settings.database.pool_size,
            &topic,
        );
        let address = format!(
            "at {}, sslmode={}",
            settings.database.display(),
            settings.database.tls.mode().as_str()
        );
        retry_described(
            "connecting to PostgreSQL",
            Some(&address),
            &shutdown,
            || database.migrate(),
        )
        .await
        .ok_or(StartError::Cancelled)?;
        // Memory is filled as partitions are taken (the restorer), so that it holds the
        // orders this instance owns; it is sized here for all of them.
        let restore_limits = RestoreLimits::from_settings(&settings);
        let memory = retry_until_ok("sizing memory for the restore", &shutdown, || {
            sized_memory(restore_limits, &database)
        })
        .await
        .ok_or(StartError::Cancelled)?;

        // Install the metrics recorder before anything records.
        crate::events::prometheus::prometheus();
        let events = Arc::new(Events::default());
        let state = Arc::new(ServiceState::default());
        let status = Arc::new(crate::status::StatusBoard::new(
            instance.clone(),
            settings.rejects.topic.clone(),
            Arc::clone(&events),
        ));
        events.emit(crate::events::InstanceStarted {
            instance: &instance,
        });
        // HTTP reads get a pool of their own, so ingestion and reads never starve each other.
        let http_database = Database::new(
            settings.database.url.clone(),
            settings.database.tls.clone(),
            settings.database.pool_size,
            &topic,
        );
        let (http_port, http_server) = start_http(
            &settings,
            HttpState {
                memory: Arc::clone(&memory),
                database: http_database.clone(),
                service: Arc::clone(&state),
                instance: instance.clone(),
                status: Arc::clone(&status),
            },
            &manager,
        )?;
        tracing::info!(
            port = http_port,
            "HTTP is listening; orders this instance does not hold yet are read from PostgreSQL"
        );

        let halt = match settings.rejects.on_reject {
            OnReject::Skip => HaltPolicy::default(),
            OnReject::Halt => HaltPolicy {
                on_reject: OnReject::Halt,
                approved: retry_until_ok("reading the rejects let pass", &shutdown, || {
                    database.approved_skips()
                })
                .await
                .ok_or(StartError::Cancelled)?
                .into_iter()
                .collect(),
            },
        };
        let tracker = Arc::new(OffsetTracker::new());
        let (sender, receiver) = mpsc::channel(settings.ingest.channel_capacity);
        let ingest = Arc::new(IngestContext {
            receiver: tokio::sync::Mutex::new(receiver),
            batch_size: settings.ingest.batch_size,
            max_record_bytes: settings.ingest.max_record_bytes,
            database: database.clone(),
            memory: Arc::clone(&memory),
            tracker: Arc::clone(&tracker),
            events: Arc::clone(&events),
            state: Arc::clone(&state),
            instance: instance.clone(),
            lease_ttl: settings.fleet.lease_ttl,
            halt,
        });
        let batch_writers = (0..settings.ingest.batch_writers)
            .map(|index| {
                manager.spawn(
                    Component::BatchWriter(index),
                    run_batch_writer(Arc::clone(&ingest)),
                )
            })
            .collect();
        let batch_writers_done = CancellationToken::new();
        let mut background = vec![
            manager.spawn(
                Component::OffsetCommitter,
                run_committer(
                    database.clone(),
                    instance.clone(),
                    Arc::clone(&tracker),
                    settings.ingest.offset_commit_interval,
                    Arc::clone(&events),
                    batch_writers_done.clone(),
                ),
            ),
            manager.spawn(
                Component::Sweeper,
                run_sweeper(
                    Arc::clone(&memory),
                    SweepPolicy {
                        orders_limit: settings.memory.orders_limit,
                        max_age: settings.memory.max_age,
                    },
                    settings.memory.sweep_interval,
                    Clock::new(),
                    Arc::clone(&events),
                    shutdown.clone(),
                ),
            ),
            manager.spawn(
                Component::Observer,
                run_observer(
                    ObserverContext {
                        events: Arc::clone(&events),
                        state: Arc::clone(&state),
                        tracker: Arc::clone(&tracker),
                        memory: Arc::clone(&memory),
                        channel: sender.downgrade(),
                        status: Arc::clone(&status),
                    },
                    shutdown.clone(),
                ),
            ),
        ];
        // The consumer group mirror has a connection of its own, so it runs beside the Kafka
        // side, and stops after the committer stored the last offsets, to commit those too.
        let group = settings.kafka.group_id.clone().map(|group| {
            Arc::new(GroupClient::new(
                settings.kafka.brokers.clone(),
                settings.kafka.security.clone(),
                group,
                topic.clone(),
            ))
        });
        if let Some(client) = &group {
            background.push(manager.spawn(
                Component::GroupMirror,
                run_group_mirror(
                    MirrorContext {
                        client: Arc::clone(client),
                        instance: instance.clone(),
                        tracker: Arc::clone(&tracker),
                        events: Arc::clone(&events),
                        status,
                    },
                    batch_writers_done.clone(),
                ),
            ));
        }
        let kafka_side = manager.spawn(
            Component::KafkaSide,
            run_kafka_side(
                KafkaSide {
                    settings,
                    instance: instance.clone(),
                    database: database.clone(),
                    tracker: Arc::clone(&tracker),
                    events: Arc::clone(&events),
                    state: Arc::clone(&state),
                    sender,
                    memory: Arc::clone(&memory),
                    restore_limits,
                    group,
                },
                manager.clone(),
            ),
        );

        Ok(Self {
            http_port,
            manager,
            batch_writers_done,
            memory,
            tracker,
            events,
            state,
            instance,
            databases: vec![database, http_database],
            http_server,
            kafka_side,
            batch_writers,
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

    /// The pipeline's events and counters.
    pub fn events(&self) -> Arc<Events> {
        Arc::clone(&self.events)
    }

    /// What the service is doing now: Kafka health, owned and halted partitions, the restore.
    pub fn state(&self) -> Arc<ServiceState> {
        Arc::clone(&self.state)
    }

    /// The offsets in flight and durable.
    pub fn offsets(&self) -> Arc<OffsetTracker> {
        Arc::clone(&self.tracker)
    }

    /// Serves and ingests until the shutdown token is cancelled (or a component fails), then
    /// stops in order.
    pub async fn run_until_stopped(self) -> Result<(), ComponentFailure> {
        self.manager.token().cancelled().await;
        tracing::info!("shutting down: readers stop, batch writers drain the channel");
        let _ = self.kafka_side.await;
        for batch_writer in self.batch_writers {
            let _ = batch_writer.await;
        }
        self.batch_writers_done.cancel();
        for task in self.background {
            let _ = task.await;
        }
        // The last offsets are stored: hand the partitions over at once.
        match self.databases[0].release_all(&self.instance).await {
            Ok(()) => tracing::info!(instance = self.instance, "partition leases released"),
            Err(error) => LeaseStepFailed {
                step: "release_all",
                consequence: "the leases were not released; they expire after LEASE_TTL",
                error: &error,
            }
            .record(),
        }
        let (server, serving) = self.http_server;
        server.stop(true).await;
        let _ = serving.await;
        for database in &self.databases {
            database.close();
        }
        // Rejections of the last batches, written while the observer was already stopping.
        self.events.flush_rejection_summary(true);
        let counters = self.events.counters();
        tracing::info!(
            stored = counters.stored(),
            rejected = counters.rejected(),
            duplicates = counters.duplicates(),
            "orderstore stopped"
        );
        match self.manager.take_failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// Binds `HTTP_ADDR` and starts the server as a component; returns the port and the handles
/// that stop and join it.
fn start_http(
    settings: &Settings,
    state: HttpState,
    manager: &ShutdownManager,
) -> Result<(u16, (actix_web::dev::ServerHandle, JoinHandle<()>)), StartError> {
    let bind_error = |source| StartError::Bind {
        addr: settings.http.addr,
        source,
    };
    let listener = TcpListener::bind(settings.http.addr).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let options = ServerOptions {
        workers: settings.http.workers,
        auth: settings.http.auth.clone(),
        tls: settings.http.tls.as_ref().map(|https| Arc::clone(&https.0)),
    };
    let server = build_server(listener, state, options).map_err(bind_error)?;
    let handle = server.handle();
    Ok((port, (handle, manager.spawn(Component::HttpServer, server))))
}
