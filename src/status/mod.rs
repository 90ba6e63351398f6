//! What the status page (`/status`, `/status.json`) shows of this instance, kept from its own
//! events rather than parsed from `/metrics`: a ring of per-second ingest samples for the
//! last 15 minutes, the partitions' positions and the HTTP figures of the last 10 s, all
//! written once a second by the observer ([`StatusBoard::observe`]); and the PostgreSQL part
//! (leases, fleet, rejects), read at most once a second however many pages refresh
//! ([`StatusBoard::database_status`]). `latency.rs` counts HTTP latencies per thread.

pub mod latency;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};

use crate::events::Events;
use crate::offsets::PartitionPosition;
use crate::store::postgres::status::DatabaseStatus;
use crate::store::postgres::Database;
use latency::{http_latency_counts, LatencyWindow, BUCKETS};

/// Per-second samples kept: 15 minutes.
pub const SAMPLES_KEPT: usize = 900;

/// The window of the HTTP figures.
pub const HTTP_WINDOW: Duration = Duration::from_secs(10);

/// How long a PostgreSQL reading serves every page that asks.
const DATABASE_READING_LASTS: Duration = Duration::from_secs(1);

/// How long a PostgreSQL reading may take before the page says PostgreSQL does not answer.
const DATABASE_READING_LIMIT: Duration = Duration::from_secs(2);

/// One second of ingest: what the batch writers took, stored and rejected in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestSample {
    /// The end of the second, to the second.
    pub at: DateTime<Utc>,
    /// Records taken from the channel.
    pub consumed: u64,
    /// Orders newly stored.
    pub stored: u64,
    /// Records rejected.
    pub rejected: u64,
}

/// HTTP over the last [`HTTP_WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HttpFigures {
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// The median latency in milliseconds; `None` without requests.
    pub p50_ms: Option<f64>,
    /// The 99th percentile latency in milliseconds; `None` without requests.
    pub p99_ms: Option<f64>,
}

/// What the observer last wrote, copied out for one answer.
#[derive(Debug, Clone, Default)]
pub struct ObservedStatus {
    /// Per-second samples, oldest first.
    pub samples: Vec<IngestSample>,
    /// This instance's partitions, by partition.
    pub positions: Vec<PartitionPosition>,
    /// HTTP over the last 10 s.
    pub http: HttpFigures,
}

/// The consumer group's offsets as the mirror last read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupReading {
    /// The group.
    pub group: String,
    /// Per partition read here: the group's committed offset and the lag Kafka's tools show
    /// (high watermark minus it).
    pub readings: BTreeMap<i32, (i64, i64)>,
    /// Why the last round failed, when it did.
    pub error: Option<String>,
}

/// What the observer keeps between ticks.
#[derive(Debug, Default)]
struct Observed {
    samples: VecDeque<IngestSample>,
    positions: Vec<PartitionPosition>,
    /// Counter values at the last tick: consumed, stored, rejected.
    last_counts: [u64; 3],
    /// Latency bucket sums, one per tick, for the last [`HTTP_WINDOW`] and one more.
    http_readings: VecDeque<(Instant, [u64; BUCKETS])>,
    http: HttpFigures,
}

/// The PostgreSQL reading pages share, and when it was taken.
type DatabaseReading = (Instant, Result<Arc<DatabaseStatus>, String>);

/// The status of this instance, shared by the observer (writer) and HTTP (readers).
#[derive(Debug)]
pub struct StatusBoard {
    /// This instance's id.
    pub instance: String,
    /// When the instance started.
    pub started_at: DateTime<Utc>,
    started: Instant,
    /// The dead-letter topic, when one is set.
    pub dead_letter_topic: Option<String>,
    /// The counters the totals are read from.
    pub events: Arc<Events>,
    observed: Mutex<Observed>,
    /// The consumer group's offsets as the mirror last read them: the group, and per partition
    /// read here its committed offset and lag (`consumer_group/mirror.rs`).
    group: Mutex<Option<GroupReading>>,
    /// The last PostgreSQL reading: an async lock, so pages asking while one is under way
    /// wait for it instead of starting their own.
    database_reading: tokio::sync::Mutex<Option<DatabaseReading>>,
}

impl StatusBoard {
    /// An empty board for `instance`, started now.
    pub fn new(instance: String, dead_letter_topic: Option<String>, events: Arc<Events>) -> Self {
        Self {
            instance,
            started_at: Utc::now(),
            started: Instant::now(),
            dead_letter_topic,
            events,
            observed: Mutex::new(Observed::default()),
            group: Mutex::new(None),
            database_reading: tokio::sync::Mutex::new(None),
        }
    }

    /// Seconds since the instance started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The observer's tick: one ingest sample from the counters' growth since the last tick,
    /// the partitions' positions, and the HTTP figures of the last 10 s.
    pub fn observe(&self, positions: Vec<PartitionPosition>) {
        let counters = self.events.counters();
        let counts = [counters.consumed(), counters.stored(), counters.rejected()];
        let now = Instant::now();
        let latency_counts = http_latency_counts();
        let mut observed = self.observed();
        let [consumed, stored, rejected] =
            std::array::from_fn(|index| counts[index].saturating_sub(observed.last_counts[index]));
        observed.last_counts = counts;
        if observed.samples.len() == SAMPLES_KEPT {
            observed.samples.pop_front();
        }
        observed.samples.push_back(IngestSample {
            at: Utc::now().trunc_subsecs(0),
            consumed,
            stored,
            rejected,
        });
        observed.positions = positions;
        observed.http_readings.push_back((now, latency_counts));
        while observed
            .http_readings
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > HTTP_WINDOW)
        {
            observed.http_readings.pop_front();
        }
        observed.http = match observed.http_readings.front() {
            Some((at, oldest)) if now.duration_since(*at) > Duration::ZERO => {
                let window = LatencyWindow::between(oldest, &latency_counts);
                HttpFigures {
                    requests_per_second: window.requests as f64
                        / now.duration_since(*at).as_secs_f64(),
                    p50_ms: window.quantile_ms(0.5),
                    p99_ms: window.quantile_ms(0.99),
                }
            }
            _ => HttpFigures::default(),
        };
    }

    /// The group mirror's round: `group`'s committed offset and lag per partition read here
    /// that the group has an offset for.
    pub fn observe_group(&self, group: &str, readings: BTreeMap<i32, (i64, i64)>) {
        *self.group.lock().unwrap_or_else(PoisonError::into_inner) = Some(GroupReading {
            group: group.to_string(),
            readings,
            error: None,
        });
    }

    /// The group mirror's round failed: the last readings stay, with the reason.
    pub fn group_failed(&self, group: &str, error: String) {
        let mut reading = self.group.lock().unwrap_or_else(PoisonError::into_inner);
        let reading = reading.get_or_insert_with(|| GroupReading {
            group: group.to_string(),
            ..GroupReading::default()
        });
        reading.error = Some(error);
    }

    /// What the group mirror last read; `None` before its first round or without a group.
    pub fn group_reading(&self) -> Option<GroupReading> {
        self.group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of what the observer last wrote.
    pub fn observed_status(&self) -> ObservedStatus {
        let observed = self.observed();
        ObservedStatus {
            samples: observed.samples.iter().copied().collect(),
            positions: observed.positions.clone(),
            http: observed.http,
        }
    }

    /// The PostgreSQL part of the status: the last reading when it is under a second old,
    /// otherwise a new one (which pages asking meanwhile wait for). An error is the reason
    /// PostgreSQL did not answer, kept for a second like an answer.
    pub async fn database_status(
        &self,
        database: &Database,
    ) -> Result<Arc<DatabaseStatus>, String> {
        let mut reading = self.database_reading.lock().await;
        if let Some((at, status)) = reading.as_ref() {
            if at.elapsed() < DATABASE_READING_LASTS {
                return status.clone();
            }
        }
        let status = match tokio::time::timeout(DATABASE_READING_LIMIT, database.status()).await {
            Ok(Ok(status)) => Ok(Arc::new(status)),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no answer within {} s",
                DATABASE_READING_LIMIT.as_secs()
            )),
        };
        *reading = Some((Instant::now(), status.clone()));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RecordsConsumed;

    #[test]
    fn samples_are_the_growth_of_the_counters_and_the_ring_keeps_fifteen_minutes() {
        let events = Arc::new(Events::default());
        let board = StatusBoard::new("one".into(), None, Arc::clone(&events));
        board.observe(Vec::new());
        events.emit(RecordsConsumed { n_records: 7 });
        board.observe(Vec::new());
        let samples = board.observed_status().samples;
        assert_eq!(
            samples
                .iter()
                .map(|sample| sample.consumed)
                .collect::<Vec<_>>(),
            [0, 7]
        );
        for _ in 0..SAMPLES_KEPT {
            board.observe(Vec::new());
        }
        let samples = board.observed_status().samples;
        assert_eq!(samples.len(), SAMPLES_KEPT);
        assert!(samples.iter().all(|sample| sample.consumed == 0));
    }
}
