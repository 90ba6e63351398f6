//! The second half of start-up, which waits for Kafka: a component of its own, so that HTTP
//! serves (from PostgreSQL) while the broker is still unreachable. Once the broker answers
//! and the topic is found or created, it starts, in this order: the fake-data writer (when
//! on), the readers (idle until the lease keeper gives them partitions), the dead-letter
//! publisher (when `REJECTS_TOPIC` is set), the restorer and the lease keeper, which takes
//! this instance's partitions and has the readers read them and the restorer load their
//! orders. It then waits for all of them; when it returns, the last sender of the channel is
//! gone, which lets the batch writers drain and stop.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backoff::retry_until_ok;
use crate::config::Settings;
use crate::consumer_group::GroupClient;
use crate::events::Events;
use crate::fake_data::writer::{self, WriterOptions, WriterProgress};
use crate::fleet::keeper::{run_lease_keeper, KeeperContext};
use crate::kafka::{connect, ensure_topic, start_readers, KafkaRecord, ReaderContext};
use crate::offsets::OffsetTracker;
use crate::rejects::dead_letters::{run_dead_letters, DeadLetterContext};
use crate::restore::{run_restorer, RestoreLimits, RestorerContext};
use crate::shutdown::{Component, ShutdownManager};
use crate::state::ServiceState;
use crate::store::memory::MemoryStore;
use crate::store::postgres::Database;

/// What the components that need Kafka are built from.
#[derive(Debug)]
pub struct KafkaSide {
    /// Every setting (brokers, topic, readers, writer, dead-letter topic, leases).
    pub settings: Settings,
    /// This instance.
    pub instance: String,
    /// PostgreSQL, for the leases, the stored offsets and the rejects' outbox.
    pub database: Database,
    /// Where readers register records and the keeper forgets a lost partition's.
    pub tracker: Arc<OffsetTracker>,
    /// Where everything reports.
    pub events: Arc<Events>,
    /// What the service is doing now, which the Kafka side's components keep.
    pub state: Arc<ServiceState>,
    /// The channel to the batch writers.
    pub sender: mpsc::Sender<KafkaRecord>,
    /// Memory, which follows the partitions this instance owns.
    pub memory: Arc<MemoryStore>,
    /// Which orders memory keeps of them.
    pub restore_limits: RestoreLimits,
    /// The consumer group, where partitions start with `KAFKA_START_OFFSET=group`.
    pub group: Option<Arc<GroupClient>>,
}

/// Waits for Kafka, starts every component that needs it, and runs until shutdown.
pub async fn run_kafka_side(side: KafkaSide, manager: ShutdownManager) {
    let KafkaSide {
        settings,
        instance,
        database,
        tracker,
        events,
        state,
        sender,
        memory,
        restore_limits,
        group,
    } = side;
    let shutdown = manager.token().clone();
    let Some(client) = connect(&settings, &events, &state, &shutdown).await else {
        return;
    };
    let Some(partitions) = retry_until_ok("finding or creating the topic", &shutdown, || {
        ensure_topic(&client, &settings.kafka.topic, &settings)
    })
    .await
    else {
        return;
    };
    state.kafka_answered();
    if retry_until_ok("creating the partitions' leases", &shutdown, || {
        database.ensure_leases(&partitions)
    })
    .await
    .is_none()
    {
        return;
    }
    tracing::info!(
        topic = settings.kafka.topic,
        partitions = partitions.len(),
        readers = settings.kafka.readers,
        "consuming"
    );
    let client = Arc::new(client);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();

    if settings.writer.enabled {
        let Some(writers) = start_writer(&settings, &client, &partitions, &events, &manager).await
        else {
            return;
        };
        tasks.extend(writers);
    }

    let reader_context = Arc::new(ReaderContext {
        client: Arc::clone(&client),
        topic: settings.kafka.topic.clone(),
        start_offset: settings.kafka.start_offset,
        group,
        fetch_max_bytes: settings.kafka.fetch_max_bytes,
        fetch_max_wait: settings.kafka.fetch_max_wait,
        tracker: Arc::clone(&tracker),
        events: Arc::clone(&events),
        state: Arc::clone(&state),
        shutdown: shutdown.clone(),
    });
    let readers = start_readers(
        &manager,
        reader_context,
        &partitions,
        settings.kafka.readers,
        sender,
    );
    tasks.extend(readers.tasks);

    if let Some(rejects_topic) = settings.rejects.topic.clone() {
        let Some(publisher) = start_dead_letters(
            &settings,
            &rejects_topic,
            &client,
            &database,
            &events,
            &state,
            &manager,
        )
        .await
        else {
            return;
        };
        tasks.push(publisher);
    }

    let (memory_commands, received) = mpsc::unbounded_channel();
    tasks.push(manager.spawn(
        Component::Restorer,
        run_restorer(
            RestorerContext {
                database: database.clone(),
                memory,
                events: Arc::clone(&events),
                state: Arc::clone(&state),
                limits: restore_limits,
                all_partitions: partitions.clone(),
            },
            received,
            shutdown.clone(),
        ),
    ));
    tasks.push(manager.spawn(
        Component::LeaseKeeper,
        run_lease_keeper(
            KeeperContext {
                database,
                instance,
                ttl: settings.fleet.lease_ttl,
                partitions,
                readers: readers.commands,
                tracker,
                memory: memory_commands,
                events,
                state,
            },
            shutdown.clone(),
        ),
    ));
    for task in tasks {
        let _ = task.await;
    }
}

/// Starts the fake-data writer's tasks on the readers' client; `None` if shutdown came first.
async fn start_writer(
    settings: &Settings,
    client: &Arc<rskafka::client::Client>,
    partitions: &[i32],
    events: &Arc<Events>,
    manager: &ShutdownManager,
) -> Option<Vec<JoinHandle<()>>> {
    let producers =
        writer::partition_clients(client, &settings.kafka.topic, partitions, manager.token())
            .await?;
    tracing::info!(
        tasks = settings.writer.tasks,
        rate = settings.writer.rate,
        invalid_ratio = settings.writer.invalid_ratio,
        "the fake-data writer is on"
    );
    let options = WriterOptions {
        tasks: settings.writer.tasks,
        rate: settings.writer.rate,
        invalid_ratio: settings.writer.invalid_ratio,
        count: None,
    };
    Some(writer::start_writers(
        manager,
        producers,
        options,
        Arc::new(WriterProgress::default()),
        Arc::clone(events),
    ))
}

/// Finds or creates the dead-letter topic and starts its publisher; `None` if shutdown came
/// first.
async fn start_dead_letters(
    settings: &Settings,
    rejects_topic: &str,
    client: &Arc<rskafka::client::Client>,
    database: &Database,
    events: &Arc<Events>,
    state: &Arc<ServiceState>,
    manager: &ShutdownManager,
) -> Option<JoinHandle<()>> {
    let shutdown = manager.token();
    let partitions = retry_until_ok(
        "finding or creating the dead-letter topic",
        shutdown,
        || ensure_topic(client, rejects_topic, settings),
    )
    .await?;
    let producers = writer::partition_clients(client, rejects_topic, &partitions, shutdown).await?;
    tracing::info!(
        topic = rejects_topic,
        "rejected records go to the dead-letter topic"
    );
    Some(manager.spawn(
        Component::DeadLetters,
        run_dead_letters(
            DeadLetterContext {
                database: database.clone(),
                source_topic: settings.kafka.topic.clone(),
                producers,
                retention: settings.rejects.retention,
                events: Arc::clone(events),
                state: Arc::clone(state),
            },
            shutdown.clone(),
        ),
    ))
}
