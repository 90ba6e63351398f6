//! Exponential backoff with equal jitter (each delay between half and all of its step), and
//! [`retry_until_ok`], for waiting out PostgreSQL and Kafka outages. Sleeps go through
//! `tokio::time`, so tests can run them under paused time.

use std::time::Duration;

use rand::RngExt;
use tokio_util::sync::CancellationToken;

use crate::events::RetryScheduled;

/// The delays between attempts: doubling from `initial` up to `max`, each drawn at random
/// between half and all of the current step so that many tasks do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Backoff from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            step: initial,
        }
    }

    /// The backoff used for outages: 100 ms doubling up to 5 s.
    pub fn for_outages() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Waits the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// Retries `attempt` with backoff until it succeeds; `None` if shutdown came first. Each
/// failure is a [`RetryScheduled`] event: a WARN line saying `what` failed, and a count in
/// `orderstore_retries_total` labelled with `what`, which is therefore a fixed phrase.
pub async fn retry_until_ok<T, E, F, Fut>(
    what: &'static str,
    shutdown: &CancellationToken,
    attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    retry_described(what, None, shutdown, attempt).await
}

/// [`retry_until_ok`] with a detail that changes from call to call (an address, the
/// partitions): it goes into the log line, never into the metric's label.
pub async fn retry_described<T, E, F, Fut>(
    what: &'static str,
    detail: Option<&str>,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let described = match detail {
        Some(detail) => format!("{what} ({detail})"),
        None => what.to_string(),
    };
    let mut backoff = Backoff::for_outages();
    loop {
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            result = attempt() => result,
        };
        match result {
            Ok(value) => return Some(value),
            Err(error) => {
                RetryScheduled {
                    operation: what,
                    what: &described,
                    error: &error,
                }
                .record();
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return None,
                    _ = backoff.wait() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_jittered() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        for delay in &delays[5..] {
            assert!(*delay >= Duration::from_millis(500) && *delay <= Duration::from_secs(1));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
