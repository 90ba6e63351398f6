//! The observer: every second it sets the state gauges (memory, channel, lag per partition)
//! and writes a due rejection summary; every 10 s while records come in, it logs one progress
//! line: rate, lag, stored, rejected, and the partitions this instance holds. It also feeds
//! the status page's board (`status/`): a sample per second, positions, HTTP latency.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{Events, StateObserved};
use crate::kafka::KafkaRecord;
use crate::offsets::OffsetTracker;
use crate::store::memory::MemoryStore;

/// How often the gauges are set.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Gauge ticks between two progress lines.
const TICKS_PER_LOG: u64 = 10;

/// What the observer reads and writes.
#[derive(Debug)]
pub struct ObserverContext {
    /// Counters and the rejection summary.
    pub events: Arc<Events>,
    /// The partitions owned, for the progress line.
    pub state: Arc<crate::state::ServiceState>,
    /// Lag per partition.
    pub tracker: Arc<OffsetTracker>,
    /// Orders in memory.
    pub memory: Arc<MemoryStore>,
    /// The channel, without keeping it open: it must close when the readers stop.
    pub channel: mpsc::WeakSender<KafkaRecord>,
    /// The status page's samples, positions and HTTP figures, written every tick.
    pub status: Arc<crate::status::StatusBoard>,
}

/// The process's resident set size, from `VmRSS` in `/proc/self/status` (Linux); `None`
/// where there is no such file. The Prometheus exporter collects no process metrics, and
/// memory is what an in-memory store costs, so the observer reads it every second.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    resident_bytes_in(&status)
}

/// `VmRSS`'s kilobytes in a `/proc/<pid>/status` text, in bytes.
fn resident_bytes_in(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kilobytes * 1024)
}

/// Runs until shutdown; writes the pending rejection summary on the way out (the application
/// writes the one of the last batches after they drained).
pub async fn run_observer(context: ObserverContext, shutdown: CancellationToken) {
    let ObserverContext {
        events,
        state,
        tracker,
        memory,
        channel,
        status,
    } = context;
    let mut ticker = tokio::time::interval(GAUGES_EVERY);
    let mut last_consumed = 0;
    // Partitions reported last time: one given up since is reported once more, at zero, so
    // its gauges do not stay at the values of its last owner's reading.
    let mut reported: Vec<i32> = Vec::new();
    for tick in 1_u64.. {
        tokio::select! {
            _ = shutdown.cancelled() => {
                events.flush_rejection_summary(true);
                return;
            }
            _ = ticker.tick() => {}
        }
        let positions = tracker.positions();
        let given_up: Vec<i32> = reported
            .iter()
            .copied()
            .filter(|partition| !positions.iter().any(|p| p.partition == *partition))
            .collect();
        let lags: Vec<(i32, i64)> = positions
            .iter()
            .map(|position| {
                let lag = (position.high_watermark - position.committable).max(0);
                (position.partition, lag)
            })
            .chain(given_up.iter().map(|partition| (*partition, 0)))
            .collect();
        let stalled: Vec<(i32, f64)> = positions
            .iter()
            .map(|position| (position.partition, position.stalled.as_secs_f64()))
            .chain(given_up.iter().map(|partition| (*partition, 0.0)))
            .collect();
        reported = positions
            .iter()
            .map(|position| position.partition)
            .collect();
        // A sender is upgraded only for the time of the reading.
        let (channel_fill, channel_capacity) = channel
            .upgrade()
            .map(|sender| {
                (
                    sender.max_capacity() - sender.capacity(),
                    sender.max_capacity(),
                )
            })
            .unwrap_or((0, 0));
        events.emit(StateObserved {
            orders_in_memory: memory.len(),
            channel_fill,
            channel_capacity,
            lags: &lags,
            stalled: &stalled,
            resident_bytes: resident_memory_bytes(),
        });
        status.observe(positions);
        crate::events::prometheus::prometheus().run_upkeep();
        events.flush_rejection_summary(false);

        let counters = events.counters();
        let consumed = counters.consumed();
        if tick % TICKS_PER_LOG != 0 || consumed == last_consumed {
            continue;
        }
        tracing::info!(
            records_per_second =
                (consumed - last_consumed) / (TICKS_PER_LOG * GAUGES_EVERY.as_secs()),
            lag = lags.iter().map(|(_, lag)| lag).sum::<i64>(),
            stored = counters.stored(),
            duplicates = counters.duplicates(),
            rejected = counters.rejected(),
            in_memory = memory.len(),
            partitions = ?state.owned_partitions(),
            "ingesting"
        );
        last_consumed = consumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_vm_rss() {
        let status = "Name:\torderstore\nVmPeak:\t  20000 kB\nVmRSS:\t   1536 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes_in(status), Some(1536 * 1024));
        assert_eq!(resident_bytes_in("Name:\tx\n"), None);
    }
}
