//! PostgreSQL over TLS, as managed services run it: a cluster with `ssl=on`, a certificate
//! from a throwaway CA made here, and a `pg_hba.conf` that rejects every connection without
//! TLS and asks for a SCRAM password. orderstore ingests and serves with
//! `sslmode=verify-full`, and each of libpq's modes means what it means in libpq: a CA that
//! did not sign the server's certificate, a host name the certificate does not hold, a
//! missing TLS or a wrong password each fail with an error that says so.

use std::time::Duration;

use crate::common::*;
use orderstore::store::postgres::{connection_string, Database};

const PASSWORD: &str = "pg-Secret-4711";

/// A TLS-only cluster with a user `orderstore` (password [`PASSWORD`]) owning a database;
/// the certificate names `localhost` only, so `127.0.0.1` is a host name it does not hold.
async fn tls_cluster() -> (PgCluster, TestCerts, String) {
    let certs = TestCerts::new();
    let server = certs.server("postgres", &["localhost"]);
    let cluster = PgCluster::start_tls(&server, &certs.ca());
    let admin = connect(&cluster.socket_admin_url()).await;
    let database = unique_name("orderstore_tls");
    // CREATE DATABASE cannot share a transaction (a multi-statement batch) with anything.
    for statement in [
        format!("CREATE ROLE orderstore LOGIN PASSWORD '{PASSWORD}'"),
        "CREATE ROLE certuser LOGIN".to_string(),
        format!("CREATE DATABASE {database} OWNER orderstore"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|error| panic!("cannot create the user and database: {error:?}"));
    }
    (cluster, certs, database)
}

/// Connects once through orderstore's pool with `url`: `Ok` or the error it gives.
async fn ping(url: &str) -> Result<(), String> {
    let parsed = connection_string::parse(url)?;
    let database = Database::new(parsed.config, parsed.tls, 1, "orders");
    let result = database.ping().await.map_err(|error| error.to_string());
    database.close();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_means_what_it_means_in_libpq() {
    let (cluster, certs, database) = tls_cluster().await;
    let port = cluster.port();
    let url = |host: &str, password: &str, query: String| {
        format!("postgres://orderstore:{password}@{host}:{port}/{database}?{query}")
    };
    let ca = certs.ca().display().to_string();
    let other_ca = certs.other_ca().display().to_string();

    for query in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        "sslmode=require".to_string(),
        // libpq's default: TLS because the server offers it.
        String::new(),
        // SCRAM-SHA-256-PLUS: the password exchange bound to the TLS session.
        format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    ] {
        let result = ping(&url("localhost", PASSWORD, query.clone())).await;
        assert_eq!(result, Ok(()), "localhost with {query:?}");
    }
    // A client certificate (sslcert, sslkey) is the login of a `cert` user.
    let client = certs.server("certuser", &["certuser"]);
    let with_certificate = format!(
        "postgres://certuser@localhost:{port}/{database}?sslmode=verify-full&sslrootcert={ca}\
         &sslcert={}&sslkey={}",
        client.cert.display(),
        client.key.display()
    );
    assert_eq!(ping(&with_certificate).await, Ok(()));
    let without = format!(
        "postgres://certuser@localhost:{port}/{database}?sslmode=verify-full&sslrootcert={ca}"
    );
    let error = ping(&without).await.err().unwrap_or_default();
    assert!(error.contains("certificate"), "{error}");
    // verify-ca checks the chain only, so a host name the certificate lacks is fine.
    let by_address = ping(&url(
        "127.0.0.1",
        PASSWORD,
        format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await;
    assert_eq!(by_address, Ok(()));

    let refusals = [
        (
            url(
                "localhost",
                PASSWORD,
                format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            url(
                "localhost",
                PASSWORD,
                format!("sslmode=verify-ca&sslrootcert={other_ca}"),
            ),
            "invalid peer certificate: UnknownIssuer",
        ),
        // libpq: require with a root certificate checks the chain as verify-ca does.
        (
            url(
                "localhost",
                PASSWORD,
                format!("sslmode=require&sslrootcert={other_ca}"),
            ),
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            url(
                "127.0.0.1",
                PASSWORD,
                format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "not valid for name",
        ),
        (
            url("localhost", PASSWORD, "sslmode=disable".to_string()),
            "no encryption",
        ),
        (
            url(
                "localhost",
                "wrong-password",
                format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "password authentication failed",
        ),
    ];
    for (url, expected) in refusals {
        let error = ping(&url).await.err().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{url}: expected {expected:?} in {error:?}"
        );
        assert!(!error.contains(PASSWORD), "the password was shown: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_ingests_and_serves_with_verify_full() {
    const N_ORDERS: usize = 200;
    let (cluster, certs, database) = tls_cluster().await;
    let topic = unique_name("orders");
    let partitions = create_topic(&kafka_client().await, &topic, 2).await;
    let orders = valid_orders(N_ORDERS);
    produce_spread(&partitions, &orders).await;

    let url = format!(
        "postgres://orderstore:{PASSWORD}@localhost:{}/{database}?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        certs.ca().display()
    );
    let http_port = http_port();
    let mut env = binary_env(&tokio_postgres::Config::new(), &topic, http_port);
    env.retain(|(name, _)| name != "DATABASE_URL" && name != "LOG_LEVEL");
    env.push(("DATABASE_URL".into(), url));
    env.push(("LOG_LEVEL".into(), "debug".into()));
    let log = LogFile::new("tls-postgres");
    let instance = start_binary(&env, log.stdio());

    let db = connect(&format!("{} dbname={database}", cluster.socket_admin_url())).await;
    wait_for(
        "every order stored over TLS",
        Duration::from_secs(120),
        || async { count_if_exists(&db, "SELECT count(*) FROM orders").await == N_ORDERS as i64 },
    )
    .await;
    let by_uid = http(http_port, "GET", &format!("/orders/uid/{}", orders[7].0)).await;
    assert_eq!(by_uid.status, 200);
    let id = by_uid
        .headers
        .get("x-order-id")
        .cloned()
        .unwrap_or_default();
    let by_id = http(http_port, "GET", &format!("/orders/{id}")).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body, by_uid.body);
    let ready = http(http_port, "GET", "/health/ready").await;
    assert_eq!(ready.status, 200, "{:?}", ready.json());
    // Every connection is TLS: the server would refuse any other.
    let plain = db
        .query_one(
            "SELECT count(*) FILTER (WHERE NOT ssl), count(*) FROM pg_stat_ssl \
             JOIN pg_stat_activity USING (pid) WHERE usename = 'orderstore'",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(plain.get::<_, i64>(0), 0);
    assert!(plain.get::<_, i64>(1) > 0, "orderstore holds no connection");
    instance.terminate();
    let text = log.text();
    assert!(!text.contains(PASSWORD), "the password was logged:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_did_not_sign_the_server_is_one_clear_line_retried() {
    let (cluster, certs, database) = tls_cluster().await;
    let url = format!(
        "postgres://orderstore:{PASSWORD}@localhost:{}/{database}?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        certs.other_ca().display()
    );
    let mut env = binary_env(&tokio_postgres::Config::new(), "orders", http_port());
    env.retain(|(name, _)| name != "DATABASE_URL");
    env.push(("DATABASE_URL".into(), url));
    let log = LogFile::new("tls-postgres-wrong-ca");
    let instance = start_binary(&env, log.stdio());
    wait_for(
        "two failed attempts in the log",
        Duration::from_secs(60),
        || async { log.text().matches("UnknownIssuer").count() >= 2 },
    )
    .await;
    drop(instance);
    let text = log.text();
    let line = text
        .lines()
        .find(|line| line.contains("UnknownIssuer"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!(
            "connecting to PostgreSQL (at localhost:{}/",
            cluster.port()
        )) && line.contains("sslmode=verify-full)")
            && line.contains("invalid peer certificate"),
        "{line}"
    );
    assert!(!text.contains(PASSWORD), "the password was logged:\n{text}");
}
