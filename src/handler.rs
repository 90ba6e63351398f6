//! Handlers: `HANDLERS` tasks that take records from the channel in batches, check them against
//! the contract, write the batch to PostgreSQL in one transaction, put the new orders in memory,
//! and only then mark the records' offsets done.
//!
//! A handler takes whatever the channel holds, up to `BATCH_SIZE`, without waiting for a batch
//! to fill: under load batches fill by themselves, and a lone record is written at once.
//! A failed write is retried with backoff until it succeeds; nothing is dropped and no offset
//! moves meanwhile. Handlers stop when the channel is closed and empty, so on shutdown they
//! drain what the readers already sent.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, Mutex};

use crate::backoff::Backoff;
use crate::kafka::KafkaRecord;
use crate::offsets::OffsetTracker;
use crate::order::{Order, Rejection};
use crate::stats::Stats;
use crate::store::memory::{MemoryStore, StoredOrder};
use crate::store::postgres::{Database, OrderRow, RejectRow};

/// What all handlers share.
#[derive(Debug)]
pub struct HandlerContext {
    /// The channel's receiving end, taken in turns.
    pub receiver: Mutex<mpsc::Receiver<KafkaRecord>>,
    /// Most records per batch.
    pub batch_size: usize,
    /// Largest record accepted.
    pub max_record_bytes: usize,
    /// PostgreSQL.
    pub database: Database,
    /// Memory.
    pub memory: Arc<MemoryStore>,
    /// Offsets in flight.
    pub tracker: Arc<OffsetTracker>,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// One handler task; returns when the channel is closed and drained.
pub async fn run_handler(context: Arc<HandlerContext>) {
    let mut batch = Vec::with_capacity(context.batch_size);
    loop {
        let n_received = {
            let mut receiver = context.receiver.lock().await;
            receiver.recv_many(&mut batch, context.batch_size).await
        };
        if n_received == 0 {
            return;
        }
        handle_batch(&context, &batch).await;
        batch.clear();
    }
}

/// Checks, stores and acknowledges one batch of records.
pub async fn handle_batch(context: &HandlerContext, records: &[KafkaRecord]) {
    Stats::add(&context.stats.consumed, records.len());
    let now = Utc::now();
    let mut accepted: Vec<(&KafkaRecord, Order)> = Vec::with_capacity(records.len());
    let mut rejects = Vec::new();
    for record in records {
        let parsed = match &record.value {
            Some(value) => Order::parse(value, now, context.max_record_bytes),
            None => Err(Rejection {
                path: ".".into(),
                rule: "empty record: the record has no value".into(),
            }),
        };
        match parsed {
            Ok(order) => accepted.push((record, order)),
            Err(rejection) => {
                tracing::warn!(
                    partition = record.partition,
                    offset = record.offset,
                    reason = %rejection,
                    "record rejected, it is kept in rejected_records"
                );
                rejects.push(RejectRow {
                    partition: record.partition,
                    offset: record.offset,
                    raw: record.value.as_deref().unwrap_or_default(),
                    reason: rejection.to_string(),
                });
            }
        }
    }

    // The same uid twice in one batch: the first (lowest offset) is the one stored.
    let mut seen = HashSet::with_capacity(accepted.len());
    let rows: Vec<OrderRow<'_>> = accepted
        .iter()
        .filter(|(_, order)| seen.insert(order.order_uid()))
        .map(|(record, order)| OrderRow {
            order,
            partition: record.partition,
            offset: record.offset,
        })
        .collect();

    let mut backoff = Backoff::for_outages();
    let inserted = loop {
        match context.database.write_batch(&rows, &rejects).await {
            Ok(inserted) => break inserted,
            Err(error) => {
                Stats::add(&context.stats.write_retries, 1);
                tracing::warn!(
                    %error,
                    orders = rows.len(),
                    rejects = rejects.len(),
                    "writing a batch to PostgreSQL failed, retrying"
                );
                backoff.wait().await;
            }
        }
    };

    let by_uid: std::collections::HashMap<&str, &Order> = rows
        .iter()
        .map(|row| (row.order.order_uid(), row.order))
        .collect();
    context
        .memory
        .insert_many(inserted.iter().filter_map(|new| {
            by_uid.get(new.order_uid.as_str()).map(|order| {
                StoredOrder::new(
                    new.id,
                    order.order_uid(),
                    order.date_created(),
                    order.json().clone(),
                )
            })
        }));
    context.tracker.done(
        records
            .iter()
            .map(|record| (record.partition, record.offset)),
    );

    Stats::add(&context.stats.stored, inserted.len());
    Stats::add(&context.stats.duplicates, accepted.len() - inserted.len());
    Stats::add(&context.stats.rejected, rejects.len());
    tracing::debug!(
        records = records.len(),
        stored = inserted.len(),
        duplicates = accepted.len() - inserted.len(),
        rejected = rejects.len(),
        "batch done"
    );
}
