//! The status page and `/status.json`, read the way an operator and a script read them: a
//! third-party-like producer writes valid and hostile records to a running instance, and once
//! the lag is 0 the JSON's totals, rejects by reason and partitions are compared with what was
//! sent (the reasons as the contract names them), the per-second samples with what was
//! consumed, and the page, rendered by Debian's headless Chromium, shows the same figures (a
//! screenshot is kept as `test-artifacts/status-page.png`). The token guards the JSON like the
//! order routes; the page itself, which holds no data, stays open like the search page.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// The hostile records sent: bytes no contract accepts, and hostile text meant for the page.
fn hostile_records() -> Vec<Vec<u8>> {
    vec![
        b"not json".to_vec(),
        b"<img src=x onerror=alert(1)>".to_vec(),
        br#"{"order_uid": "<script>alert(1)</script>"}"#.to_vec(),
        Vec::new(),
        b"[1, 2, 3]".to_vec(),
        b"{\"order_uid\": \"\xff\xfe\"}".to_vec(),
    ]
}

/// What the contract says of each hostile record: its reason kind, counted.
fn expected_reasons(records: &[Vec<u8>]) -> BTreeMap<String, i64> {
    let mut reasons = BTreeMap::new();
    for record in records {
        let rejection = orderstore::order::ValidOrder::parse(record, chrono::Utc::now(), 1 << 20)
            .err()
            .unwrap_or_else(|| panic!("{record:?} is accepted by the contract"));
        *reasons.entry(rejection.kind().to_string()).or_insert(0) += 1;
    }
    reasons
}

async fn status_json(port: u16, headers: &[(&str, &str)]) -> Value {
    let answer = http_with(port, "GET", "/status.json", headers).await;
    assert_eq!(answer.status, 200, "GET /status.json");
    assert_eq!(
        answer.headers.get("cache-control").map(String::as_str),
        Some("no-store")
    );
    answer.json()
}

fn number(value: &Value, path: &str) -> i64 {
    value
        .pointer(path)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{path} is not a number in {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_the_page_show_what_a_producer_sent() {
    require_chromium();
    let bed = TestBed::new(3).await;
    let app = RunningApp::start(settings(
        &bed.database,
        &bed.topic,
        &[("INSTANCE_ID", "status-one")],
    ))
    .await;
    app.restored().await;
    let port = app.http_port();

    // A producer of its own writes valid orders over every partition and hostile records
    // to partition 1, while the instance runs.
    let orders = valid_orders(60);
    produce_spread(&bed.partitions, &orders).await;
    let hostile = hostile_records();
    produce(
        &bed.partitions[1],
        hostile.iter().cloned().map(Some).collect(),
    )
    .await;
    let n_sent = (orders.len() + hostile.len()) as i64;
    bed.wait_until_caught_up().await;

    // Lag 0 on every partition, as the status says it, and the samples caught up with the
    // totals (the observer writes one a second).
    let marks = high_watermarks(&bed.partitions).await;
    wait_for(
        "status.json to show lag 0 and every record sampled",
        Duration::from_secs(30),
        || async {
            let status = status_json(port, &[]).await;
            let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
            let sampled: i64 = status["ingest"]["per_second"]
                .as_array()
                .map(|samples| {
                    samples
                        .iter()
                        .map(|sample| number(sample, "/consumed"))
                        .sum()
                })
                .unwrap_or_default();
            partitions.len() == bed.partitions.len()
                && partitions.iter().all(|partition| partition["lag"] == 0)
                && sampled == number(&status, "/ingest/consumed_total")
                && number(&status, "/ingest/consumed_total") == n_sent
        },
    )
    .await;

    let status = status_json(port, &[]).await;
    assert_eq!(status["instance"], "status-one");
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["restore"]["restored"], true);
    assert_eq!(status["postgres"]["ok"], true);
    assert_eq!(status["postgres"]["error"], Value::Null);
    assert_eq!(status["kafka"]["ok"], true);
    assert_eq!(number(&status, "/ingest/stored_total"), orders.len() as i64);
    assert_eq!(
        number(&status, "/ingest/rejected_total"),
        hostile.len() as i64
    );
    assert_eq!(number(&status, "/ingest/duplicates_total"), 0);
    assert_eq!(number(&status, "/memory/orders"), orders.len() as i64);

    // Per second: oldest first, at most 15 minutes, and their sums are the totals.
    let samples = status["ingest"]["per_second"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!samples.is_empty() && samples.len() <= 900);
    let at: Vec<&str> = samples.iter().filter_map(|s| s["at"].as_str()).collect();
    assert_eq!(at.len(), samples.len(), "every sample has its time");
    assert!(at.windows(2).all(|pair| pair[0] <= pair[1]), "{at:?}");
    for (field, total) in [
        ("consumed", n_sent),
        ("stored", orders.len() as i64),
        ("rejected", hostile.len() as i64),
    ] {
        let sum: i64 = samples
            .iter()
            .map(|s| number(s, &format!("/{field}")))
            .sum();
        assert_eq!(sum, total, "the samples' {field}");
    }

    // Partitions: every one, sorted, owned by this instance, at the high watermark.
    let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
    for (index, partition) in partitions.iter().enumerate() {
        let number_of = index as i64;
        assert_eq!(number(partition, "/partition"), number_of);
        assert_eq!(partition["owner"], "status-one");
        assert_eq!(partition["halted"], false);
        assert_eq!(partition["halted_at"], Value::Null);
        let mark = marks[&(number_of as i32)];
        assert_eq!(number(partition, "/high_watermark"), mark, "{partition}");
        assert_eq!(number(partition, "/stored_offset"), mark, "{partition}");
        assert_eq!(number(partition, "/lag"), 0);
        assert!(partition["seconds_since_progress"].is_number());
    }
    assert_eq!(
        status["fleet"],
        serde_json::json!([{ "instance": "status-one", "partitions": [0, 1, 2] }])
    );

    // Rejects: by reason as the contract names them; the latest newest first, from
    // partition 1; no dead-letter topic, so nothing is pending.
    let expected = expected_reasons(&hostile);
    let by_reason: BTreeMap<String, i64> =
        serde_json::from_value(status["rejects"]["by_reason"].clone())
            .unwrap_or_else(|error| panic!("by_reason: {error}"));
    assert_eq!(by_reason, expected);
    let latest = status["rejects"]["latest"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(latest.len(), hostile.len());
    let offsets: Vec<i64> = latest.iter().map(|r| number(r, "/offset")).collect();
    assert!(
        offsets.windows(2).all(|pair| pair[0] > pair[1]),
        "{offsets:?}"
    );
    assert!(latest
        .iter()
        .all(|r| r["partition"] == 1 && r["id"].is_number()));
    assert_eq!(status["rejects"]["dead_letter_topic"], Value::Null);
    assert_eq!(status["rejects"]["pending"], Value::Null);

    // HTTP: the requests above were counted (the figures are of the last 10 s).
    wait_for(
        "the HTTP figures to count requests",
        Duration::from_secs(15),
        || async {
            let status = status_json(port, &[]).await;
            status["http"]["requests_per_second"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0
                && status["http"]["p99_ms"]
                    .as_f64()
                    .is_some_and(|p99| p99 > 0.0)
                && status["http"]["p50_ms"].as_f64() <= status["http"]["p99_ms"].as_f64()
        },
    )
    .await;

    // The latest orders, for the search page: newest first, of what was stored.
    let latest_orders = http(port, "GET", "/orders/latest?limit=5").await;
    assert_eq!(latest_orders.status, 200);
    let listed = latest_orders.json()["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|order| orders
        .iter()
        .any(|(uid, _)| order["order_uid"].as_str() == Some(uid))));
    assert_eq!(
        http(port, "GET", "/orders/latest?limit=0").await.status,
        400
    );

    // The page, rendered, shows the same figures, as text.
    let dom = in_blocking_thread(move || {
        run_chromium(
            &["--dump-dom".to_string()],
            &format!("http://127.0.0.1:{port}/status"),
        )
    })
    .await;
    let dom =
        String::from_utf8(dom).unwrap_or_else(|error| panic!("the DOM is not UTF-8: {error}"));
    for expected in [
        r#"<span id="instance">status-one</span>"#.to_string(),
        format!(
            r#"<span id="stored-total" class="tile-value">{}</span>"#,
            orders.len()
        ),
        format!(
            r#"<span id="rejected-total" class="tile-value">{}</span>"#,
            hostile.len()
        ),
        r#"<span id="ready" class="tile-value">ready</span>"#.to_string(),
        "<td>status-one</td>".to_string(),
        "<td>0, 1, 2</td>".to_string(),
        "No dead-letter topic is set".to_string(),
    ] {
        assert!(dom.contains(&expected), "{expected:?} is missing:\n{dom}");
    }
    for (reason, count) in &expected {
        assert!(
            dom.contains(&format!("<td>{reason}</td><td>{count}</td>")),
            "{reason} {count} is missing:\n{dom}"
        );
    }
    for reject in &latest {
        let id = number(reject, "/id");
        assert!(
            dom.contains(&format!(r#"<a href="/rejects/{id}">{id}</a>"#)),
            "reject {id}:\n{dom}"
        );
    }
    assert!(
        !dom.contains("<img"),
        "a hostile record became an element:\n{dom}"
    );
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");

    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-artifacts")
        .join("status-page.png");
    if let Some(folder) = screenshot.parent() {
        std::fs::create_dir_all(folder)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", folder.display()));
    }
    if screenshot.exists() {
        std::fs::remove_file(&screenshot)
            .unwrap_or_else(|error| panic!("cannot remove {}: {error}", screenshot.display()));
    }
    let flags = vec![
        format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,1800".to_string(),
    ];
    in_blocking_thread(move || run_chromium(&flags, &format!("http://127.0.0.1:{port}/status")))
        .await;
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", screenshot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 30_000,
        "the screenshot is only {} bytes",
        png.len()
    );

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_needs_the_token_and_the_page_does_not() {
    const TOKEN: &str = "status-token-0123456789";
    let bed = TestBed::new(1).await;
    let app = RunningApp::start(settings(
        &bed.database,
        &bed.topic,
        &[("HTTP_AUTH_TOKENS", TOKEN)],
    ))
    .await;
    let port = app.http_port();
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/status.json", "/orders/latest"] {
        assert_eq!(
            http(port, "GET", path).await.status,
            401,
            "{path} without a token"
        );
        let wrong = http_with(port, "GET", path, &[("authorization", "Bearer wrong")]).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let right = http_with(port, "GET", path, &[("authorization", &bearer)]).await;
        assert_eq!(right.status, 200, "{path} with the token");
    }
    for path in ["/status", "/status.js", "/status.css"] {
        let answer = http(port, "GET", path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .headers
                .get("content-security-policy")
                .is_some_and(|policy| policy.contains("script-src 'self'")),
            "{path} has no strict policy"
        );
    }
    let status = status_json(port, &[("authorization", &bearer)]).await;
    for field in [
        "/instance",
        "/ready",
        "/started_at",
        "/uptime_seconds",
        "/restore/restored",
        "/ingest/consumed_total",
        "/ingest/per_second",
        "/partitions",
        "/fleet",
        "/memory/orders",
        "/rejects/by_reason",
        "/rejects/latest",
        "/rejects/dead_letter_topic",
        "/rejects/pending",
        "/http/requests_per_second",
        "/http/p50_ms",
        "/http/p99_ms",
        "/postgres/ok",
        "/postgres/error",
        "/kafka/ok",
        "/kafka/error",
    ] {
        assert!(
            status.pointer(field).is_some(),
            "{field} is missing from {status}"
        );
    }
    app.stop().await;
}
