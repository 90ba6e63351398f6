//! A locked HTTP API: with `HTTP_AUTH_TOKENS`, the order and reject routes, `/metrics` and
//! unknown paths answer 401 (with `WWW-Authenticate: Bearer` and a JSON body) unless a listed
//! token is sent; the probes and the page's files stay open (`http_methods.rs` sends every
//! other method too). With `HTTP_TLS_CERT_FILE` and `HTTP_TLS_KEY_FILE` the same API is served
//! over HTTPS. Bad security settings stop the binary with one line naming the variable, and
//! never print a secret.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const TOKEN: &str = "first-token-0123456789";
const NEXT_TOKEN: &str = "rotated-token-9876543210";

/// One stored order, an app with `overrides`, and the order's uid.
async fn app_with_an_order(overrides: &[(&str, &str)]) -> (RunningApp, String) {
    let (app, _, orders) = app_with_stored_orders(1, overrides).await;
    (app, orders[0].0.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_rejects_and_metrics_need_a_listed_token_and_probes_do_not() {
    let tokens = format!("{TOKEN}, {NEXT_TOKEN}");
    let (app, uid) = app_with_an_order(&[("HTTP_AUTH_TOKENS", &tokens)]).await;
    let port = app.http_port();
    let right = format!("Bearer {TOKEN}");
    let next = format!("Bearer {NEXT_TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");
    let by_uid = format!("/orders/uid/{uid}");
    let by_query = format!("/orders?order_uid={uid}");
    for path in [
        by_uid.as_str(),
        by_query.as_str(),
        "/orders/1",
        "/metrics",
        "/rejects",
        "/rejects/summary",
        "/rejects/1",
        "/orders/uid/nope/x",
    ] {
        for (headers, challenge) in [
            (vec![], "Bearer realm=\"orderstore\""),
            (
                vec![("Authorization", wrong.as_str())],
                "Bearer realm=\"orderstore\", error=\"invalid_token\"",
            ),
            (
                vec![("Authorization", "Basic Zm9vOmJhcg==")],
                "Bearer realm=\"orderstore\", error=\"invalid_token\"",
            ),
        ] {
            let answer = http_with(port, "GET", path, &headers).await;
            assert_eq!(answer.status, 401, "{path} with {headers:?}");
            assert_eq!(
                answer.headers.get("www-authenticate").map(String::as_str),
                Some(challenge)
            );
            let message = answer.json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(message.contains("token"), "{message}");
            assert!(!String::from_utf8_lossy(&answer.body).contains(TOKEN));
        }
    }
    for authorization in [right.as_str(), next.as_str(), &format!("bearer {TOKEN}")] {
        let answer = http_with(port, "GET", &by_uid, &[("Authorization", authorization)]).await;
        assert_eq!(answer.status, 200, "{authorization}");
        assert_eq!(answer.json()["order_uid"], uid.as_str());
    }
    let answer = http_with(port, "GET", &by_query, &[("Authorization", &right)]).await;
    assert_eq!(answer.status, 200);
    let answer = http_with(port, "GET", "/orders/999999", &[("Authorization", &right)]).await;
    assert_eq!(answer.status, 404, "a right token gets the usual answers");
    let metrics = http_with(port, "GET", "/metrics", &[("Authorization", &right)]).await;
    assert_eq!(metrics.status, 200);
    assert!(String::from_utf8_lossy(&metrics.body).contains("orderstore_"));
    for open in ["/health/live", "/health/ready", "/", "/app.js", "/app.css"] {
        assert_eq!(http(port, "GET", open).await.status, 200, "{open}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_same_api_with_the_token() {
    let certs = TestCerts::new();
    let server = certs.server("http", &["localhost"]);
    let cert = server.cert.display().to_string();
    let key = server.key.display().to_string();
    let (app, uid) = app_with_an_order(&[
        ("HTTP_AUTH_TOKENS", TOKEN),
        ("HTTP_TLS_CERT_FILE", &cert),
        ("HTTP_TLS_KEY_FILE", &key),
    ])
    .await;
    let port = app.http_port();
    let path = format!("/orders/uid/{uid}");
    let right = format!("Bearer {TOKEN}");
    let answer = https_with(port, &certs.ca(), &path, &[("Authorization", &right)]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["order_uid"], uid.as_str());
    assert_eq!(https_with(port, &certs.ca(), &path, &[]).await.status, 401);
    assert_eq!(
        https_with(port, &certs.ca(), "/health/ready", &[])
            .await
            .status,
        200
    );
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        Some(raw)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    assert!(
        !plain.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was answered"
    );
    app.stop().await;
}

#[test]
fn bad_security_settings_stop_start_up_with_the_variable_and_no_secret() {
    let certs = TestCerts::new();
    let server = certs.server("bad", &["localhost"]);
    let cert = server.cert.display().to_string();
    let key = server.key.display().to_string();
    let not_pem = certs.dir.join("bad.ext").display().to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")], "KAFKA_SASL_MECHANISM: expected to be set only with"),
        (
            vec![("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"), ("KAFKA_SASL_USERNAME", "u"), ("KAFKA_SASL_PASSWORD", "kafka-Secret-1")],
            "KAFKA_SASL_MECHANISM: expected PLAIN|SCRAM-SHA-256|SCRAM-SHA-512",
        ),
        (
            vec![("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"), ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"), ("KAFKA_SASL_USERNAME", "u")],
            "KAFKA_SASL_PASSWORD: expected a password",
        ),
        (vec![("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_TLS_CA_FILE", "/nonexistent/ca.pem")], "KAFKA_TLS_CA_FILE: expected a usable file: /nonexistent/ca.pem does not exist"),
        (vec![("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_TLS_CA_FILE", &not_pem)], "KAFKA_TLS_CA_FILE: expected a usable file"),
        (vec![("KAFKA_SECURITY_PROTOCOL", "ssl"), ("KAFKA_TLS_CERT_FILE", &cert)], "KAFKA_TLS_KEY_FILE: expected the private key of KAFKA_TLS_CERT_FILE"),
        (vec![("KAFKA_TLS_CA_FILE", &cert)], "KAFKA_TLS_CA_FILE: expected to be set only with KAFKA_SECURITY_PROTOCOL=ssl or sasl_ssl"),
        (vec![("HTTP_TLS_KEY_FILE", &key)], "HTTP_TLS_CERT_FILE: expected the certificate of HTTP_TLS_KEY_FILE"),
        (vec![("HTTP_AUTH_TOKENS", "short-Secret")], "HTTP_AUTH_TOKENS: expected comma-separated bearer tokens: token 1"),
        (
            vec![("DATABASE_URL", "postgres://u:db-Secret-2@localhost/x?sslmode=verify-full&sslrootcert=/nonexistent/root.pem")],
            "DATABASE_URL: expected a usable sslrootcert: /nonexistent/root.pem does not exist",
        ),
        (vec![("DATABASE_URL", "postgres://u:db-Secret-2@localhost/x?sslmode=always")], "DATABASE_URL: expected sslmode to be one of"),
    ];
    for (env, expected) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_orderstore"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{env:?}: expected {expected:?} in {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{env:?}: {stderr}");
        assert!(
            !stderr.contains("Secret"),
            "{env:?} printed a secret: {stderr}"
        );
    }
}
