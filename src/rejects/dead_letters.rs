//! The dead-letter topic (`REJECTS_TOPIC`): every rejected record, produced with its original
//! key, value and headers, and orderstore's reason in headers of its own. `rejected_records`
//! is the outbox: the batch writers record a reject in the batch's transaction, and this task
//! produces the rejects still pending, partition by partition in offset order, and marks them
//! published only after the broker acknowledged them. A crash or a broker outage delays the
//! dead-letter topic, never loses from it, and never holds back the orders pipeline, which
//! does not wait for this task. A crash between the acknowledgement and the mark publishes
//! again: delivery is at least once, and the source topic, partition and offset in the
//! headers let a consumer drop repeats.
//!
//! An instance publishes the rejects of the partitions it holds leases on, so a partition's
//! rejects go out from one instance, in order. Batches of one partition are written by
//! several batch writers and commit in any order, so a committed reject may still have a lower
//! one on its way: only the rejects at or below their partition's stored `next_offset`, below
//! which every record is durable (`offsets/tracker.rs`), are read for publishing
//! (`store/postgres/rejects.rs`), and no reject published is ever followed by a lower one of
//! its partition. The topic trails the stored offsets, which move at most once per
//! `OFFSET_COMMIT_INTERVAL`. Source partition `p` goes to dead-letter partition `p % n`. Every
//! minute, published rejects older than `REJECTS_RETENTION` are deleted, a thousand at a
//! time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::events::{DeadLettersFailed, DeadLettersPublished, Events, PublishedRejectsDeleted};
use crate::order::kind_of_rule;
use crate::store::postgres::rejects::PendingReject;
use crate::store::postgres::Database;

/// Rejects read from the outbox at a time.
const BATCH: usize = 500;
/// Most record bytes per produce request: brokers refuse larger requests (Kafka's
/// `message.max.bytes` is about 1 MiB by default).
const PRODUCE_BYTES: usize = 1 << 20;
/// How long the task rests when nothing is pending.
const IDLE: Duration = Duration::from_millis(200);
/// How often published rejects past their retention are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Rejects deleted per statement.
const RETENTION_BATCH: usize = 1000;

/// What the dead-letter task needs.
#[derive(Debug)]
pub struct DeadLetterContext {
    /// The outbox.
    pub database: Database,
    /// The source topic, named in the headers.
    pub source_topic: String,
    /// A producing client per partition of the dead-letter topic.
    pub producers: Vec<Arc<PartitionClient>>,
    /// `REJECTS_RETENTION`; `None` keeps every reject.
    pub retention: Option<Duration>,
    /// Where publishing is reported.
    pub events: Arc<Events>,
    /// Which partitions this instance holds.
    pub state: Arc<crate::state::ServiceState>,
}

/// Publishes pending rejects until shutdown.
pub async fn run_dead_letters(context: DeadLetterContext, shutdown: CancellationToken) {
    let mut backoff = Backoff::for_outages();
    let mut next_retention = Instant::now();
    loop {
        let rest = match publish_pending(&context).await {
            Ok(0) => {
                backoff.reset();
                IDLE
            }
            Ok(_) => {
                backoff.reset();
                Duration::ZERO
            }
            Err(error) => {
                context.events.emit(DeadLettersFailed { error: &error });
                backoff.next_delay()
            }
        };
        if let Some(retention) = context
            .retention
            .filter(|_| Instant::now() >= next_retention)
        {
            next_retention = Instant::now() + RETENTION_EVERY;
            delete_expired(&context, retention).await;
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(rest) => {}
        }
    }
}

/// Publishes one batch of pending rejects; returns how many.
async fn publish_pending(context: &DeadLetterContext) -> Result<usize, String> {
    let owned = context.state.owned_partitions();
    if owned.is_empty() || context.producers.is_empty() {
        return Ok(0);
    }
    let pending = context
        .database
        .pending_rejects(&owned, BATCH)
        .await
        .map_err(|error| format!("reading the rejects to publish: {error}"))?;
    let mut published = 0;
    for group in produce_requests(&pending) {
        let partition = group[0].partition;
        let target = usize::try_from(partition).unwrap_or(0) % context.producers.len();
        let records = group
            .iter()
            .map(|reject| dead_letter(reject, &context.source_topic))
            .collect();
        context.producers[target]
            .produce(records, Compression::NoCompression)
            .await
            .map_err(|error| format!("producing to the dead-letter topic: {error}"))?;
        let offsets: Vec<i64> = group.iter().map(|reject| reject.offset).collect();
        context
            .database
            .mark_published(partition, &offsets)
            .await
            .map_err(|error| format!("marking rejects published: {error}"))?;
        published += group.len();
        context.events.emit(DeadLettersPublished {
            partition,
            n_records: group.len(),
        });
    }
    Ok(published)
}

/// `pending` (in partition and offset order) cut into produce requests: one partition each,
/// of at most [`PRODUCE_BYTES`] of keys and values, and at least one record.
fn produce_requests(pending: &[PendingReject]) -> impl Iterator<Item = &[PendingReject]> {
    let size =
        |reject: &PendingReject| reject.value.len() + reject.key.as_ref().map_or(0, Vec::len);
    let mut request_bytes = 0;
    pending.chunk_by(move |a, b| {
        request_bytes += size(a);
        let fits = a.partition == b.partition && request_bytes + size(b) <= PRODUCE_BYTES;
        if !fits {
            request_bytes = 0;
        }
        fits
    })
}

/// The dead-letter record of `reject`: its key, value and headers, and orderstore's.
pub fn dead_letter(reject: &PendingReject, source_topic: &str) -> Record {
    let (path, rule) = reject
        .reason
        .split_once(": ")
        .unwrap_or((".", reject.reason.as_str()));
    let mut headers: BTreeMap<String, Vec<u8>> = reject.headers.clone();
    for (name, value) in [
        (
            "orderstore.reason",
            reject
                .kind
                .clone()
                .unwrap_or_else(|| kind_of_rule(rule).to_string()),
        ),
        ("orderstore.path", path.to_string()),
        ("orderstore.rule", rule.to_string()),
        ("orderstore.source.topic", source_topic.to_string()),
        ("orderstore.source.partition", reject.partition.to_string()),
        ("orderstore.source.offset", reject.offset.to_string()),
        ("orderstore.rejected_at", reject.rejected_at.to_rfc3339()),
    ] {
        headers.insert(name.to_string(), value.into_bytes());
    }
    Record {
        key: reject.key.clone(),
        value: Some(reject.value.clone()),
        headers,
        timestamp: reject.rejected_at,
    }
}

/// Deletes published rejects past `retention`, a batch at a time.
async fn delete_expired(context: &DeadLetterContext, retention: Duration) {
    let mut deleted = 0;
    loop {
        match context
            .database
            .delete_published_rejects(retention, RETENTION_BATCH)
            .await
        {
            Ok(n) => {
                deleted += n;
                if n < RETENTION_BATCH as u64 {
                    break;
                }
            }
            Err(error) => {
                let error = format!("deleting published rejects past their retention: {error}");
                context.events.emit(DeadLettersFailed { error: &error });
                break;
            }
        }
    }
    if deleted > 0 {
        context
            .events
            .emit(PublishedRejectsDeleted { n_records: deleted });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(partition: i32, offset: i64, n_bytes: usize) -> PendingReject {
        PendingReject {
            partition,
            offset,
            value: vec![b'x'; n_bytes],
            key: None,
            headers: BTreeMap::new(),
            reason: ".: empty record".to_string(),
            kind: None,
            rejected_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn produce_requests_keep_to_one_partition_and_a_size() {
        let half = PRODUCE_BYTES / 2;
        let rejects = [
            pending(0, 1, 10),
            pending(0, 2, 10),
            pending(1, 1, half),
            pending(1, 2, half),
            pending(1, 3, 1),
            pending(1, 4, 3 * PRODUCE_BYTES),
            pending(1, 5, 1),
        ];
        let requests: Vec<Vec<(i32, i64)>> = produce_requests(&rejects)
            .map(|request| request.iter().map(|r| (r.partition, r.offset)).collect())
            .collect();
        assert_eq!(
            requests,
            vec![
                vec![(0, 1), (0, 2)],
                vec![(1, 1), (1, 2)],
                vec![(1, 3)],
                vec![(1, 4)],
                vec![(1, 5)],
            ]
        );
    }

    #[test]
    fn a_dead_letter_carries_the_record_and_why_it_was_rejected() {
        let reject = PendingReject {
            partition: 3,
            offset: 41,
            value: b"{\"order_uid\": 1}".to_vec(),
            key: Some(b"k".to_vec()),
            headers: BTreeMap::from([("trace".to_string(), b"t-1".to_vec())]),
            reason: "order_uid: invalid type: integer `1`, expected a string".to_string(),
            kind: None,
            rejected_at: chrono::DateTime::UNIX_EPOCH,
        };
        let record = dead_letter(&reject, "orders");
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&reject.value[..]));
        let header = |name: &str| String::from_utf8_lossy(&record.headers[name]).into_owned();
        assert_eq!(header("trace"), "t-1");
        assert_eq!(header("orderstore.reason"), "wrong_type");
        assert_eq!(header("orderstore.path"), "order_uid");
        assert_eq!(
            header("orderstore.rule"),
            "invalid type: integer `1`, expected a string"
        );
        assert_eq!(header("orderstore.source.topic"), "orders");
        assert_eq!(header("orderstore.source.partition"), "3");
        assert_eq!(header("orderstore.source.offset"), "41");
        assert_eq!(
            header("orderstore.rejected_at"),
            "1970-01-01T00:00:00+00:00"
        );
    }
}
