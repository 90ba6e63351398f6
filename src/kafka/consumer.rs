//! The Kafka side of the service, one component: connect, find or create the topic, start one
//! task per reader (and the fake-data writer when it is on), and wait for them. Kafka being
//! down delays only this: HTTP serves meanwhile. When it returns, the last sender of the
//! channel is gone, which lets the batch writers drain and stop.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{assign_partitions, connect, ensure_topic, run_reader, KafkaRecord, ReaderContext};
use crate::backoff::retry_until_ok;
use crate::config::Settings;
use crate::events::{Events, KafkaAnswered};
use crate::fake_data::writer::{self, WriterOptions, WriterProgress};
use crate::offsets::OffsetTracker;
use crate::shutdown::{Component, ShutdownManager};

/// What the Kafka side needs.
#[derive(Debug)]
pub struct ConsumerContext {
    /// Every setting (brokers, topic, readers, writer).
    pub settings: Settings,
    /// The next offset per partition, as stored in PostgreSQL.
    pub stored_offsets: HashMap<i32, i64>,
    /// Where readers register records.
    pub tracker: Arc<OffsetTracker>,
    /// Where readers and the writer report.
    pub events: Arc<Events>,
    /// The channel to the batch writers.
    pub sender: mpsc::Sender<KafkaRecord>,
}

/// Runs the readers (and the writer) until shutdown.
pub async fn run_consumer(context: ConsumerContext, manager: ShutdownManager) {
    let ConsumerContext {
        settings,
        stored_offsets,
        tracker,
        events,
        sender,
    } = context;
    let shutdown = manager.token().clone();
    let Some(client) = connect(&settings, &events, &shutdown).await else {
        return;
    };
    let Some(partitions) = retry_until_ok("finding or creating the topic", &shutdown, || {
        ensure_topic(&client, &settings)
    })
    .await
    else {
        return;
    };
    events.emit(KafkaAnswered);
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
        stored_offsets,
        start_offset: settings.kafka_start_offset,
        fetch_max_bytes: settings.kafka_fetch_max_bytes,
        fetch_max_wait: settings.kafka_fetch_max_wait,
        tracker,
        events,
        shutdown: shutdown.clone(),
    });
    for (index, owned) in assign_partitions(&partitions, settings.kafka_readers)
        .into_iter()
        .enumerate()
        .filter(|(_, owned)| !owned.is_empty())
    {
        tasks.push(manager.spawn(
            Component::Reader(index),
            run_reader(Arc::clone(&context), owned, sender.clone()),
        ));
    }
    drop(sender);
    for task in tasks {
        let _ = task.await;
    }
}
