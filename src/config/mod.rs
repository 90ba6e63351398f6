//! Settings: one typed struct, read from the environment (and `.env`, through dotenvy, in
//! `main`) and checked as a whole before anything starts.
//!
//! Every setting has a default, listed in `.env`. A bad value never starts a half-configured
//! service: [`Settings::from_lookup`] returns every problem at once, each naming the variable and
//! what it expected. `variables.rs` reads one variable at a time; `security.rs` reads the
//! TLS, SASL and token settings, whose files are loaded here too.
//!
//! No secret is ever shown: passwords and tokens are [`Secret`]s or digests, `Debug` of the
//! settings leaves them out, and no problem line repeats a value that may hold one.

mod security;
mod variables;

use crate::rejects::halt::OnReject;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::http::auth::HttpAuth;
use crate::kafka::security::KafkaSecurity;
use crate::store::postgres::PostgresTls;
use variables::VariableReader;

pub use crate::secret::Secret;

/// Where consumption starts for a partition that has no offset stored in PostgreSQL yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The oldest record the broker still keeps.
    Earliest,
    /// Only records produced after the service first started.
    Latest,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting of the service. See `.env` for the defaults and a line on each.
#[derive(Clone)]
pub struct Settings {
    /// Kafka bootstrap brokers, `host:port`.
    pub kafka_brokers: Vec<String>,
    /// TLS and SASL towards the brokers (`KAFKA_SECURITY_PROTOCOL` and its variables).
    pub kafka_security: KafkaSecurity,
    /// The topic orders are read from.
    pub kafka_topic: String,
    /// Partitions of the topic when the service creates it.
    pub kafka_partitions: i32,
    /// Replication factor of the topic when the service creates it.
    pub kafka_replication_factor: i16,
    /// Reader tasks; each owns a disjoint set of the topic's partitions.
    pub kafka_readers: usize,
    /// Where a partition without a stored offset starts.
    pub kafka_start_offset: StartOffset,
    /// Most bytes one fetch request asks for, per partition (see `kafka::FetchPlan`).
    pub kafka_fetch_max_bytes: i32,
    /// How long the broker may hold a fetch open waiting for new records, once the partition
    /// has caught up (see `kafka::FetchPlan`).
    pub kafka_fetch_max_wait: Duration,
    /// Largest record value accepted as an order; larger ones are rejected unparsed.
    pub max_record_bytes: usize,
    /// Batch writer tasks (`HANDLERS`, the name earlier versions used).
    pub batch_writers: usize,
    /// Records the channel between readers and batch writers holds before readers wait.
    pub channel_capacity: usize,
    /// Most records a batch writer takes and writes in one transaction.
    pub batch_size: usize,
    /// PostgreSQL connection string, without libpq's TLS parameters (see `database_tls`).
    pub database_url: tokio_postgres::Config,
    /// TLS towards PostgreSQL, from `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in
    /// `DATABASE_URL`.
    pub database_tls: PostgresTls,
    /// Most PostgreSQL connections in the pool.
    pub db_pool_size: usize,
    /// The dead-letter topic every rejected record is produced to; `None` turns it off.
    pub rejects_topic: Option<String>,
    /// Published rejects older than this are deleted from `rejected_records`; `None` keeps
    /// them all.
    pub rejects_retention: Option<Duration>,
    /// What a rejected record does to its partition: recorded and passed, or a halt.
    pub on_reject: OnReject,
    /// Whether memory is filled from PostgreSQL at start-up.
    pub memory_restore: bool,
    /// Most orders kept in memory.
    pub memory_orders_limit: usize,
    /// Orders whose `date_created` is older than this leave memory; `None` keeps them all.
    pub memory_max_age: Option<Duration>,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
    /// Least time between two writes of finished offsets to PostgreSQL; they are written as
    /// soon as a batch is done, and batches done meanwhile are written together.
    pub offset_commit_interval: Duration,
    /// This instance's name among the instances sharing the topic; `None` until the
    /// application picks the default (the host name and a random suffix).
    pub instance_id: Option<String>,
    /// How long a partition lease lasts unless renewed (every third of it).
    pub lease_ttl: Duration,
    /// Address the HTTP server listens on.
    pub http_addr: SocketAddr,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Bearer tokens the order routes and `/metrics` ask for; none leaves them open.
    pub http_auth: HttpAuth,
    /// HTTPS, when a certificate and key are set.
    pub http_tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether the service runs its own fake-data writer (for demos and load).
    pub writer_enabled: bool,
    /// Writer tasks when the writer is on.
    pub writer_tasks: usize,
    /// Orders per second the writer tasks produce together; 0 means as fast as they can.
    pub writer_rate: f64,
    /// Share of the writer's records that break the contract, from 0 to 1.
    pub writer_invalid_ratio: f64,
    /// A tracing filter directive, such as `info` or `orderstore=debug,info`.
    pub log_level: String,
    /// Text or JSON logs.
    pub log_format: LogFormat,
}

impl fmt::Debug for Settings {
    /// Prints every setting but the secrets: the database password, the SASL password and
    /// the HTTP tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_security", &self.kafka_security)
            .field("kafka_topic", &self.kafka_topic)
            .field("rejects_topic", &self.rejects_topic)
            .field("rejects_retention", &self.rejects_retention)
            .field("on_reject", &self.on_reject)
            .field("kafka_partitions", &self.kafka_partitions)
            .field("kafka_replication_factor", &self.kafka_replication_factor)
            .field("kafka_readers", &self.kafka_readers)
            .field("kafka_start_offset", &self.kafka_start_offset)
            .field("kafka_fetch_max_bytes", &self.kafka_fetch_max_bytes)
            .field("kafka_fetch_max_wait", &self.kafka_fetch_max_wait)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("batch_writers", &self.batch_writers)
            .field("channel_capacity", &self.channel_capacity)
            .field("batch_size", &self.batch_size)
            .field("database", &self.database_display())
            .field("database_user", &self.database_url.get_user())
            .field("database_sslmode", &self.database_tls)
            .field("db_pool_size", &self.db_pool_size)
            .field("memory_restore", &self.memory_restore)
            .field("memory_orders_limit", &self.memory_orders_limit)
            .field("memory_max_age", &self.memory_max_age)
            .field("sweep_interval", &self.sweep_interval)
            .field("offset_commit_interval", &self.offset_commit_interval)
            .field("instance_id", &self.instance_id)
            .field("lease_ttl", &self.lease_ttl)
            .field("http_addr", &self.http_addr)
            .field("http_workers", &self.http_workers)
            .field("http_auth", &self.http_auth)
            .field("http_tls", &self.http_tls.is_some())
            .field("writer_enabled", &self.writer_enabled)
            .field("writer_tasks", &self.writer_tasks)
            .field("writer_rate", &self.writer_rate)
            .field("writer_invalid_ratio", &self.writer_invalid_ratio)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// Every bad setting found, one line naming each variable and what it expected.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {}", .problems.join("; "))]
pub struct SettingsError {
    /// One entry per bad variable.
    pub problems: Vec<String>,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value if it is set.
    /// An empty value counts as unset, so `.env` may leave a line blank to mean the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let mut reader = VariableReader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let kafka_brokers: Vec<String> = reader
            .get("KAFKA_BROKERS", "localhost:9092")
            .split(',')
            .map(|broker| broker.trim().to_string())
            .filter(|broker| !broker.is_empty())
            .collect();
        if kafka_brokers.is_empty()
            || kafka_brokers.iter().any(|broker| {
                broker
                    .rsplit_once(':')
                    .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            })
        {
            reader.problem("KAFKA_BROKERS", "a comma-separated list of host:port");
        }
        let kafka_topic = reader.get("KAFKA_TOPIC", "orders");
        if !is_topic_name(&kafka_topic) {
            reader.problem(
                "KAFKA_TOPIC",
                "a topic name of 1 to 249 ASCII letters, digits, '.', '_' or '-'",
            );
        }
        let rejects_topic = reader.get("REJECTS_TOPIC", "");
        if !rejects_topic.is_empty()
            && (!is_topic_name(&rejects_topic) || rejects_topic == kafka_topic)
        {
            reader.problem(
                "REJECTS_TOPIC",
                "empty (no dead-letter topic) or a topic name of 1 to 249 ASCII letters, digits, \
                 '.', '_' or '-', other than KAFKA_TOPIC",
            );
        }
        let kafka_security = security::kafka_security(&mut reader);
        let database = reader.database_url();
        let settings = Settings {
            kafka_brokers,
            kafka_security,
            kafka_topic,
            rejects_topic: Some(rejects_topic).filter(|topic| !topic.is_empty()),
            rejects_retention: Some(reader.duration("REJECTS_RETENTION", "30days", true))
                .filter(|age| !age.is_zero()),
            on_reject: reader.choice(
                "ON_REJECT",
                "skip",
                &[("skip", OnReject::Skip), ("halt", OnReject::Halt)],
            ),
            kafka_partitions: reader.number("KAFKA_PARTITIONS", 8, 1..=100_000),
            kafka_replication_factor: reader.number("KAFKA_REPLICATION_FACTOR", 1, 1..=100),
            kafka_readers: reader.number("KAFKA_READERS", 2, 1..=1024),
            kafka_start_offset: reader.choice(
                "KAFKA_START_OFFSET",
                "earliest",
                &[
                    ("earliest", StartOffset::Earliest),
                    ("latest", StartOffset::Latest),
                ],
            ),
            kafka_fetch_max_bytes: reader.number("KAFKA_FETCH_MAX_BYTES", 4 << 20, 1024..=i32::MAX),
            kafka_fetch_max_wait: reader.duration("KAFKA_FETCH_MAX_WAIT", "500ms", false),
            max_record_bytes: reader.number("MAX_RECORD_BYTES", 1 << 20, 1..=(1 << 30)),
            batch_writers: reader.number("HANDLERS", 4, 1..=1024),
            channel_capacity: reader.number("CHANNEL_CAPACITY", 20_000, 1..=10_000_000),
            batch_size: reader.number("BATCH_SIZE", 8000, 1..=100_000),
            database_url: database.config,
            database_tls: database.tls,
            db_pool_size: reader.number("DB_POOL_SIZE", 8, 1..=1000),
            memory_restore: reader.choice(
                "MEMORY_RESTORE",
                "true",
                &[("true", true), ("false", false), ("1", true), ("0", false)],
            ),
            memory_orders_limit: reader.number("MEMORY_ORDERS_LIMIT", 1_000_000, 0..=1_000_000_000),
            memory_max_age: Some(reader.duration("MEMORY_MAX_AGE", "30days", true))
                .filter(|age| !age.is_zero()),
            sweep_interval: reader.duration("SWEEP_INTERVAL", "10s", false),
            offset_commit_interval: reader.duration("OFFSET_COMMIT_INTERVAL", "50ms", false),
            instance_id: reader.instance_id(),
            lease_ttl: reader.duration("LEASE_TTL", "10s", false),
            http_addr: reader.address("HTTP_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080))),
            http_workers: reader.number("HTTP_WORKERS", 0, 0..=1024),
            http_auth: security::http_auth(&mut reader),
            http_tls: security::http_tls(&mut reader),
            writer_enabled: reader.choice(
                "WRITER_ENABLED",
                "false",
                &[("true", true), ("false", false), ("1", true), ("0", false)],
            ),
            writer_tasks: reader.number("WRITER_TASKS", 1, 1..=64),
            writer_rate: reader.fraction("WRITER_RATE", 100.0, 0.0..=10_000_000.0),
            writer_invalid_ratio: reader.fraction("WRITER_INVALID_RATIO", 0.0, 0.0..=1.0),
            log_level: reader.get("LOG_LEVEL", "info,rskafka=error"),
            log_format: reader.choice(
                "LOG_FORMAT",
                "text",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            ),
        };
        if settings.lease_ttl < Duration::from_millis(300) {
            reader.problem("LEASE_TTL", "a duration of at least 300ms");
        }
        if tracing_subscriber::EnvFilter::try_new(&settings.log_level).is_err() {
            reader.problem(
                "LOG_LEVEL",
                "a level (error, warn, info, debug, trace) or a filter such as orderstore=debug,info",
            );
        }
        if reader.problems.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError {
                problems: reader.problems,
            })
        }
    }

    /// This instance's id: `INSTANCE_ID`, or the host name and a random suffix.
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

    /// The database location without credentials, for logs.
    pub fn database_display(&self) -> String {
        let hosts: Vec<String> = self
            .database_url
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self
            .database_url
            .get_ports()
            .first()
            .copied()
            .unwrap_or(5432);
        format!(
            "{}:{}/{}",
            hosts.join(","),
            port,
            self.database_url.get_dbname().unwrap_or("")
        )
    }
}

/// Whether `name` is a Kafka topic name: 1 to 249 ASCII letters, digits, '.', '_' or '-'.
fn is_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::security::SaslMechanism;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_valid() {
        let settings = load(&[]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(settings.kafka_topic, "orders");
        assert_eq!(settings.kafka_start_offset, StartOffset::Earliest);
        assert_eq!(
            settings.memory_max_age,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(settings.database_display(), "localhost:5432/orderstore");
        assert_eq!(settings.rejects_topic, None);
        assert_eq!(
            settings.rejects_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
    }

    #[test]
    fn values_are_read() {
        let settings = load(&[
            ("KAFKA_BROKERS", "a:1, b:2"),
            ("HANDLERS", "7"),
            ("MEMORY_MAX_AGE", "0"),
            ("SWEEP_INTERVAL", "250ms"),
            ("LOG_FORMAT", "JSON"),
            ("KAFKA_START_OFFSET", "latest"),
            ("REJECTS_TOPIC", "orders.rejects"),
            ("REJECTS_RETENTION", "0"),
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(settings.rejects_topic.as_deref(), Some("orders.rejects"));
        assert_eq!(settings.rejects_retention, None);
        assert_eq!(settings.kafka_brokers, vec!["a:1", "b:2"]);
        assert_eq!(settings.batch_writers, 7);
        assert_eq!(settings.memory_max_age, None);
        assert_eq!(settings.sweep_interval, Duration::from_millis(250));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.kafka_start_offset, StartOffset::Latest);
    }

    #[test]
    fn every_bad_value_is_named() {
        let cases = [
            ("KAFKA_BROKERS", "localhost"),
            ("KAFKA_TOPIC", "bad topic"),
            ("REJECTS_TOPIC", "bad topic"),
            ("REJECTS_TOPIC", "orders"),
            ("REJECTS_RETENTION", "a while"),
            ("ON_REJECT", "ignore"),
            ("KAFKA_PARTITIONS", "0"),
            ("KAFKA_READERS", "many"),
            ("KAFKA_START_OFFSET", "middle"),
            ("HANDLERS", "-1"),
            ("CHANNEL_CAPACITY", "0"),
            ("BATCH_SIZE", "1.5"),
            ("DATABASE_URL", "not a url"),
            ("DB_POOL_SIZE", "0"),
            ("MEMORY_RESTORE", "maybe"),
            ("MEMORY_ORDERS_LIMIT", "lots"),
            ("MEMORY_MAX_AGE", "yesterday"),
            ("SWEEP_INTERVAL", "0"),
            ("HTTP_ADDR", "8080"),
            ("LOG_LEVEL", "loud=="),
            ("LOG_FORMAT", "xml"),
            ("WRITER_ENABLED", "yes please"),
            ("WRITER_TASKS", "0"),
            ("WRITER_RATE", "-5"),
            ("WRITER_INVALID_RATIO", "1.5"),
        ];
        for (name, value) in cases {
            match load(&[(name, value)]) {
                Ok(_) => panic!("{name}={value} was accepted"),
                Err(error) => {
                    assert_eq!(error.problems.len(), 1, "{error}");
                    assert!(
                        error.problems[0].starts_with(&format!("{name}: expected")),
                        "{error}"
                    );
                }
            }
        }
    }

    /// `.env` must list every variable the code reads, each with the code's default.
    #[test]
    fn dot_env_lists_every_setting_with_its_default() {
        let file = include_str!("../../.env");
        let listed: HashMap<String, String> = file
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        // Some variables are read more than once (to check how they combine).
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let defaults = Settings::from_lookup(|name| {
            read.borrow_mut().insert(name.to_string());
            None
        })
        .unwrap_or_else(|error| panic!("{error}"));
        for name in read.borrow().iter() {
            assert!(listed.contains_key(name), ".env does not list {name}");
        }
        assert_eq!(
            listed.len(),
            read.borrow().len(),
            ".env lists a variable the code does not read"
        );
        let from_file = Settings::from_lookup(|name| listed.get(name).cloned())
            .unwrap_or_else(|error| panic!(".env is invalid: {error}"));
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn kafka_security_is_read_with_kafka_s_words_and_its_secrets_hidden() {
        let settings = load(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-256"),
            ("KAFKA_SASL_USERNAME", "orders"),
            ("KAFKA_SASL_PASSWORD", "kafka-secret"),
            (
                "HTTP_AUTH_TOKENS",
                "token-secret-0123456789, second-token-0123456789",
            ),
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        let login = settings.kafka_security.sasl.clone();
        assert_eq!(
            login.as_ref().map(|login| login.mechanism),
            Some(SaslMechanism::ScramSha256)
        );
        assert_eq!(
            login.as_ref().map(|login| login.password.expose()),
            Some("kafka-secret")
        );
        assert!(settings.kafka_security.tls.is_none());
        assert!(settings.http_auth.is_on());
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("kafka-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
        // ssl: TLS against the system's roots (when the machine has any).
        if let Ok(settings) = load(&[("KAFKA_SECURITY_PROTOCOL", "ssl")]) {
            assert!(settings.kafka_security.tls.is_some());
            assert!(settings.kafka_security.sasl.is_none());
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let settings = load(&[("DATABASE_URL", "postgres://u:secret@db:5433/orders")])
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(!format!("{settings:?}").contains("secret"));
        assert_eq!(settings.database_display(), "db:5433/orders");
        let error = load(&[("DATABASE_URL", "postgres://u:secret@db:notaport/x")])
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("DATABASE_URL") && !error.contains("secret"),
            "{error}"
        );
    }
}
