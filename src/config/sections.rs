//! The sections of [`super::Settings`], one per part of the service, each with the settings
//! only that part reads. Every field's variable and default are in `.env` and the README's
//! settings table. `Debug` is derived: the secrets inside are [`crate::secret::Secret`]s,
//! token digests or redacted by their own types, so printing a section prints none of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::http::auth::HttpAuth;
use crate::kafka::security::KafkaSecurity;
use crate::rejects::halt::OnReject;
use crate::store::postgres::PostgresTls;

/// Where consumption starts for a partition that has no offset stored in PostgreSQL yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The oldest record the broker still keeps.
    Earliest,
    /// Only records produced after the service first started.
    Latest,
    /// The consumer group's committed offset (`KAFKA_GROUP_ID`), or the oldest record when the
    /// group has none: for taking over from a consumer that committed to that group.
    Group,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The brokers, the topic and how it is read (`KAFKA_*`).
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// TLS and SASL towards the brokers (`KAFKA_SECURITY_PROTOCOL` and its variables).
    pub security: KafkaSecurity,
    /// The topic orders are read from.
    pub topic: String,
    /// Partitions of the topic when the service creates it.
    pub partitions: i32,
    /// Replication factor of the topic when the service creates it.
    pub replication_factor: i16,
    /// Reader tasks; each owns a disjoint set of the topic's partitions.
    pub readers: usize,
    /// Where a partition without a stored offset starts.
    pub start_offset: StartOffset,
    /// The consumer group the stored offsets are mirrored to, for Kafka's tools; `None`
    /// (`KAFKA_GROUP_ID` empty) turns the mirror off.
    pub group_id: Option<String>,
    /// Most bytes one fetch request asks for, per partition (see `kafka::FetchPlan`).
    pub fetch_max_bytes: i32,
    /// How long the broker may hold a fetch open waiting for new records, once the partition
    /// has caught up (see `kafka::FetchPlan`).
    pub fetch_max_wait: Duration,
}

/// The batch writers and the channel that feeds them.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Largest record value accepted as an order; larger ones are rejected unparsed.
    pub max_record_bytes: usize,
    /// Batch writer tasks (`HANDLERS`, the name earlier versions used).
    pub batch_writers: usize,
    /// Records the channel between readers and batch writers holds before readers wait.
    pub channel_capacity: usize,
    /// Most records a batch writer takes and writes in one transaction.
    pub batch_size: usize,
    /// Least time between two writes of finished offsets to PostgreSQL; they are written as
    /// soon as a batch is done, and batches done meanwhile are written together.
    pub offset_commit_interval: Duration,
}

/// What happens to rejected records (`ON_REJECT`, `REJECTS_*`).
#[derive(Debug, Clone)]
pub struct RejectsSettings {
    /// What a rejected record does to its partition: recorded and passed, or a halt.
    pub on_reject: OnReject,
    /// The dead-letter topic every rejected record is produced to; `None` turns it off.
    pub topic: Option<String>,
    /// Published rejects older than this are deleted from `rejected_records`; `None` keeps
    /// them all.
    pub retention: Option<Duration>,
}

/// PostgreSQL (`DATABASE_URL`, `DB_POOL_SIZE`).
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The connection string, without libpq's TLS parameters (see `tls`). Its `Debug`
    /// redacts the password.
    pub url: tokio_postgres::Config,
    /// TLS towards PostgreSQL, from `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in
    /// `DATABASE_URL`.
    pub tls: PostgresTls,
    /// Most PostgreSQL connections in each pool.
    pub pool_size: usize,
}

impl DatabaseSettings {
    /// The database location without credentials, for logs.
    pub fn display(&self) -> String {
        let hosts: Vec<String> = self
            .url
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self.url.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}:{}/{}",
            hosts.join(","),
            port,
            self.url.get_dbname().unwrap_or("")
        )
    }
}

/// This instance among those sharing the topic (`INSTANCE_ID`, `LEASE_TTL`).
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// This instance's name; `None` until the application picks the default (the host name
    /// and a random suffix).
    pub instance_id: Option<String>,
    /// How long a partition lease lasts unless renewed (every third of it).
    pub lease_ttl: Duration,
}

impl FleetSettings {
    /// This instance's id: `INSTANCE_ID`, or the host name and a random suffix, kept from
    /// then on.
    pub fn pick_instance_id(&mut self) -> String {
        self.instance_id
            .get_or_insert_with(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|name| name.trim().to_string())
                    .filter(|name| !name.is_empty())
                    .unwrap_or_else(|| "orderstore".to_string());
                let suffix: u32 = rand::random();
                format!("{host}-{suffix:08x}")
            })
            .clone()
    }
}

/// What memory keeps (`MEMORY_*`, `SWEEP_INTERVAL`).
#[derive(Debug, Clone)]
pub struct MemorySettings {
    /// Whether memory is filled from PostgreSQL: at start-up, and for every partition taken
    /// later.
    pub restore: bool,
    /// Most orders kept in memory.
    pub orders_limit: usize,
    /// Orders whose `date_created` is older than this leave memory; `None` keeps them all.
    pub max_age: Option<Duration>,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
    /// How memory keeps each order's JSON.
    pub compression: MemoryCompression,
}

/// `MEMORY_COMPRESSION`: how memory keeps each order's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryCompression {
    /// As served.
    None,
    /// zstd frames with a dictionary trained on the orders (`store/compression.rs`).
    Zstd,
}

/// The HTTP server (`HTTP_*`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address the server listens on.
    pub addr: SocketAddr,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Bearer tokens the orders, rejects and `/metrics` ask for; none leaves them open.
    pub auth: HttpAuth,
    /// HTTPS, when a certificate and key are set.
    pub tls: Option<HttpsConfig>,
}

/// The HTTPS server's rustls configuration. Its `Debug` says only that HTTPS is on: rustls
/// prints the configuration's internals, which hold the certificate's key.
#[derive(Clone)]
pub struct HttpsConfig(pub Arc<rustls::ServerConfig>);

impl std::fmt::Debug for HttpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpsConfig { .. }")
    }
}

/// The built-in fake-data writer (`WRITER_*`).
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Whether the service runs its own fake-data writer (for demos and load).
    pub enabled: bool,
    /// Writer tasks when the writer is on.
    pub tasks: usize,
    /// Orders per second the writer tasks produce together; 0 means as fast as they can.
    pub rate: f64,
    /// Share of the writer's records that break the contract, from 0 to 1.
    pub invalid_ratio: f64,
}

/// The log (`LOG_LEVEL`, `LOG_FORMAT`).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A tracing filter directive, such as `info` or `orderstore=debug,info`.
    pub level: String,
    /// Text or JSON lines.
    pub format: LogFormat,
}
