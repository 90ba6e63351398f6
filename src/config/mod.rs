//! Settings: one typed struct in sections, one per part of the service (`sections.rs`: Kafka,
//! ingest, rejects, database, fleet, memory, HTTP, writer, log), read from the environment
//! (and `.env`, through dotenvy, in `cli`) and checked as a whole before anything starts.
//!
//! Every setting has a default, listed in `.env` and in the README's settings table
//! (`documented_defaults.rs` tests that the three agree). A bad value never starts a
//! half-configured service: [`Settings::from_lookup`] returns every problem at once, each
//! naming the variable and what it expected. `variables.rs` reads one variable at a time;
//! `security.rs` reads the TLS, SASL and token settings, whose files are loaded here too.
//!
//! No secret is ever shown: passwords and tokens are [`Secret`]s or digests, `Debug` of the
//! settings (derived, section by section) prints none of them, and no problem line repeats a value that may hold one.

#[cfg(test)]
mod documented_defaults;
mod sections;
mod security;
mod variables;

use crate::rejects::halt::OnReject;
use std::net::SocketAddr;
use std::time::Duration;

use variables::VariableReader;

pub use crate::secret::Secret;
pub use sections::{
    DatabaseSettings, FleetSettings, HttpSettings, HttpsConfig, IngestSettings, KafkaSettings,
    LogFormat, LogSettings, MemoryCompression, MemorySettings, RejectsSettings, StartOffset,
    WriterSettings,
};

/// Every setting of the service, by the part of it that reads them. See `.env` for the
/// defaults and a line on each.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The brokers, the topic and how it is read.
    pub kafka: KafkaSettings,
    /// The batch writers and the channel that feeds them.
    pub ingest: IngestSettings,
    /// What happens to rejected records.
    pub rejects: RejectsSettings,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// This instance among those sharing the topic.
    pub fleet: FleetSettings,
    /// What memory keeps.
    pub memory: MemorySettings,
    /// The HTTP server.
    pub http: HttpSettings,
    /// The built-in fake-data writer.
    pub writer: WriterSettings,
    /// The log.
    pub log: LogSettings,
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
        let kafka = KafkaSettings {
            brokers: kafka_brokers,
            security: kafka_security,
            topic: kafka_topic,
            partitions: reader.number("KAFKA_PARTITIONS", 8, 1..=100_000),
            replication_factor: reader.number("KAFKA_REPLICATION_FACTOR", 1, 1..=100),
            readers: reader.number("KAFKA_READERS", 2, 1..=1024),
            start_offset: reader.choice(
                "KAFKA_START_OFFSET",
                "earliest",
                &[
                    ("earliest", StartOffset::Earliest),
                    ("latest", StartOffset::Latest),
                    ("group", StartOffset::Group),
                ],
            ),
            group_id: Some(reader.get_or_empty("KAFKA_GROUP_ID", "orderstore"))
                .filter(|group| !group.is_empty()),
            fetch_max_bytes: reader.number("KAFKA_FETCH_MAX_BYTES", 4 << 20, 1024..=i32::MAX),
            fetch_max_wait: reader.duration("KAFKA_FETCH_MAX_WAIT", "500ms", false),
        };
        if kafka
            .group_id
            .as_ref()
            .is_some_and(|group| group.len() > 255)
        {
            reader.problem(
                "KAFKA_GROUP_ID",
                "empty (no consumer group) or a group id of at most 255 bytes",
            );
        }
        if kafka.start_offset == StartOffset::Group && kafka.group_id.is_none() {
            reader.problem(
                "KAFKA_START_OFFSET",
                "earliest or latest when KAFKA_GROUP_ID is empty (group starts from that group)",
            );
        }
        let ingest = IngestSettings {
            max_record_bytes: reader.number("MAX_RECORD_BYTES", 1 << 20, 1..=(1 << 30)),
            batch_writers: reader.number("HANDLERS", 4, 1..=1024),
            channel_capacity: reader.number("CHANNEL_CAPACITY", 20_000, 1..=10_000_000),
            batch_size: reader.number("BATCH_SIZE", 8000, 1..=100_000),
            offset_commit_interval: reader.duration("OFFSET_COMMIT_INTERVAL", "50ms", false),
        };
        let rejects = RejectsSettings {
            on_reject: reader.choice(
                "ON_REJECT",
                "skip",
                &[("skip", OnReject::Skip), ("halt", OnReject::Halt)],
            ),
            topic: Some(rejects_topic).filter(|topic| !topic.is_empty()),
            retention: Some(reader.duration("REJECTS_RETENTION", "30days", true))
                .filter(|age| !age.is_zero()),
        };
        let database = DatabaseSettings {
            url: database.config,
            tls: database.tls,
            pool_size: reader.number("DB_POOL_SIZE", 8, 1..=1000),
        };
        let memory = MemorySettings {
            restore: reader.choice(
                "MEMORY_RESTORE",
                "true",
                &[("true", true), ("false", false), ("1", true), ("0", false)],
            ),
            orders_limit: reader.number("MEMORY_ORDERS_LIMIT", 1_000_000, 0..=1_000_000_000),
            max_age: Some(reader.duration("MEMORY_MAX_AGE", "30days", true))
                .filter(|age| !age.is_zero()),
            sweep_interval: reader.duration("SWEEP_INTERVAL", "10s", false),
            compression: reader.choice(
                "MEMORY_COMPRESSION",
                "none",
                &[
                    ("none", MemoryCompression::None),
                    ("zstd", MemoryCompression::Zstd),
                ],
            ),
        };
        let fleet = FleetSettings {
            instance_id: reader.instance_id(),
            lease_ttl: reader.duration("LEASE_TTL", "10s", false),
        };
        if fleet.lease_ttl < Duration::from_millis(300) {
            reader.problem("LEASE_TTL", "a duration of at least 300ms");
        }
        let http = HttpSettings {
            addr: reader.address("HTTP_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080))),
            workers: reader.number("HTTP_WORKERS", 0, 0..=1024),
            auth: security::http_auth(&mut reader),
            tls: security::http_tls(&mut reader).map(HttpsConfig),
        };
        let writer = WriterSettings {
            enabled: reader.choice(
                "WRITER_ENABLED",
                "false",
                &[("true", true), ("false", false), ("1", true), ("0", false)],
            ),
            tasks: reader.number("WRITER_TASKS", 1, 1..=64),
            rate: reader.fraction("WRITER_RATE", 100.0, 0.0..=10_000_000.0),
            invalid_ratio: reader.fraction("WRITER_INVALID_RATIO", 0.0, 0.0..=1.0),
        };
        let log = LogSettings {
            level: reader.get("LOG_LEVEL", "info,rskafka=error"),
            format: reader.choice(
                "LOG_FORMAT",
                "text",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            ),
        };
        let settings = Settings {
            kafka,
            ingest,
            rejects,
            database,
            fleet,
            memory,
            http,
            writer,
            log,
        };
        if tracing_subscriber::EnvFilter::try_new(&settings.log.level).is_err() {
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
        assert_eq!(settings.kafka.topic, "orders");
        assert_eq!(settings.kafka.start_offset, StartOffset::Earliest);
        assert_eq!(
            settings.memory.max_age,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(settings.database.display(), "localhost:5432/orderstore");
        assert_eq!(settings.rejects.topic, None);
        assert_eq!(settings.kafka.group_id.as_deref(), Some("orderstore"));
        assert_eq!(
            settings.rejects.retention,
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
        assert_eq!(settings.rejects.topic.as_deref(), Some("orders.rejects"));
        assert_eq!(settings.rejects.retention, None);
        assert_eq!(settings.kafka.brokers, vec!["a:1", "b:2"]);
        assert_eq!(settings.ingest.batch_writers, 7);
        assert_eq!(settings.memory.max_age, None);
        assert_eq!(settings.memory.sweep_interval, Duration::from_millis(250));
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(settings.kafka.start_offset, StartOffset::Latest);
    }

    #[test]
    fn the_group_is_optional_but_starting_from_it_needs_one() {
        let settings = load(&[("KAFKA_GROUP_ID", ""), ("KAFKA_START_OFFSET", "earliest")])
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(settings.kafka.group_id, None);
        let settings = load(&[
            ("KAFKA_GROUP_ID", "go-orders-1"),
            ("KAFKA_START_OFFSET", "group"),
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(settings.kafka.group_id.as_deref(), Some("go-orders-1"));
        assert_eq!(settings.kafka.start_offset, StartOffset::Group);
        let refused = load(&[("KAFKA_GROUP_ID", ""), ("KAFKA_START_OFFSET", "group")])
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(refused.contains("KAFKA_START_OFFSET"), "{refused}");
        assert!(refused.contains("KAFKA_GROUP_ID is empty"), "{refused}");
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
        let login = settings.kafka.security.sasl.clone();
        assert_eq!(
            login.as_ref().map(|login| login.mechanism),
            Some(SaslMechanism::ScramSha256)
        );
        assert_eq!(
            login.as_ref().map(|login| login.password.expose()),
            Some("kafka-secret")
        );
        assert!(settings.kafka.security.tls.is_none());
        assert!(settings.http.auth.is_on());
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("kafka-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
        // ssl: TLS against the system's roots (when the machine has any).
        if let Ok(settings) = load(&[("KAFKA_SECURITY_PROTOCOL", "ssl")]) {
            assert!(settings.kafka.security.tls.is_some());
            assert!(settings.kafka.security.sasl.is_none());
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let settings = load(&[("DATABASE_URL", "postgres://u:secret@db:5433/orders")])
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(!format!("{settings:?}").contains("secret"));
        assert_eq!(settings.database.display(), "db:5433/orders");
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
