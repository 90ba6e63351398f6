//! How much a partition's next fetch asks for, and how long the broker may hold it. The rules
//! are on [`FetchPlan`]; why the waits are what they are, and what they cost the broker, is in
//! `docs/freshness.md` ("How long a fetch waits"), the one place that explains them.

use std::time::{Duration, Instant};

/// Most bytes the first fetch of a partition asks for: small, so that on a backlog the batch
/// writers have work before a full-size fetch could be decoded and checked.
const FIRST_FETCH_BYTES: i32 = 64 << 10;

/// The wait of a caught-up partition's fetches while records flow. It is short because a
/// broker that reads a partition when the fetch arrives and answers only after the whole wait
/// (tansu) delays a steady stream by this much.
pub const LIVELY_FETCH_WAIT: Duration = Duration::from_millis(10);

/// How long after its last records a partition counts as lively and keeps the short wait;
/// after that, every empty answer doubles the wait up to [`WARM_FETCH_WAIT`].
pub const LIVELY_PERIOD: Duration = Duration::from_secs(1);

/// The longest wait of a partition that is quiet but warm: started, or last had records, less
/// than [`WARM_PERIOD`] ago. On a broker that answers only after the whole wait, the first
/// records after a pause wait for the fetch that missed them and for the one that reads them;
/// this keeps that short while the pause is recent.
pub const WARM_FETCH_WAIT: Duration = Duration::from_millis(50);

/// How long a partition stays warm after it was started or last had records; after that,
/// every empty answer doubles the wait up to `KAFKA_FETCH_MAX_WAIT`.
pub const WARM_PERIOD: Duration = Duration::from_secs(60);

/// What a partition's next fetch asks the broker for: how many bytes, and how long the broker
/// may hold it open waiting for records.
///
/// - Bytes: `FIRST_FETCH_BYTES` first, then twice the size of the fetch before, up to
///   `KAFKA_FETCH_MAX_BYTES`. Every answer doubles the size, empty ones too, so that a record
///   larger than the current size is fetched once the size holds it.
/// - Wait: none while the partition is behind its high watermark. Once it has caught up, the
///   wait is [`LIVELY_FETCH_WAIT`] as long as the partition's last records came less than
///   [`LIVELY_PERIOD`] ago; after that, every empty answer doubles it up to
///   [`WARM_FETCH_WAIT`] while the partition is warm (started or last had records less than
///   [`WARM_PERIOD`] ago), then up to `KAFKA_FETCH_MAX_WAIT`. The next records make it short
///   again.
/// - An answer with no records below the high watermark counts as caught up: the next fetch
///   waits as a caught-up one does, after a [`pause`](FetchPlan::pause).
///
/// Kafka answers a fetch as soon as it has records, whatever the wait, so there the wait only
/// sets how often a quiet partition asks; the short waits are for brokers that answer only
/// after the whole wait. `docs/freshness.md` explains both and gives the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPlan {
    bytes: i32,
    max_bytes: i32,
    /// The wait of the next fetch once caught up.
    wait: Duration,
    max_wait: Duration,
    /// When the last answer with records came.
    last_records: Option<Instant>,
    /// When the partition was started or last had records: warm for [`WARM_PERIOD`] after.
    last_active: Instant,
    behind: bool,
    pause: Option<Duration>,
}

impl FetchPlan {
    /// The plan for the first fetch of a partition started at `now`: it may be behind, so it
    /// does not wait.
    pub fn new(max_bytes: i32, max_wait: Duration, now: Instant) -> Self {
        Self {
            bytes: FIRST_FETCH_BYTES.min(max_bytes),
            max_bytes,
            wait: LIVELY_FETCH_WAIT.min(max_wait),
            max_wait,
            last_records: None,
            last_active: now,
            behind: true,
            pause: None,
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
    /// empty below the high watermark, the caught-up wait, which doubles with every such
    /// answer in a row as an idle partition's does. rskafka reads committed records only, so
    /// what is there is a transaction still open (Kafka holds such a fetch for its wait) or a
    /// transaction marker, which rskafka leaves out of its answers. Kafka answers a fetch for a
    /// marker at once whatever its wait: without a pause the reader would spin until the
    /// producer writes again. The pause starts at the current wait, not at
    /// `KAFKA_FETCH_MAX_WAIT`, because tansu answers so too when a produce lands between its
    /// read of the partition and of its high watermark, on a partition whose records flow.
    pub fn pause(&self) -> Option<Duration> {
        self.pause
    }

    /// Plans the next fetch after an answer of `n_records` records that came at `now`:
    /// `next_offset` is where it reads from and `high_watermark` the one the answer gave. Every
    /// answer doubles the size, empty ones too, so that a record larger than the current size
    /// is fetched once the size holds it. Records make the next caught-up wait short, and it
    /// stays short for [`LIVELY_PERIOD`]; an empty answer after that doubles it, up to
    /// [`WARM_FETCH_WAIT`] for [`WARM_PERIOD`], then up to the maximum. An empty
    /// answer below the high watermark makes the next fetch wait as a caught-up one does,
    /// after a [`pause`](Self::pause), and doubles the wait however lively the partition.
    pub fn answered(
        &mut self,
        n_records: usize,
        next_offset: i64,
        high_watermark: i64,
        now: Instant,
    ) {
        let empty_below_watermark = n_records == 0 && next_offset < high_watermark;
        self.pause = (empty_below_watermark && self.bytes == self.max_bytes).then_some(self.wait);
        self.bytes = self.bytes.saturating_mul(2).min(self.max_bytes);
        self.behind = n_records > 0 && next_offset < high_watermark;
        if n_records > 0 {
            self.last_records = Some(now);
            self.last_active = now;
        }
        let lively = self
            .last_records
            .is_some_and(|at| now.saturating_duration_since(at) < LIVELY_PERIOD);
        let longest = if now.saturating_duration_since(self.last_active) < WARM_PERIOD {
            WARM_FETCH_WAIT.min(self.max_wait)
        } else {
            self.max_wait
        };
        self.wait = if lively && self.pause.is_none() {
            LIVELY_FETCH_WAIT.min(self.max_wait)
        } else {
            self.wait.saturating_mul(2).min(longest)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_start_small_and_double_up_to_the_maximum() {
        let now = Instant::now();
        let mut plan = FetchPlan::new(300 << 10, Duration::from_millis(500), now);
        let mut ends = Vec::new();
        for _ in 0..6 {
            ends.push(plan.bytes().end);
            plan.answered(100, 0, 10, now);
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

        let mut growing = FetchPlan::new(4 << 20, Duration::from_millis(500), now);
        growing.answered(0, 0, 10, now);
        assert_eq!(
            growing.pause(),
            None,
            "a larger fetch may hold a larger record"
        );

        let below_first = FetchPlan::new(1024, Duration::ZERO, now);
        assert_eq!(below_first.bytes(), 1..1024);

        let mut at_limit = FetchPlan::new(i32::MAX, Duration::from_secs(3600 * 24 * 365), now);
        for _ in 0..40 {
            at_limit.answered(100, 0, 10, now);
        }
        assert_eq!(at_limit.bytes(), 1..i32::MAX);
        assert_eq!(at_limit.max_wait_ms(), 0);
        for _ in 0..40 {
            at_limit.answered(0, 10, 10, now + WARM_PERIOD);
        }
        assert_eq!(
            at_limit.max_wait_ms(),
            i32::MAX,
            "a wait beyond i32 milliseconds is capped"
        );
    }

    #[test]
    fn fetches_wait_only_once_caught_up() {
        let now = Instant::now();
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500), now);
        assert_eq!(plan.max_wait_ms(), 0, "the first fetch may be behind");
        plan.answered(3000, 3000, 10_000, now);
        assert_eq!(plan.max_wait_ms(), 0, "records remain");
        plan.answered(7000, 10_000, 10_000, now);
        assert_eq!(plan.max_wait_ms(), 10, "caught up while records flow");
        plan.answered(1, 10_001, 10_050, now);
        assert_eq!(plan.max_wait_ms(), 0, "new records arrived");
        assert_eq!(plan.pause(), None);
        plan.answered(0, 10_001, 10_050, now);
        assert_eq!(
            plan.pause(),
            Some(Duration::from_millis(10)),
            "a transaction marker, or a produce that tansu saw in between"
        );
        assert_eq!(
            plan.max_wait_ms(),
            20,
            "nothing came back below the watermark"
        );
        plan.answered(0, 10_050, 10_050, now);
        assert_eq!(plan.pause(), None, "caught up: the fetch itself waits");
        plan.answered(10, 10_060, 10_060, now);
        assert_eq!(plan.pause(), None);
        assert_eq!(plan.max_wait_ms(), 10);
    }

    #[test]
    fn a_fetch_answered_empty_below_the_watermark_pauses_longer_each_time() {
        let now = Instant::now();
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500), now);
        plan.answered(1, 1, 1, now);
        let mut pauses = Vec::new();
        for _ in 0..5 {
            plan.answered(0, 1, 2, now);
            pauses.push(plan.pause().map(|pause| pause.as_millis()));
        }
        assert_eq!(
            pauses,
            [10, 20, 40, 50, 50].map(Some),
            "a marker at the end of a lively partition is not fetched in a spin"
        );
        let later = now + WARM_PERIOD;
        let mut pauses = Vec::new();
        for _ in 0..5 {
            plan.answered(0, 1, 2, later);
            pauses.push(plan.pause().map(|pause| pause.as_millis()));
        }
        assert_eq!(pauses, [50, 100, 200, 400, 500].map(Some), "nor when cold");
        plan.answered(3, 5, 5, later);
        assert_eq!(plan.pause(), None);
        assert_eq!(plan.max_wait_ms(), 10, "records make the wait short again");
    }

    /// Answers `n` empty fetches, each coming back after its whole wait (as tansu answers),
    /// from `now` on; returns the waits asked for and the time after the last answer.
    fn idle_fetches(plan: &mut FetchPlan, mut now: Instant, n: usize) -> (Vec<i32>, Instant) {
        let mut waits = Vec::new();
        for _ in 0..n {
            let wait = plan.max_wait_ms();
            waits.push(wait);
            now += Duration::from_millis(u64::from(wait.unsigned_abs()));
            plan.answered(0, 5, 5, now);
        }
        (waits, now)
    }

    #[test]
    fn a_stream_with_gaps_keeps_the_short_wait() {
        let start = Instant::now();
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500), start);
        let mut now = start;
        for _ in 0..20 {
            plan.answered(5, 5, 5, now);
            // Up to 900 ms without records between two answers with records.
            let (waits, after) = idle_fetches(&mut plan, now, 89);
            assert!(waits.iter().all(|wait| *wait == 10), "{waits:?}");
            now = after;
        }
        assert!(now - start > Duration::from_secs(17));
    }

    #[test]
    fn an_idle_partition_waits_longer_up_to_the_maximum() {
        let start = Instant::now();
        let mut plan = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500), start);
        plan.answered(5, 5, 5, start);
        let (lively, now) = idle_fetches(&mut plan, start, 99);
        assert!(lively.iter().all(|wait| *wait == 10), "{lively:?}");
        let (waits, now) = idle_fetches(&mut plan, now, 6);
        assert_eq!(waits, [10, 20, 40, 50, 50, 50], "warm: back within 100 ms");
        let (warm, now) = idle_fetches(&mut plan, now, 1175);
        assert!(warm.iter().all(|wait| *wait == 50), "{warm:?}");
        assert!(now - start < WARM_PERIOD, "{:?}", now - start);
        let (waits, now) = idle_fetches(&mut plan, now, 6);
        assert_eq!(waits, [50, 100, 200, 400, 500, 500], "then cold");
        assert!(now - start < WARM_PERIOD + Duration::from_secs(3));
        plan.answered(1, 6, 6, now);
        assert_eq!(plan.max_wait_ms(), 10, "records make the wait short again");

        let mut never_lively = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(500), start);
        never_lively.answered(0, 0, 0, start);
        let (waits, _) = idle_fetches(&mut never_lively, start, 3);
        assert_eq!(waits, [20, 40, 50], "a partition just started is warm");
        let long_ago = start + WARM_PERIOD;
        let (waits, _) = idle_fetches(&mut never_lively, long_ago, 5);
        assert_eq!(waits, [50, 100, 200, 400, 500], "and cold a minute later");

        let mut short = FetchPlan::new(FIRST_FETCH_BYTES, Duration::from_millis(4), start);
        short.answered(1, 1, 1, start);
        assert_eq!(short.max_wait_ms(), 4, "never longer than the maximum");
        short.answered(0, 1, 1, start + LIVELY_PERIOD);
        assert_eq!(short.max_wait_ms(), 4, "warm or not");
        let mut none = FetchPlan::new(FIRST_FETCH_BYTES, Duration::ZERO, start);
        none.answered(0, 1, 1, start);
        assert_eq!(none.max_wait_ms(), 0);
    }
}
