//! `orderstore targets` replayed against the service: with orders stored by a running app,
//! every target the binary prints, in each format and by each route, names a stored order and
//! answers 200; vegeta's format follows its grammar (a request line, its header under it, a
//! blank line between targets) and carries the `Authorization` header exactly when
//! `HTTP_AUTH_TOKENS` is set; fewer orders than asked are printed with a word on stderr, and
//! none is a failure that says why.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output, Stdio};

use crate::common::*;

/// Orders stored for the tests; fewer than the default `--count` of 1000.
const STORED: usize = 12;
/// The token the locked app accepts first.
const TOKEN: &str = "targets-token-0123456789";

/// A fresh topic with [`STORED`] orders, an app with `overrides` that stored them, the
/// binary's environment for that app, and the stored orders' uid by id.
async fn stored_orders_and_app(
    overrides: &[(&str, &str)],
) -> (RunningApp, Vec<(String, String)>, HashMap<i64, String>) {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(1).await;
    produce_spread(&partitions, &valid_orders(STORED)).await;
    let app = RunningApp::start(settings(&database, &topic, overrides)).await;
    wait_for(
        "the orders to be stored",
        std::time::Duration::from_secs(60),
        || async { count_if_exists(&db, "SELECT count(*) FROM orders").await == STORED as i64 },
    )
    .await;
    let stored = db
        .query("SELECT id, order_uid FROM orders", &[])
        .await
        .unwrap_or_else(|error| panic!("cannot read the orders: {error}"))
        .iter()
        .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)))
        .collect();
    let env = binary_env(&database, &topic, app.http_port());
    (app, env, stored)
}

/// Runs `ANALYZE orders` in the database of `env`'s `DATABASE_URL`.
async fn analyze_orders(env: &[(String, String)]) {
    let url = env
        .iter()
        .find(|(name, _)| name == "DATABASE_URL")
        .map(|(_, url)| url.as_str())
        .unwrap_or_else(|| panic!("no DATABASE_URL in {env:?}"));
    connect(url)
        .await
        .batch_execute("ANALYZE orders")
        .await
        .unwrap_or_else(|error| panic!("cannot analyze orders: {error}"));
}

/// Runs `orderstore targets` with `args` and `env` off the runtime's threads, so that the app
/// keeps running while the binary waits. `HTTP_AUTH_TOKENS` is set to `tokens`, so that
/// neither `.env` nor the test's own environment decides whether a header is printed.
async fn targets(env: &[(String, String)], tokens: &str, args: &[&str]) -> Output {
    let env = env.to_vec();
    let tokens = tokens.to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_orderstore"))
            .arg("targets")
            .args(&args)
            .envs(env)
            .env("HTTP_AUTH_TOKENS", tokens)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"))
    })
    .await
    .unwrap_or_else(|error| panic!("the runner failed: {error}"))
}

/// A printed target: its URL and its header lines.
#[derive(Debug)]
struct Target {
    url: String,
    headers: Vec<String>,
}

/// Parses vegeta's http format strictly: targets separated by exactly one blank line, each a
/// `GET <url>` line followed by its header lines; no blank line before the first or after the
/// last.
fn parse_vegeta(text: &str) -> Vec<Target> {
    assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{text:?}");
    text.trim_end_matches('\n')
        .split("\n\n")
        .map(|block| {
            let mut lines = block.lines();
            let request = lines.next().unwrap_or_default();
            let url = request
                .strip_prefix("GET ")
                .unwrap_or_else(|| panic!("not a request line: {request:?} in:\n{text}"));
            let headers: Vec<String> = lines.map(str::to_owned).collect();
            assert!(
                headers.iter().all(|header| header.contains(": ")),
                "a header line that is not one in:\n{text}"
            );
            Target {
                url: url.to_owned(),
                headers,
            }
        })
        .collect()
}

/// Parses one URL a line.
fn parse_urls(text: &str) -> Vec<Target> {
    assert!(text.ends_with('\n') && !text.contains("\n\n"), "{text:?}");
    text.lines()
        .map(|url| {
            assert!(url.starts_with("http://"), "not a URL: {url:?}");
            Target {
                url: url.to_owned(),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Checks that each target asks the route `by` says, for a distinct stored order, and that
/// the app answers it with 200, sending the target's headers.
async fn check_targets(targets: &[Target], by: &str, port: u16, stored: &HashMap<i64, String>) {
    let base = format!("http://127.0.0.1:{port}");
    let uids: HashSet<&String> = stored.values().collect();
    let mut named = HashSet::new();
    for (index, target) in targets.iter().enumerate() {
        let path = target
            .url
            .strip_prefix(&base)
            .unwrap_or_else(|| panic!("{} is not under {base}", target.url));
        let asks_by_id = match by {
            "id" => true,
            "uid" => false,
            _ => index % 2 == 0,
        };
        if asks_by_id {
            let id: i64 = path
                .strip_prefix("/orders/")
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("{path} does not ask by id"));
            assert!(stored.contains_key(&id), "{path}: no order has id {id}");
            assert!(named.insert(stored[&id].clone()), "{path} twice");
        } else {
            let uid = path
                .strip_prefix("/orders/uid/")
                .unwrap_or_else(|| panic!("{path} does not ask by uid"));
            assert!(
                uids.contains(&uid.to_owned()),
                "{path}: no order has uid {uid}"
            );
            assert!(named.insert(uid.to_owned()), "{path} twice");
        }
        let headers: Vec<(&str, &str)> = target
            .headers
            .iter()
            .filter_map(|header| header.split_once(": "))
            .collect();
        let answer = http_with(port, "GET", path, &headers).await;
        assert_eq!(answer.status, 200, "{path} with {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_of_every_format_and_route_names_a_stored_order_that_answers_200() {
    let (app, env, stored) = stored_orders_and_app(&[]).await;
    let port = app.http_port();
    // With the table analyzed, the command samples pages (TABLESAMPLE) before it falls back
    // to sorting the topic; the other tests run before any ANALYZE and take the fallback.
    analyze_orders(&env).await;
    for format in ["vegeta", "urls"] {
        for by in ["id", "uid", "mixed"] {
            let output = targets(&env, "", &["--count", "5", "--by", by, "--format", format]).await;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{format} {by}: {stderr}");
            assert!(stderr.is_empty(), "{format} {by}: {stderr}");
            let printed = if format == "vegeta" {
                parse_vegeta(&stdout)
            } else {
                parse_urls(&stdout)
            };
            assert_eq!(printed.len(), 5, "{stdout}");
            assert!(
                printed.iter().all(|target| target.headers.is_empty()),
                "a header without HTTP_AUTH_TOKENS:\n{stdout}"
            );
            check_targets(&printed, by, port, &stored).await;
        }
    }

    // The default: 1000 targets in vegeta's format, by both routes; the 12 that exist are
    // printed, each once, and stderr says there were fewer.
    let output = targets(&env, "", &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("only {STORED} orders")) && stderr.contains("not 1000"),
        "{stderr}"
    );
    let printed = parse_vegeta(&stdout);
    assert_eq!(printed.len(), STORED, "{stdout}");
    check_targets(&printed, "mixed", port, &stored).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vegeta_targets_carry_the_first_token_when_the_service_asks_for_one() {
    let tokens = format!("{TOKEN}, second-token-9876543210");
    let (app, env, stored) = stored_orders_and_app(&[("HTTP_AUTH_TOKENS", &tokens)]).await;
    let port = app.http_port();

    let output = targets(&env, &tokens, &["--count", "4"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = parse_vegeta(&stdout);
    assert_eq!(printed.len(), 4, "{stdout}");
    for target in &printed {
        assert_eq!(
            target.headers,
            [format!("Authorization: Bearer {TOKEN}")],
            "{stdout}"
        );
    }
    check_targets(&printed, "mixed", port, &stored).await;

    // Without the header the same targets are refused: the header is what makes them pass.
    let path = printed[0]
        .url
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or_default();
    assert_eq!(http(port, "GET", path).await.status, 401);

    // Plain URLs carry no header, with or without tokens.
    let output = targets(&env, &tokens, &["--count", "4", "--format", "urls"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(!stdout.contains(TOKEN), "{stdout}");
    assert_eq!(parse_urls(&stdout).len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn a_topic_without_orders_is_a_failure_that_says_so() {
    let database = create_database(&services().admin_url).await;
    let topic = unique_name("orders");
    create_tables(&database, &topic).await;
    let env = binary_env(&database, &topic, http_port());

    let output = targets(&env, "", &["--url", "http://127.0.0.1:1"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains(&format!("no order of topic {topic} is stored")),
        "{stderr}"
    );
}
