//! PostgreSQL: the durable copy of every order, the rejected records, and the Kafka offsets.
//! Among the service's modules, only this one holds SQL (`tests/architecture.rs` checks it).
//!
//! Orders are JSONB rows keyed by `order_uid`; `id` comes from an identity column, so
//! PostgreSQL hands out ids and they never change. One file per job: `schema.rs` (tables and
//! migrations), `batch.rs` (a batch's orders and rejects in one transaction), `copy.rs` (the
//! binary COPY encoder), `offsets.rs`, `rejects.rs` (the dead-letter outbox), `restore.rs`, `lookup.rs`, `status.rs` (what the
//! status page reads) and `targets.rs` (orders sampled for a load test).

mod batch;
pub mod connection_string;
pub mod copy;
pub mod leases;
mod lookup;
mod offsets;
pub mod rejects;
mod restore;
pub mod schema;
pub mod status;
pub mod targets;
pub mod tls;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

pub use batch::{IncomingOrder, Inserted, RejectedRecord};
pub use restore::RestorePlan;
pub use tls::{PostgresTls, SslMode};

/// Errors of the PostgreSQL layer. [`DbError::is_refusal`] tells the ones retrying cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (PostgreSQL down or the pool exhausted).
    #[error("no PostgreSQL connection: {}", with_causes(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("PostgreSQL: {}", with_causes(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// This instance no longer holds the leases of these partitions: another took them over.
    #[error("the leases of partitions {0:?} moved to another instance")]
    Fenced(Vec<i32>),
    /// A restore task panicked or was cancelled.
    #[error("a restore task failed: {0}")]
    Task(String),
}

/// An error's message followed by its causes' (tokio-postgres leaves the cause out of its own
/// message: "error performing TLS handshake" says nothing of the certificate it refused).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = next.source();
    }
    message
}

impl DbError {
    /// Whether PostgreSQL refused the data itself (a value it cannot hold, a statement too
    /// large), as opposed to being unreachable or busy. Retrying the same rows cannot help.
    pub fn is_refusal(&self) -> bool {
        let DbError::Postgres(error) = self else {
            return false;
        };
        error.code().is_some_and(|code| {
            let class = &code.code()[..2];
            // 22: data exception, 54: program limit exceeded.
            class == "22" || class == "54"
        })
    }
}

/// orderstore's PostgreSQL: a pool of connections and the topic whose orders and offsets it
/// holds. Connections are made lazily, so building one succeeds while PostgreSQL is down; the
/// application retries [`Database::migrate`] until it is up.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    topic: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Database {
    /// A pool of at most `pool_size` connections, each secured by `tls`, for orders read from
    /// `topic`.
    pub fn new(
        config: tokio_postgres::Config,
        tls: PostgresTls,
        pool_size: usize,
        topic: &str,
    ) -> Self {
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(10)))
            .build()
            .unwrap_or_else(|_| unreachable!("a pool with a runtime and timeouts always builds"));
        Self {
            pool,
            topic: topic.to_string(),
        }
    }

    /// Closes the pool: no new connections, idle ones are dropped.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Whether a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
