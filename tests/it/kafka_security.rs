//! Kafka the way managed services run it, against real brokers: tansu with SCRAM-SHA-512 and
//! SCRAM-SHA-256 users and authentication required, and TLS terminated by stunnel in front of
//! tansu (with and without client certificates, and with SASL inside). The fake-data writer
//! (`orderstore produce`) and the service both connect with the settings Kafka's clients
//! use. A wrong password, an unknown user and a CA that did not sign the broker's
//! certificate are each one clear log line, retried, and named by `/health/ready`; no secret
//! is ever printed. PLAIN is not compiled into tansu, so it is covered only by the settings'
//! own tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const PASSWORD_512: &str = "kafka-Secret-512";
const PASSWORD_256: &str = "kafka-Secret-256";

/// The two SCRAM users every SASL broker here has.
fn users() -> [ScramUser<'static>; 2] {
    [
        ScramUser {
            name: "orders512",
            password: PASSWORD_512,
            mechanism: "scram512",
        },
        ScramUser {
            name: "orders256",
            password: PASSWORD_256,
            mechanism: "scram256",
        },
    ]
}

/// The Kafka settings of one connection.
fn kafka_env(bootstrap: &str, topic: &str, security: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("KAFKA_BROKERS", bootstrap),
        ("KAFKA_TOPIC", topic),
        ("KAFKA_PARTITIONS", "2"),
    ]
    .iter()
    .chain(security)
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// `orderstore produce --count n` with `env`; panics with its output unless it succeeds.
fn produce_with(env: &[(String, String)], n: usize) {
    let output = Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["produce", "--count", &n.to_string()])
        .envs(
            env.iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run orderstore produce: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("produced {n} records")),
        "{stdout}"
    );
    for secret in [PASSWORD_256, PASSWORD_512] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}

/// The service on a fresh database with `kafka` settings: its HTTP port, its database, its
/// log and the process.
async fn serve(
    kafka: &[(String, String)],
    name: &str,
) -> (u16, tokio_postgres::Client, LogFile, KillOnDrop) {
    let database = create_database(&services().admin_url).await;
    let db = connect_config(&database).await;
    let port = http_port();
    let mut env = binary_env(&database, "unused", port);
    env.retain(|(name, _)| !kafka.iter().any(|(set, _)| set == name));
    env.extend(kafka.iter().cloned());
    let log = LogFile::new(name);
    let instance = start_binary(&env, log.stdio());
    (port, db, log, instance)
}

/// Starts the service with `kafka`, waits until it stored `n` orders and is ready, stops it.
async fn ingests(kafka: &[(String, String)], n: i64, name: &str) {
    let (port, db, log, instance) = serve(kafka, name).await;
    wait_for(
        &format!("{n} orders stored ({name})"),
        Duration::from_secs(120),
        || async { count_if_exists(&db, "SELECT count(*) FROM orders").await == n },
    )
    .await;
    wait_for("readiness", Duration::from_secs(30), || async {
        http(port, "GET", "/health/ready").await.status == 200
    })
    .await;
    // The consumer group mirror's own connection goes through the same TLS and SASL.
    wait_for(
        &format!("the consumer group to hold the stored offsets ({name})"),
        Duration::from_secs(30),
        || group_shows_stored_offsets(port, "orderstore"),
    )
    .await;
    instance.terminate();
    let text = log.text();
    for secret in [PASSWORD_256, PASSWORD_512] {
        assert!(!text.contains(secret), "a password was logged:\n{text}");
    }
}

/// Starts the service with `kafka`, which must fail; returns the first failure's log line
/// and what `/health/ready` says about Kafka.
async fn refused(kafka: &[(String, String)], name: &str) -> (String, String) {
    let (port, db, log, instance) = serve(kafka, name).await;
    wait_for(
        &format!("a failed connection in the log ({name})"),
        Duration::from_secs(90),
        || async { log.text().contains("connecting to Kafka failed") },
    )
    .await;
    let ready = http(port, "GET", "/health/ready").await;
    assert_eq!(ready.status, 503, "{name}");
    let reason = ready.json()["kafka_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    drop(instance);
    assert_eq!(count_if_exists(&db, "SELECT count(*) FROM orders").await, 0);
    let text = log.text();
    for secret in [PASSWORD_256, PASSWORD_512, "wrong-Secret"] {
        assert!(!text.contains(secret), "a password was logged:\n{text}");
        assert!(
            !reason.contains(secret),
            "readiness shows a password: {reason}"
        );
    }
    let line = text
        .lines()
        .find(|line| line.contains("connecting to Kafka failed"))
        .unwrap_or_default()
        .to_string();
    (line, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logins_work_and_a_refused_login_says_so() {
    let broker = SecureBroker::start(&users(), None);
    let topic = unique_name("orders");
    let sasl = |mechanism: &'static str, user: &'static str, password: &'static str| {
        kafka_env(
            &broker.bootstrap,
            &topic,
            &[
                ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
                ("KAFKA_SASL_MECHANISM", mechanism),
                ("KAFKA_SASL_USERNAME", user),
                ("KAFKA_SASL_PASSWORD", password),
            ],
        )
    };
    produce_with(&sasl("SCRAM-SHA-512", "orders512", PASSWORD_512), 100);
    ingests(
        &sasl("SCRAM-SHA-256", "orders256", PASSWORD_256),
        100,
        "scram256",
    )
    .await;
    ingests(
        &sasl("SCRAM-SHA-512", "orders512", PASSWORD_512),
        100,
        "scram512",
    )
    .await;

    let wrong_password = sasl("SCRAM-SHA-512", "orders512", "wrong-Secret");
    let unknown_user = sasl("SCRAM-SHA-256", "nobody", "wrong-Secret");
    let (wrong, unknown) = tokio::join!(
        refused(&wrong_password, "wrong-password"),
        refused(&unknown_user, "unknown-user"),
    );
    for ((line, reason), login) in [
        (wrong, "SCRAM-SHA-512 as user \"orders512\""),
        (unknown, "SCRAM-SHA-256 as user \"nobody\""),
    ] {
        let expected = format!("SASL authentication ({login}) failed");
        assert!(line.contains(&expected), "{line}");
        assert!(
            line.contains(&broker.bootstrap),
            "the line names the broker: {line}"
        );
        assert!(reason.starts_with(&expected), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_a_proxy_with_a_client_certificate() {
    let certs = TestCerts::new();
    let proxy = certs.server("kafka-proxy", &["localhost"]);
    let client = certs.server("orderstore-client", &["orderstore"]);
    let ca = certs.ca();
    let broker = SecureBroker::start(
        &[],
        Some(TlsFront {
            server: &proxy,
            client_ca: Some(&ca),
        }),
    );
    let topic = unique_name("orders");
    let ca = ca.display().to_string();
    let other_ca = certs.other_ca().display().to_string();
    let cert = client.cert.display().to_string();
    let key = client.key.display().to_string();
    let tls = |ca: &str| {
        kafka_env(
            &broker.bootstrap,
            &topic,
            &[
                ("KAFKA_SECURITY_PROTOCOL", "ssl"),
                ("KAFKA_TLS_CA_FILE", ca),
                ("KAFKA_TLS_CERT_FILE", &cert),
                ("KAFKA_TLS_KEY_FILE", &key),
            ],
        )
    };
    produce_with(&tls(&ca), 60);
    ingests(&tls(&ca), 60, "kafka-tls").await;
    let (line, reason) = refused(&tls(&other_ca), "kafka-tls-wrong-ca").await;
    assert!(line.contains("the TLS handshake failed"), "{line}");
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(reason.starts_with("the TLS handshake failed"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_through_a_proxy() {
    let certs = TestCerts::new();
    let proxy = certs.server("kafka-proxy", &["localhost"]);
    let broker = SecureBroker::start(
        &users(),
        Some(TlsFront {
            server: &proxy,
            client_ca: None,
        }),
    );
    let topic = unique_name("orders");
    let ca = certs.ca().display().to_string();
    let env = kafka_env(
        &broker.bootstrap,
        &topic,
        &[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_USERNAME", "orders512"),
            ("KAFKA_SASL_PASSWORD", PASSWORD_512),
            ("KAFKA_TLS_CA_FILE", &ca),
        ],
    );
    produce_with(&env, 80);
    ingests(&env, 80, "sasl-ssl").await;
}
