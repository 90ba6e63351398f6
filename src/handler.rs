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
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::kafka::KafkaRecord;
use crate::offsets::OffsetTracker;
use crate::order::{Order, Rejection};
use crate::stats::Stats;
use crate::store::memory::{MemoryStore, StoredOrder};
use crate::store::postgres::{Database, DbError, Inserted, OrderRow, RejectRow};

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

/// Most record bytes written in one transaction. PostgreSQL refuses a statement parameter
/// over 1 GiB; large records come in far smaller batches than `BATCH_SIZE` allows.
const MAX_TRANSACTION_BYTES: usize = 64 << 20;

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
        let mut rest = batch.as_slice();
        while !rest.is_empty() {
            let split = split_by_bytes(rest, MAX_TRANSACTION_BYTES);
            handle_batch(&context, &rest[..split]).await;
            rest = &rest[split..];
        }
        batch.clear();
    }
}

/// How many of `records`, at least one, fit in `max_bytes` of values.
fn split_by_bytes(records: &[KafkaRecord], max_bytes: usize) -> usize {
    let mut total = 0;
    for (index, record) in records.iter().enumerate() {
        total += record.value.as_ref().map_or(0, Vec::len);
        if total > max_bytes {
            return index.max(1);
        }
    }
    records.len()
}

/// Checks, stores and acknowledges one batch of records.
pub async fn handle_batch(context: &HandlerContext, records: &[KafkaRecord]) {
    let started = Instant::now();
    context.stats.consumed(records.len());
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
                context.stats.rejected(rejection.kind());
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
    let mut seen = HashSet::with_capacity_and_hasher(accepted.len(), ahash::RandomState::new());
    let rows: Vec<OrderRow<'_>> = accepted
        .iter()
        .filter(|(_, order)| seen.insert(order.order_uid()))
        .map(|(record, order)| OrderRow {
            order,
            partition: record.partition,
            offset: record.offset,
        })
        .collect();

    let write_started = Instant::now();
    let (inserted, n_refused) = match write_with_retries(context, &rows, &rejects).await {
        Ok(inserted) => (inserted, 0),
        Err(error) => {
            // PostgreSQL refuses something in this batch. Write the records one at a time,
            // so that only the record it refuses is set aside (as a reject), never the batch.
            tracing::warn!(%error, "PostgreSQL refused a batch, writing its records one by one");
            write_one_by_one(context, &rows, &rejects).await
        }
    };
    let write_seconds = write_started.elapsed().as_secs_f64();

    context.memory.insert_many(inserted.iter().map(|new| {
        let order = rows[new.row].order;
        StoredOrder::new(
            new.id,
            order.order_uid(),
            order.date_created(),
            order.json().clone(),
        )
    }));
    context.tracker.done(
        records
            .iter()
            .map(|record| (record.partition, record.offset)),
    );

    context.stats.stored(inserted.len());
    context
        .stats
        .duplicates(accepted.len() - inserted.len() - n_refused);
    context.stats.batch_handled(
        records.len(),
        started.elapsed().as_secs_f64(),
        write_seconds,
    );
    tracing::debug!(
        records = records.len(),
        stored = inserted.len(),
        rejected = rejects.len(),
        "batch done"
    );
}

/// Writes a batch, retrying with backoff while PostgreSQL is unreachable or failing; returns
/// the error only when PostgreSQL refuses the data itself.
async fn write_with_retries(
    context: &HandlerContext,
    rows: &[OrderRow<'_>],
    rejects: &[RejectRow<'_>],
) -> Result<Vec<Inserted>, DbError> {
    let mut backoff = Backoff::for_outages();
    loop {
        match context.database.write_batch(rows, rejects).await {
            Ok(inserted) => return Ok(inserted),
            Err(error) if error.is_refusal() => return Err(error),
            Err(error) => {
                context.stats.write_retry();
                tracing::warn!(
                    %error,
                    orders = rows.len(),
                    rejects = rejects.len(),
                    "writing a batch to PostgreSQL failed, retrying"
                );
                backoff.wait().await;
            }
        }
    }
}

/// The slow path for a batch PostgreSQL refused: each order alone; an order it refuses is
/// recorded as a reject with PostgreSQL's reason; then the rejects, alone too. Returns the
/// new orders and how many orders were refused.
async fn write_one_by_one(
    context: &HandlerContext,
    rows: &[OrderRow<'_>],
    rejects: &[RejectRow<'_>],
) -> (Vec<Inserted>, usize) {
    let mut inserted = Vec::new();
    let mut refused = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        match write_with_retries(context, std::slice::from_ref(row), &[]).await {
            // Written alone, the order is row 0 of its own batch: put back its place here.
            Ok(new) => inserted.extend(new.into_iter().map(|stored| Inserted {
                row: index,
                ..stored
            })),
            Err(error) => {
                tracing::warn!(
                    partition = row.partition,
                    offset = row.offset,
                    %error,
                    "PostgreSQL refused an order, it is kept in rejected_records"
                );
                refused.push(RejectRow {
                    partition: row.partition,
                    offset: row.offset,
                    raw: row.order.json().as_ref(),
                    reason: format!(".: PostgreSQL refused the order: {error}"),
                });
            }
        }
    }
    for reject in rejects.iter().chain(&refused) {
        let written = write_with_retries(context, &[], std::slice::from_ref(reject)).await;
        if let Err(error) = written {
            tracing::error!(
                partition = reject.partition,
                offset = reject.offset,
                reason = reject.reason,
                %error,
                "PostgreSQL refused to record a rejected record; it is only in this log"
            );
        }
    }
    for _ in &refused {
        context.stats.rejected("postgres_refused");
    }
    (inserted, refused.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n_bytes: usize) -> KafkaRecord {
        KafkaRecord {
            partition: 0,
            offset: 0,
            value: Some(vec![b'x'; n_bytes]),
        }
    }

    #[test]
    fn batches_are_split_by_bytes_but_never_empty() {
        let records = vec![record(40), record(40), record(40), record(0)];
        assert_eq!(split_by_bytes(&records, 100), 2);
        assert_eq!(split_by_bytes(&records, 1000), 4);
        assert_eq!(split_by_bytes(&records, 10), 1);
        assert_eq!(split_by_bytes(&records[3..], 0), 1);
    }
}
