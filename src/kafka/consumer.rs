//! The Kafka side of the service, one component: connect, find or create the topic, start one
//! task per reader (and the fake-data writer when it is on), and wait for them. Kafka being
//! down delays only this: HTTP serves meanwhile. When it returns, the last sender of the
//! channel is gone, which lets the batch writers drain and stop.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    assign_partitions, connect, ensure_topic, run_reader, KafkaRecord, PartitionCommand,
    ReaderContext,
};
use crate::backoff::retry_until_ok;
use crate::config::Settings;
use crate::dead_letters::{run_dead_letters, DeadLetterContext};
use crate::events::{Events, KafkaAnswered};
use crate::fake_data::writer::{self, WriterOptions, WriterProgress};
use crate::fleet::keeper::{run_lease_keeper, KeeperContext};
use crate::offsets::OffsetTracker;
use crate::restore::{run_restorer, RestoreLimits, RestorerContext};
use crate::shutdown::{Component, ShutdownManager};
use crate::store::memory::MemoryStore;
use crate::store::postgres::Database;

/// What the Kafka side needs.
#[derive(Debug)]
pub struct ConsumerContext {
    /// Every setting (brokers, topic, readers, writer).
    pub settings: Settings,
    /// This instance.
    pub instance: String,
    /// PostgreSQL, for the leases and the stored offsets.
    pub database: Database,
    /// Where readers register records.
    pub tracker: Arc<OffsetTracker>,
    /// Where readers and the writer report.
    pub events: Arc<Events>,
    /// The channel to the batch writers.
    pub sender: mpsc::Sender<KafkaRecord>,
    /// Memory, which follows the partitions this instance owns.
    pub memory: Arc<MemoryStore>,
    /// Which orders memory keeps of them.
    pub restore_limits: RestoreLimits,
}

/// Runs the readers (and the writer) until shutdown.
pub async fn run_consumer(context: ConsumerContext, manager: ShutdownManager) {
    let ConsumerContext {
        settings,
        instance,
        database,
        tracker,
        events,
        sender,
        memory,
        restore_limits,
    } = context;
    let shutdown = manager.token().clone();
    let Some(client) = connect(&settings, &events, &shutdown).await else {
        return;
    };
    let Some(partitions) = retry_until_ok("finding or creating the topic", &shutdown, || {
        ensure_topic(&client, &settings.kafka_topic, &settings)
    })
    .await
    else {
        return;
    };
    events.emit(KafkaAnswered);
    if retry_until_ok("creating the partitions' leases", &shutdown, || {
        database.ensure_leases(&partitions)
    })
    .await
    .is_none()
    {
        return;
    }
    tracing::info!(
        topic = settings.kafka_topic,
        partitions = partitions.len(),
        readers = settings.kafka_readers,
        "consuming"
    );
    let client = Arc::new(client);
    let mut tasks = Vec::new();
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
        tasks.extend(writer::start_writers(
            &manager,
            producers,
            options,
            Arc::new(WriterProgress::default()),
            Arc::clone(&events),
        ));
    }
    let context = Arc::new(ReaderContext {
        client,
        topic: settings.kafka_topic.clone(),
        start_offset: settings.kafka_start_offset,
        fetch_max_bytes: settings.kafka_fetch_max_bytes,
        fetch_max_wait: settings.kafka_fetch_max_wait,
        tracker: Arc::clone(&tracker),
        events: Arc::clone(&events),
        shutdown: shutdown.clone(),
    });
    // Each partition has one reader; which partitions are read is the lease keeper's call.
    let mut readers = HashMap::new();
    for (index, share) in assign_partitions(&partitions, settings.kafka_readers)
        .into_iter()
        .enumerate()
        .filter(|(_, share)| !share.is_empty())
    {
        let (commands, received) = mpsc::unbounded_channel::<PartitionCommand>();
        readers.extend(share.iter().map(|partition| (*partition, commands.clone())));
        tasks.push(manager.spawn(
            Component::Reader(index),
            run_reader(Arc::clone(&context), received, sender.clone()),
        ));
    }
    drop(sender);
    if let Some(rejects_topic) = settings.rejects_topic.clone() {
        let Some(dead_letter_partitions) = retry_until_ok(
            "finding or creating the dead-letter topic",
            &shutdown,
            || ensure_topic(&context.client, &rejects_topic, &settings),
        )
        .await
        else {
            return;
        };
        let Some(producers) = writer::partition_clients(
            &context.client,
            &rejects_topic,
            &dead_letter_partitions,
            &shutdown,
        )
        .await
        else {
            return;
        };
        tracing::info!(
            topic = rejects_topic,
            "rejected records go to the dead-letter topic"
        );
        tasks.push(manager.spawn(
            Component::DeadLetters,
            run_dead_letters(
                DeadLetterContext {
                    database: database.clone(),
                    source_topic: settings.kafka_topic.clone(),
                    producers,
                    retention: settings.rejects_retention,
                    events: Arc::clone(&events),
                },
                shutdown.clone(),
            ),
        ));
    }
    let (memory_commands, received) = mpsc::unbounded_channel();
    tasks.push(manager.spawn(
        Component::Restorer,
        run_restorer(
            RestorerContext {
                database: database.clone(),
                memory,
                events: Arc::clone(&events),
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
                ttl: settings.lease_ttl,
                partitions,
                readers,
                tracker,
                memory: memory_commands,
                events,
            },
            shutdown.clone(),
        ),
    ));
    for task in tasks {
        let _ = task.await;
    }
}
