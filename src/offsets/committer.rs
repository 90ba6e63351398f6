//! The offset committer: stores each partition's position (`next_offset`, below which every
//! record is durable, and `fetch_from`, where reading resumes) in PostgreSQL as soon as a batch
//! is done, at most once per `OFFSET_COMMIT_INTERVAL`, under the lease the offset was read
//! under. It is the only writer of `kafka_offsets`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::OffsetTracker;
use crate::backoff::{retry_until_ok, Backoff};
use crate::events::{Events, OffsetsNotStored};
use crate::store::postgres::Database;

/// Writes the positions that moved as soon as a batch is done, at most once per `interval`
/// (batches finishing meanwhile are written together), and retries a failed write with
/// backoff; after `batch_writers_done`, writes the last ones, retrying until PostgreSQL takes
/// them.
pub async fn run_committer(
    database: Database,
    instance: String,
    tracker: Arc<OffsetTracker>,
    interval: Duration,
    events: Arc<Events>,
    batch_writers_done: CancellationToken,
) {
    let mut next_write = tokio::time::Instant::now();
    let mut backoff = Backoff::for_outages();
    let mut retry_in = None;
    loop {
        let last = tokio::select! {
            _ = batch_writers_done.cancelled() => true,
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
        let offsets = tracker.offsets_to_store();
        if !offsets.is_empty() {
            if last {
                let never = CancellationToken::new();
                let written = retry_until_ok("writing the last offsets", &never, || {
                    database.store_offsets(&instance, &offsets)
                })
                .await;
                if let Some(stored) = written {
                    tracker.mark_stored(&stored);
                    tracing::info!(?stored, "final offsets stored");
                }
            } else {
                match database.store_offsets(&instance, &offsets).await {
                    Ok(stored) => {
                        // An offset not stored belongs to a partition whose lease moved on;
                        // the lease keeper stops tracking it.
                        tracker.mark_stored(&stored);
                        backoff.reset();
                    }
                    Err(error) => {
                        let delay = backoff.next_delay();
                        retry_in = Some(delay);
                        events.emit(OffsetsNotStored {
                            error: &error,
                            delay,
                        });
                    }
                }
            }
        }
        if last {
            return;
        }
    }
}
