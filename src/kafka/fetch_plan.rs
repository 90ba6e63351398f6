//! How much a partition's next fetch asks for, and how long the broker may hold it.

use std::time::Duration;

/// Most bytes the first fetch of a partition asks for.
const FIRST_FETCH_BYTES: i32 = 64 << 10;

/// The wait of a caught-up partition's first fetch after an answer with records: short, so that
/// orders keep arriving within milliseconds on a broker that holds a fetch for part of its wait
/// whatever it has (tansu, about half), and doubling with every empty answer up to
/// `KAFKA_FETCH_MAX_WAIT`, so that an idle partition is polled as rarely as before.
pub const LIVELY_FETCH_WAIT: Duration = Duration::from_millis(10);

/// What a partition's next fetch asks the broker for: how many bytes, and how long the broker
/// may hold it open waiting for records.
///
/// - Bytes: 64 KiB (`FIRST_FETCH_BYTES`) first, then twice the size of the fetch before, up to
///   `KAFKA_FETCH_MAX_BYTES`. On a backlog, nothing reaches PostgreSQL (the slowest stage)
///   before the first fetches are decoded and checked; small first fetches give the batch
///   writers work at once, and six doublings later fetches are full size.
/// - Wait: none while the partition is behind its high watermark. Once it has caught up, the
///   wait starts at [`LIVELY_FETCH_WAIT`] and doubles with every empty answer up to
///   `KAFKA_FETCH_MAX_WAIT`; an answer with records starts it short again. Kafka answers as
///   soon as it has records whatever the wait, but tansu holds every fetch for about half of
///   its wait even when it has records: a steady stream read with the full wait would reach
///   memory in bursts, hundreds of milliseconds late, and a backlog would be read one held
///   fetch at a time. An idle partition settles at `KAFKA_FETCH_MAX_WAIT` after a handful of
///   fetches. An answer with no records below the high watermark counts as caught up (see
///   [`FetchPlan::pause`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPlan {
    bytes: i32,
    max_bytes: i32,
    /// The wait of the next fetch once caught up.
    wait: Duration,
    max_wait: Duration,
    behind: bool,
    pause: bool,
}

impl FetchPlan {
    /// The plan for a partition's first fetch: it may be behind, so it does not wait.
    pub fn new(max_bytes: i32, max_wait: Duration) -> Self {
        Self {
            bytes: FIRST_FETCH_BYTES.min(max_bytes),
            max_bytes,
            wait: LIVELY_FETCH_WAIT.min(max_wait),
            max_wait,
            behind: true,
            pause: false,
        }
    }

    /// The byte range for the next fetch.
    pub fn bytes(&self) -> std::ops::Range<i32> {
        1..self.bytes
    }

    /// How long the broker may hold the next fetch, in milliseconds.
    pub fn max_wait_ms(&self) -> i32 {
        if self.behind {
            0
        } else {
            i32::try_from(self.wait.as_millis()).unwrap_or(i32::MAX)
        }
    }

    /// How long to wait before the next fetch, if at all: after a full-size fetch came back
    /// empty below the high watermark. rskafka reads committed records only, so what is there
    /// is a transaction still open (Kafka holds such a fetch for its wait) or a transaction
    /// marker, which rskafka leaves out of its answers. Kafka answers a fetch for a marker at
    /// once whatever its wait: without a pause the reader would spin until the producer writes
    /// again.
    pub fn pause(&self) -> Option<Duration> {
        self.pause.then_some(self.max_wait)
    }

    /// Plans the next fetch after an answer of `n_records` records: `next_offset` is where it
    /// reads from and `high_watermark` the one the answer gave. Every answer doubles the size,
    /// empty ones too, so that a record larger than the current size is fetched once the size
    /// holds it. Records make the next caught-up wait short; an empty answer doubles it. An
    /// empty answer below the high watermark makes the next fetch wait as a caught-up one
    /// does, after a [`pause`](Self::pause).
    pub fn answered(&mut self, n_records: usize, next_offset: i64, high_watermark: i64) {
        let empty_below_watermark = n_records == 0 && next_offset < high_watermark;
        self.pause = empty_below_watermark && self.bytes == self.max_bytes;
        self.bytes = self.bytes.saturating_mul(2).min(self.max_bytes);
        self.behind = n_records > 0 && next_offset < high_watermark;
        self.wait = if n_records > 0 {
            LIVELY_FETCH_WAIT.min(self.max_wait)
        } else {
            self.wait.saturating_mul(2).min(self.max_wait)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_start_small_and_double_up_to_the_maximum() {
        let mut plan = FetchPlan::new(300 << 10, Duration::from_millis(500));
        let mut ends = Vec::new();
        for _ in 0..6 {
            ends.push(plan.bytes().end);
            plan.answered(100, 0, 10);
        }
        assert_eq!(
            ends,
            [
                64 << 10,
                128 << 10,
                256 << 10,
                300 << 10,
                300 << 10,
                300 << 10
            ]
        );

        let mut growing = FetchPlan::new(4 << 20, Duration::from_millis(500));
        growing.answered(0, 0, 10);
        assert_eq!(
            growing.pause(),
            None,
            "a larger fetch may hold a larger record"
        );

        let below_first = FetchPlan::new(1024, Duration::ZERO);
        assert_eq!(below_first.bytes(), 1..1024);

        let mut at_limit = FetchPlan::new(i32::MAX, Duration::from_secs(3600 * 24 * 365));
        for _ in 0..40 {
            at_limit.answered(100, 0, 10);
        }
        assert_eq!(at_limit.bytes(), 1..i32::MAX);
        assert_eq!(at_limit.max_wait_ms(), 0);
        for _ in 0..40 {
            at_limit.answered(0, 10, 10);
        }
        assert_eq!(
            at_limit.max_wait_ms(),
            i32::MAX,
            "a wait beyond i32 milliseconds is capped"
        );
    }

    #[test]
    fn fetches_wait_only_once_caught_up() {
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500));
        assert_eq!(plan.max_wait_ms(), 0, "the first fetch may be behind");
        plan.answered(3000, 3000, 10_000);
        assert_eq!(plan.max_wait_ms(), 0, "records remain");
        plan.answered(7000, 10_000, 10_000);
        assert_eq!(plan.max_wait_ms(), 10, "caught up while records flow");
        plan.answered(1, 10_001, 10_050);
        assert_eq!(plan.max_wait_ms(), 0, "new records arrived");
        assert_eq!(plan.pause(), None);
        plan.answered(0, 10_001, 10_050);
        assert_eq!(
            plan.pause(),
            Some(Duration::from_millis(500)),
            "a transaction marker"
        );
        assert_eq!(
            plan.max_wait_ms(),
            20,
            "nothing came back below the watermark"
        );
        plan.answered(0, 10_050, 10_050);
        assert_eq!(plan.pause(), None, "caught up: the fetch itself waits");
        plan.answered(10, 10_060, 10_060);
        assert_eq!(plan.pause(), None);
        assert_eq!(plan.max_wait_ms(), 10);
    }

    #[test]
    fn an_idle_partition_waits_longer_up_to_the_maximum() {
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500));
        plan.answered(5, 5, 5);
        let mut waits = vec![plan.max_wait_ms()];
        for _ in 0..8 {
            plan.answered(0, 5, 5);
            waits.push(plan.max_wait_ms());
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 500, 500, 500]);
        plan.answered(1, 6, 6);
        assert_eq!(plan.max_wait_ms(), 10, "records make the wait short again");

        let mut short = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(4));
        short.answered(1, 1, 1);
        assert_eq!(short.max_wait_ms(), 4, "never longer than the maximum");
        let mut none = FetchPlan::new(FIRST_FETCH_BYTES, Duration::ZERO);
        none.answered(0, 1, 1);
        assert_eq!(none.max_wait_ms(), 0);
    }
}
