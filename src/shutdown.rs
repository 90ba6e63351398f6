//! One shutdown root for the whole service (as influxdb3 has): every long-running task, the
//! HTTP server and the writer's tasks included, is started here under a [`Component`] name.
//! A component that panics, fails, or ends while the service should be running stops the
//! service with a [`ComponentFailure`] naming it, so a supervisor restarts the process and
//! nothing is silently half-running. The order in which components stop is
//! `Application::run_until_stopped`'s.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use crate::events::{ComponentStopped, ExitForced};
use tokio_util::sync::CancellationToken;

/// A task of the service, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The Kafka side: waits for the broker, finds the topic, starts every component that
    /// needs Kafka, and joins them.
    KafkaSide,
    /// A reader task, by index.
    Reader(usize),
    /// A batch writer task, by index.
    BatchWriter(usize),
    /// The offset committer.
    OffsetCommitter,
    /// The sweeper.
    Sweeper,
    /// The observer (gauges, progress log, rejection summaries).
    Observer,
    /// The HTTP server.
    HttpServer,
    /// A task of the fake-data writer, by index.
    Writer(usize),
    /// The lease keeper: heartbeats, and takes and gives up partition leases.
    LeaseKeeper,
    /// The restorer: loads the orders of partitions taken, evicts those given up.
    Restorer,
    /// Publishes rejects to the dead-letter topic.
    DeadLetters,
    /// Commits the stored offsets to the consumer group.
    GroupMirror,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::KafkaSide => f.write_str("kafka-side"),
            Component::Reader(index) => write!(f, "reader-{index}"),
            Component::BatchWriter(index) => write!(f, "batch-writer-{index}"),
            Component::OffsetCommitter => f.write_str("offset-committer"),
            Component::Sweeper => f.write_str("sweeper"),
            Component::Observer => f.write_str("observer"),
            Component::HttpServer => f.write_str("http-server"),
            Component::Writer(index) => write!(f, "writer-{index}"),
            Component::LeaseKeeper => f.write_str("lease-keeper"),
            Component::Restorer => f.write_str("restorer"),
            Component::DeadLetters => f.write_str("dead-letters"),
            Component::GroupMirror => f.write_str("group-mirror"),
        }
    }
}

/// Why the service stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ComponentFailure {
    /// The component panicked (or was aborted).
    #[error("{component} panicked: {message}")]
    Panicked {
        /// Which one.
        component: Component,
        /// The panic's message.
        message: String,
    },
    /// The component returned while the service was meant to be running.
    #[error("{component} ended while the service was running")]
    EndedEarly {
        /// Which one.
        component: Component,
    },
    /// The component returned an error.
    #[error("{component} failed: {source}")]
    Failed {
        /// Which one.
        component: Component,
        /// The error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a component's future ends with: nothing, or a result whose error is a failure.
pub trait Outcome: Send + 'static {
    /// The error, if the component failed.
    fn into_error(self) -> Option<Box<dyn std::error::Error + Send + Sync>>;
}

impl Outcome for () {
    fn into_error(self) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        None
    }
}

impl<E: std::error::Error + Send + Sync + 'static> Outcome for Result<(), E> {
    fn into_error(self) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        self.err().map(|error| Box::new(error) as _)
    }
}

/// The shutdown root: the token every component stops on, and the first failure.
#[derive(Debug, Clone, Default)]
pub struct ShutdownManager {
    token: CancellationToken,
    failure: Arc<Mutex<Option<ComponentFailure>>>,
}

impl ShutdownManager {
    /// A manager whose components stop when `token` is cancelled.
    pub fn new(token: CancellationToken) -> Self {
        Self {
            token,
            failure: Arc::default(),
        }
    }

    /// The token components stop on.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Starts a component that runs until shutdown: ending before it is a failure.
    pub fn spawn<F>(&self, component: Component, future: F) -> JoinHandle<()>
    where
        F: Future + Send + 'static,
        F::Output: Outcome,
    {
        self.supervise(component, future, false)
    }

    /// Starts a component that may finish its work and end on its own (the writer of
    /// `orderstore produce --count`); only a panic or an error is a failure.
    pub fn spawn_finite<F>(&self, component: Component, future: F) -> JoinHandle<()>
    where
        F: Future + Send + 'static,
        F::Output: Outcome,
    {
        self.supervise(component, future, true)
    }

    fn supervise<F>(&self, component: Component, future: F, may_end: bool) -> JoinHandle<()>
    where
        F: Future + Send + 'static,
        F::Output: Outcome,
    {
        let task = tokio::spawn(future);
        let manager = self.clone();
        tokio::spawn(async move {
            let failure = match task.await {
                Err(join_error) => ComponentFailure::Panicked {
                    component,
                    message: panic_message(join_error),
                },
                Ok(outcome) => match outcome.into_error() {
                    Some(source) => ComponentFailure::Failed { component, source },
                    None if !may_end && !manager.token.is_cancelled() => {
                        ComponentFailure::EndedEarly { component }
                    }
                    None => return,
                },
            };
            ComponentStopped {
                component: &component.to_string(),
                failure: &failure,
            }
            .record();
            manager
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(failure);
            manager.token.cancel();
        })
    }

    /// The first failure, if a component failed.
    pub fn take_failure(&self) -> Option<ComponentFailure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM, which starts an orderly stop; a second
/// signal exits at once (code 130), for an operator who will not wait for the drain.
pub fn cancel_on_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        for round in 0.. {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if round == 0 {
                tracing::info!("signal received, stopping; a second signal exits at once");
                shutdown.cancel();
            } else {
                ExitForced.record();
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

fn panic_message(join_error: tokio::task::JoinError) -> String {
    if !join_error.is_panic() {
        return join_error.to_string();
    }
    let payload = join_error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_component_that_ends_early_or_panics_is_named() {
        let manager = ShutdownManager::default();
        let handle = manager.spawn(Component::Sweeper, async {});
        assert!(handle.await.is_ok());
        assert!(manager.token().is_cancelled(), "the service stops");
        match manager.take_failure() {
            Some(ComponentFailure::EndedEarly { component }) => {
                assert_eq!(component, Component::Sweeper);
            }
            other => panic!("expected an early end, got {other:?}"),
        }

        let manager = ShutdownManager::default();
        let handle = manager.spawn(Component::BatchWriter(2), async {
            if manager_panics() {
                panic!("disk on fire");
            }
        });
        assert!(handle.await.is_ok());
        let failure = manager.take_failure().map(|failure| failure.to_string());
        assert_eq!(
            failure.as_deref(),
            Some("batch-writer-2 panicked: disk on fire")
        );
    }

    /// Always true, so that the panicking task's body still has the type `()`.
    fn manager_panics() -> bool {
        std::hint::black_box(true)
    }

    #[tokio::test]
    async fn ending_after_shutdown_or_when_finite_is_not_a_failure() {
        let manager = ShutdownManager::default();
        let finite = manager.spawn_finite(Component::Writer(0), async {});
        assert!(finite.await.is_ok());
        assert!(!manager.token().is_cancelled());
        manager.token().cancel();
        let stopped = manager.spawn(Component::Observer, async {});
        assert!(stopped.await.is_ok());
        assert!(manager.take_failure().is_none());

        let manager = ShutdownManager::default();
        let failed = manager.spawn(Component::HttpServer, async {
            Err::<(), _>(std::io::Error::other("address in use"))
        });
        assert!(failed.await.is_ok());
        let failure = manager.take_failure().map(|failure| failure.to_string());
        assert_eq!(
            failure.as_deref(),
            Some("http-server failed: address in use")
        );
    }
}
