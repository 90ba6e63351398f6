//! Ingest: `HANDLERS` batch writer tasks that take records from the channel in batches, check
//! them against the contract, write the batch to PostgreSQL in one transaction, put the new
//! orders in memory, and only then mark the records' offsets durable.
//!
//! A batch writer takes whatever the channel holds, up to `BATCH_SIZE`, without waiting for a batch
//! to fill: under load batches fill by themselves, and a lone record is written at once.
//! A failed write is retried with backoff until it succeeds; nothing is dropped and no offset
//! moves meanwhile. Batch writers stop when the channel is closed and empty, so on shutdown they
//! drain what the readers already sent.
//!
//! A rejected record is counted ([`RecordRejected`]) once its reject row is committed, not when
//! the contract check finds it: a batch fenced by a lost lease is written again without the
//! lost partitions' records, and counting at the check would count its rejects twice (the new
//! owner counts those of the lost partitions when it reads them).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::events::{
    BatchRefused, BatchStored, Events, RecordRejected, RecordsConsumed, RejectKeptInHex,
    RejectWriteRetried, WriteRetried,
};
use crate::kafka::KafkaRecord;
use crate::offsets::OffsetTracker;
use crate::order::{Rejection, ValidOrder};
use crate::rejects::halt::HaltPolicy;
use crate::store::memory::MemoryStore;
use crate::store::postgres::leases::{Lease, LeaseGuard};
use crate::store::postgres::{Database, DbError, IncomingOrder, Inserted, RejectedRecord};
use crate::store::ServedOrder;

/// What all batch writers share.
#[derive(Debug)]
pub struct IngestContext {
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
    /// Where batches and rejections are reported.
    pub events: Arc<Events>,
    /// Where halted partitions are kept (`ON_REJECT=halt`).
    pub state: Arc<crate::state::ServiceState>,
    /// This instance, whose leases guard every write.
    pub instance: String,
    /// `LEASE_TTL`: how long a write may wait on anything.
    pub lease_ttl: std::time::Duration,
    /// `ON_REJECT`: whether a rejected record halts its partition.
    pub halt: HaltPolicy,
}

/// Most record bytes written in one transaction. PostgreSQL refuses a statement parameter
/// over 1 GiB; large records come in far smaller batches than `BATCH_SIZE` allows.
const MAX_TRANSACTION_BYTES: usize = 64 << 20;

/// One batch writer task; returns when the channel is closed and drained.
pub async fn run_batch_writer(context: Arc<IngestContext>) {
    let mut batch = Vec::with_capacity(context.batch_size);
    loop {
        let n_received = {
            let mut receiver = context.receiver.lock().await;
            receiver.recv_many(&mut batch, context.batch_size).await
        };
        if n_received == 0 {
            return;
        }
        context.events.emit(RecordsConsumed {
            n_records: n_received,
        });
        let mut rest = batch.as_slice();
        while !rest.is_empty() {
            let split = split_by_bytes(rest, MAX_TRANSACTION_BYTES);
            if let Err(lost) = handle_batch(&context, &rest[..split]).await {
                write_without_lost(&context, &rest[..split], lost).await;
            }
            rest = &rest[split..];
        }
        batch.clear();
    }
}

/// Writes `records` again without those of the partitions in `lost` (and of any lost
/// meanwhile): the new owner reads them again from the offset stored under its own lease.
/// Only this rare path copies records.
async fn write_without_lost(context: &IngestContext, records: &[KafkaRecord], mut lost: Vec<i32>) {
    let mut remaining: Vec<KafkaRecord> = records.to_vec();
    loop {
        tracing::info!(partitions = ?lost, "dropping a batch's records of lost partitions");
        remaining.retain(|record| !lost.contains(&record.partition));
        if remaining.is_empty() {
            return;
        }
        match handle_batch(context, &remaining).await {
            Ok(()) => return,
            Err(more) => lost = more,
        }
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

/// Checks, stores and acknowledges one batch of records (their consumption is counted by the
/// caller, once, however often a batch is written again); `Err` names the partitions whose
/// leases this instance lost, in which case nothing of the batch was written.
pub async fn handle_batch(
    context: &IngestContext,
    records: &[KafkaRecord],
) -> Result<(), Vec<i32>> {
    let started = Instant::now();
    let mut leases: Vec<Lease> = records
        .iter()
        .map(|record| Lease {
            partition: record.partition,
            epoch: record.epoch,
        })
        .collect();
    leases.sort_unstable();
    leases.dedup();
    let guard = LeaseGuard {
        instance: &context.instance,
        leases: &leases,
        ttl: context.lease_ttl,
    };
    let now = Utc::now();
    let mut accepted: Vec<(&KafkaRecord, ValidOrder)> = Vec::with_capacity(records.len());
    let mut rejects = Vec::new();
    // Why each reject was rejected, by partition and offset, counted once it is written.
    let mut rejections: Vec<(i32, i64, Rejection)> = Vec::new();
    // Under ON_REJECT=halt, which records the contract rejected, for the policy to decide.
    let mut rejected = HashMap::new();
    for record in records {
        let parsed = match &record.value {
            Some(value) => ValidOrder::parse(value, now, context.max_record_bytes),
            None => Err(Rejection {
                path: ".".into(),
                rule: "empty record: the record has no value".into(),
            }),
        };
        match parsed {
            Ok(order) => accepted.push((record, order)),
            Err(rejection) => {
                if context.halt.halts() {
                    rejected.insert((record.partition, record.offset), rejection.to_string());
                }
                rejects.push(RejectedRecord {
                    partition: record.partition,
                    offset: record.offset,
                    raw: record.value.as_deref().unwrap_or_default(),
                    key: record.key.as_deref(),
                    headers: Some(&record.headers),
                    reason: rejection.to_string(),
                    kind: rejection.kind(),
                });
                rejections.push((record.partition, record.offset, rejection));
            }
        }
    }

    // A halted partition's records from its halt on are neither written nor acknowledged.
    let decisions = context
        .halt
        .decide(records, &rejected, &context.state, &context.events);
    if !decisions.is_empty() {
        accepted.retain(|(record, _)| !decisions.is_held(record.partition, record.offset));
        rejects.retain(|reject| !decisions.is_held(reject.partition, reject.offset));
        rejections.retain(|(partition, offset, _)| !decisions.is_held(*partition, *offset));
    }

    // The same uid twice in one batch: the first (lowest offset) is the one stored.
    let mut seen = HashSet::with_capacity_and_hasher(accepted.len(), ahash::RandomState::new());
    let rows: Vec<IncomingOrder<'_>> = accepted
        .iter()
        .filter(|(_, order)| seen.insert(order.order_uid()))
        .map(|(record, order)| IncomingOrder {
            order,
            partition: record.partition,
            offset: record.offset,
        })
        .collect();

    let write_started = Instant::now();
    let (inserted, refused) = match write_with_retries(context, &rows, &rejects, &guard).await {
        Ok(inserted) => (inserted, Vec::new()),
        Err(DbError::Fenced(lost)) => return Err(lost),
        Err(error) => {
            // PostgreSQL refuses something in this batch. Write the records one at a time,
            // so that only the record it refuses is set aside (as a reject), never the batch.
            context.events.emit(BatchRefused {
                error: &error,
                n_records: records.len(),
            });
            write_one_by_one(context, &rows, &rejects, &guard).await?
        }
    };
    let write_seconds = write_started.elapsed().as_secs_f64();
    for (partition, offset, rejection) in rejections.iter().chain(&refused) {
        context.events.emit(RecordRejected {
            partition: *partition,
            offset: *offset,
            rejection,
        });
    }

    context.memory.insert_many(inserted.iter().map(|new| {
        let row = &rows[new.row];
        let order = row.order;
        ServedOrder::new(
            new.id,
            row.partition,
            order.order_uid(),
            order.date_created(),
            order.json().clone(),
        )
    }));
    context.tracker.mark_durable(
        records
            .iter()
            .filter(|record| {
                decisions.is_empty() || decisions.may_pass(record.partition, record.offset)
            })
            .map(|record| (record.partition, record.offset)),
    );

    context.events.emit(BatchStored {
        n_records: records.len(),
        n_stored: inserted.len(),
        n_duplicates: accepted.len() - inserted.len() - refused.len(),
        n_rejected: rejects.len() + refused.len(),
        seconds: started.elapsed().as_secs_f64(),
        write_seconds,
    });
    Ok(())
}

/// Writes a batch, retrying with backoff while PostgreSQL is unreachable or failing; returns
/// the error only when PostgreSQL refuses the data itself.
async fn write_with_retries(
    context: &IngestContext,
    rows: &[IncomingOrder<'_>],
    rejects: &[RejectedRecord<'_>],
    guard: &LeaseGuard<'_>,
) -> Result<Vec<Inserted>, DbError> {
    let mut backoff = Backoff::for_outages();
    loop {
        match context.database.write_batch(rows, rejects, guard).await {
            Ok(inserted) => return Ok(inserted),
            Err(error) if error.is_refusal() || matches!(error, DbError::Fenced(_)) => {
                return Err(error)
            }
            Err(error) => {
                context.events.emit(WriteRetried {
                    error: &error,
                    n_orders: rows.len(),
                    n_rejects: rejects.len(),
                });
                backoff.wait().await;
            }
        }
    }
}

/// The slow path for a batch PostgreSQL refused: each order alone; an order it refuses is
/// recorded as a reject with PostgreSQL's reason; then the rejects, alone too. A reject whose
/// bytes PostgreSQL refuses is kept with them in hex, so a record is never only in a log.
/// Returns the new orders and the orders refused, by partition and offset with PostgreSQL's
/// reason (for the caller to count once the batch is through).
async fn write_one_by_one(
    context: &IngestContext,
    rows: &[IncomingOrder<'_>],
    rejects: &[RejectedRecord<'_>],
    guard: &LeaseGuard<'_>,
) -> Result<(Vec<Inserted>, Vec<(i32, i64, Rejection)>), Vec<i32>> {
    let mut inserted = Vec::new();
    let mut refused = Vec::new();
    let mut refusals = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        match write_with_retries(context, std::slice::from_ref(row), &[], guard).await {
            // Written alone, the order is row 0 of its own batch: put back its place here.
            Ok(new) => inserted.extend(new.into_iter().map(|stored| Inserted {
                row: index,
                ..stored
            })),
            Err(DbError::Fenced(lost)) => return Err(lost),
            Err(error) => {
                let rejection = Rejection {
                    path: ".".into(),
                    rule: format!("PostgreSQL refused the order: {error}"),
                };
                refused.push(RejectedRecord {
                    partition: row.partition,
                    offset: row.offset,
                    raw: row.order.json().as_ref(),
                    key: None,
                    headers: None,
                    reason: rejection.to_string(),
                    kind: rejection.kind(),
                });
                refusals.push((row.partition, row.offset, rejection));
            }
        }
    }
    for reject in rejects.iter().chain(&refused) {
        let written = write_with_retries(context, &[], std::slice::from_ref(reject), guard).await;
        if let Err(DbError::Fenced(lost)) = written {
            return Err(lost);
        }
        if let Err(error) = written {
            context.events.emit(RejectKeptInHex {
                partition: reject.partition,
                offset: reject.offset,
                error: &error,
            });
            write_reject_as_hex(context, reject, &error.to_string(), guard).await?;
        }
    }
    Ok((inserted, refusals))
}

/// Stores a reject in hex, retrying with backoff until PostgreSQL takes it: hex digits are
/// ASCII, which no `bytea` refuses, so only an outage (or an operator's constraint) holds it
/// up, and then the record's offset waits with it rather than the record living in a log.
async fn write_reject_as_hex(
    context: &IngestContext,
    reject: &RejectedRecord<'_>,
    refusal: &str,
    guard: &LeaseGuard<'_>,
) -> Result<(), Vec<i32>> {
    let mut backoff = Backoff::for_outages();
    loop {
        match context
            .database
            .write_reject_as_hex(reject, refusal, guard)
            .await
        {
            Ok(()) => return Ok(()),
            Err(DbError::Fenced(lost)) => return Err(lost),
            Err(error) => {
                context.events.emit(RejectWriteRetried {
                    partition: reject.partition,
                    offset: reject.offset,
                    error: &error,
                });
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n_bytes: usize) -> KafkaRecord {
        KafkaRecord {
            partition: 0,
            offset: 0,
            epoch: 1,
            value: Some(vec![b'x'; n_bytes]),
            key: None,
            headers: Default::default(),
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
