//! HTTP latency for the status page, recorded without contended state: every request adds
//! one to a bucket of its worker thread's own shard (a relaxed atomic increment on a cache
//! line no other thread writes), and the observer sums the shards once a second and diffs
//! the sums over the last 10 s. `/metrics` has the same latencies as a Prometheus histogram;
//! this copy exists so that the status page reads its own events, not the metrics text.
//!
//! Buckets are log-spaced, four per doubling from 256 ns (each about 19 % wide), up to about
//! 14 minutes; the last bucket holds everything slower.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Buckets per shard.
pub const BUCKETS: usize = 128;

/// Shards: worker threads take them in turn; more threads than shards share some.
const SHARDS: usize = 16;

/// The width of bucket 0, in nanoseconds, as a power of two.
const UNIT_SHIFT: u32 = 8;

/// One thread's counts, alone on its cache lines.
#[repr(align(128))]
struct Shard {
    buckets: [AtomicU64; BUCKETS],
}

impl Shard {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }
}

/// Every shard of the process: one HTTP server per process in production (tests that run
/// several instances in one process see each other's requests in these figures).
static SHARDS_OF_PROCESS: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];

/// The next shard a thread that records for the first time takes.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, picked once.
    static SHARD_OF_THREAD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// The bucket of a latency of `nanos` nanoseconds.
fn bucket_of(nanos: u64) -> usize {
    if nanos >> UNIT_SHIFT == 0 {
        return 0;
    }
    // The highest bit set says the doubling, the two bits below it the quarter.
    let exponent = 63 - nanos.leading_zeros();
    let quarter = (nanos >> (exponent - 2)) & 3;
    (1 + 4 * (exponent - UNIT_SHIFT) as usize + quarter as usize).min(BUCKETS - 1)
}

/// The lower and upper bounds of `bucket`, in nanoseconds; the last has no upper bound.
fn bucket_bounds(bucket: usize) -> (f64, f64) {
    let unit = (1_u64 << UNIT_SHIFT) as f64;
    if bucket == 0 {
        return (0.0, unit);
    }
    let exponent = ((bucket - 1) / 4) as i32;
    let quarter = ((bucket - 1) % 4) as f64;
    let base = unit * 2_f64.powi(exponent);
    let lower = base * (4.0 + quarter) / 4.0;
    if bucket == BUCKETS - 1 {
        return (lower, f64::INFINITY);
    }
    (lower, base * (5.0 + quarter) / 4.0)
}

/// Counts a request answered after `latency`. Called by the HTTP middleware on every request.
pub fn record_http_latency(latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    let bucket = bucket_of(nanos);
    SHARD_OF_THREAD.with(|shard| {
        SHARDS_OF_PROCESS[*shard].buckets[bucket].fetch_add(1, Ordering::Relaxed);
    });
}

/// Requests counted so far per bucket, summed over the shards.
pub fn http_latency_counts() -> [u64; BUCKETS] {
    let mut counts = [0_u64; BUCKETS];
    for shard in &SHARDS_OF_PROCESS {
        for (count, bucket) in counts.iter_mut().zip(&shard.buckets) {
            *count += bucket.load(Ordering::Relaxed);
        }
    }
    counts
}

/// The requests between two readings of [`http_latency_counts`]: how many, and their
/// latency quantiles.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyWindow {
    /// Requests in the window.
    pub requests: u64,
    /// Per bucket, requests in the window.
    counts: Vec<u64>,
}

impl LatencyWindow {
    /// The requests counted in `newer` and not in `older`.
    pub fn between(older: &[u64; BUCKETS], newer: &[u64; BUCKETS]) -> Self {
        let counts: Vec<u64> = older
            .iter()
            .zip(newer)
            .map(|(older, newer)| newer.saturating_sub(*older))
            .collect();
        Self {
            requests: counts.iter().sum(),
            counts,
        }
    }

    /// The `quantile` (0 to 1) of the window's latencies in milliseconds, interpolated
    /// linearly inside its bucket; `None` without requests.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        if self.requests == 0 {
            return None;
        }
        // The rank of the request sought, 1-based: the median of 1 request is that request.
        let rank = (quantile * self.requests as f64).ceil().max(1.0);
        let mut below = 0_u64;
        for (bucket, count) in self.counts.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            if (below + count) as f64 >= rank {
                let (lower, upper) = bucket_bounds(bucket);
                if upper.is_infinite() {
                    return Some(lower / 1e6);
                }
                let share = (rank - below as f64) / *count as f64;
                return Some((lower + (upper - lower) * share) / 1e6);
            }
            below += count;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_falls_inside_its_bucket() {
        for nanos in [
            0,
            1,
            255,
            256,
            300,
            511,
            512,
            1_000,
            123_456,
            9_999_999,
            10u64.pow(11),
        ] {
            let bucket = bucket_of(nanos);
            let (lower, upper) = bucket_bounds(bucket);
            assert!(
                (lower..upper).contains(&(nanos as f64)),
                "{nanos} ns in bucket {bucket} [{lower}, {upper})"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(10u64.pow(12)), BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_window_only() {
        let mut older = [0_u64; BUCKETS];
        older[bucket_of(50_000_000)] = 1000;
        let mut newer = older;
        // 98 requests of 100 µs and 2 of 20 ms in the window.
        newer[bucket_of(100_000)] += 98;
        newer[bucket_of(20_000_000)] += 2;
        let window = LatencyWindow::between(&older, &newer);
        assert_eq!(window.requests, 100);
        let p50 = window.quantile_ms(0.5).unwrap_or_default();
        let p99 = window.quantile_ms(0.99).unwrap_or_default();
        assert!((0.08..0.13).contains(&p50), "p50 {p50}");
        assert!((16.0..24.0).contains(&p99), "p99 {p99}");
        let empty = LatencyWindow::between(&newer, &newer);
        assert_eq!(empty.quantile_ms(0.5), None);
    }

    #[test]
    fn a_recorded_request_is_counted() {
        let before = http_latency_counts();
        record_http_latency(Duration::from_micros(300));
        let window = LatencyWindow::between(&before, &http_latency_counts());
        assert!(window.requests >= 1);
    }
}
