//! Compose's monitoring profile (`monitoring/`), checked with the real tools: Prometheus's
//! configuration and alerting rules with `promtool check`, each alert with `promtool test
//! rules` (fires when it should, quiet when it should not), the token hand-over of
//! `entrypoint.sh`, and every query of the Grafana dashboard run through a real Prometheus
//! that scraped a running orderstore while valid and hostile records flowed.
//!
//! The tools come from Debian's `prometheus` package, which `scripts/test` installs; a missing
//! one fails the test naming it, never skips it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use orderstore::fake_data::{invalid_record_of_kind, INVALID_KINDS};

/// `monitoring/` of the checkout.
fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

/// `monitoring/prometheus/`, where Prometheus's files are.
fn prometheus_dir() -> PathBuf {
    monitoring_dir().join("prometheus")
}

/// A file of `monitoring/`, as text.
fn read_monitoring_file(relative: &str) -> String {
    let path = monitoring_dir().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Where a tool of Debian's `prometheus` package is; fails naming it when it is missing.
fn prometheus_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is missing: these tests check compose's monitoring profile with \
                 Debian's prometheus package; scripts/test installs it (apt-get install \
                 prometheus)"
            )
        })
}

/// Runs `command` and fails with its output unless it succeeds; returns its standard output.
fn run_tool(mut command: Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A fresh directory under the system's temporary directory, deleted when the test binary
/// exits.
fn temporary_directory(prefix: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", directory.display()));
    watchdog(&format!("rm -rf '{}'", directory.display()));
    directory
}

/// Replaces the one occurrence of `from` in `text`; fails when there is none or several, so a
/// change of `prometheus.yml` that the tests no longer follow is a failure, not a silent
/// test of something else.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "monitoring/prometheus/prometheus.yml must hold {from:?} exactly once for the tests \
         to adapt it"
    );
    text.replacen(from, to, 1)
}

/// The file `prometheus.yml` names as the scrape's bearer token.
const TOKEN_FILE_IN_THE_CONTAINER: &str = "/run/orderstore/token";

/// Copies `prometheus.yml` and `alerts.yml` into `directory`, with the token file moved to
/// `token_file` and, when given, the target and intervals swapped for the test's; returns the
/// copy's path. Everything else is the file as compose uses it.
fn prometheus_config_in(directory: &Path, token_file: &Path, test_target: Option<&str>) -> PathBuf {
    let mut config = read_monitoring_file("prometheus/prometheus.yml");
    config = replace_once(
        &config,
        TOKEN_FILE_IN_THE_CONTAINER,
        &token_file.display().to_string(),
    );
    if let Some(target) = test_target {
        config = replace_once(&config, "\"orderstore:8080\"", &format!("\"{target}\""));
        config = replace_once(&config, "scrape_interval: 5s", "scrape_interval: 1s");
        config = replace_once(
            &config,
            "evaluation_interval: 5s",
            "evaluation_interval: 1s",
        );
    }
    let config_path = directory.join("prometheus.yml");
    std::fs::write(&config_path, config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", config_path.display()));
    std::fs::copy(
        prometheus_dir().join("alerts.yml"),
        directory.join("alerts.yml"),
    )
    .unwrap_or_else(|error| panic!("cannot copy alerts.yml: {error}"));
    config_path
}

#[test]
fn promtool_accepts_the_prometheus_configuration_and_its_rules() {
    let promtool = prometheus_tool("promtool");
    // promtool checks that the token file exists, and /run/orderstore/token exists only in
    // the container: the copy names a file of the test's instead, and nothing else changes.
    let directory = temporary_directory("promtool_config");
    let token_file = directory.join("token");
    std::fs::write(&token_file, "")
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", token_file.display()));
    let config = prometheus_config_in(&directory, &token_file, None);
    let mut check_config = Command::new(&promtool);
    check_config.args(["check", "config"]).arg(&config);
    let checked = run_tool(check_config, "promtool check config prometheus.yml");
    assert!(
        checked.contains("1 rule files found"),
        "prometheus.yml must load alerts.yml:\n{checked}"
    );

    let mut check_rules = Command::new(&promtool);
    check_rules
        .args(["check", "rules"])
        .arg(prometheus_dir().join("alerts.yml"));
    let checked = run_tool(check_rules, "promtool check rules alerts.yml");
    let n_alerts = alert_names().len();
    assert!(
        checked.contains(&format!("{n_alerts} rules found")),
        "promtool must find the {n_alerts} alerts of alerts.yml:\n{checked}"
    );
}

/// The names of the alerts of `alerts.yml`.
fn alert_names() -> BTreeSet<String> {
    read_monitoring_file("prometheus/alerts.yml")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn every_alert_has_unit_tests_of_firing_and_of_staying_quiet_and_they_pass() {
    let names = alert_names();
    for expected in [
        "OrderstoreLagGrowing",
        "OrderstorePartitionStalled",
        "OrderstorePartitionHalted",
        "OrderstoreNothingStored",
        "OrderstoreDown",
        "OrderstoreDeadLettersFailing",
    ] {
        assert!(
            names.contains(expected),
            "alerts.yml has no alert {expected}; it has {names:?}"
        );
    }
    // In alerts_test.yml each check is `alertname: X` followed by `exp_alerts: []` (quiet)
    // or `exp_alerts:` and a list (firing).
    let tests = read_monitoring_file("prometheus/alerts_test.yml");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for pair in lines.windows(2) {
        if let Some(name) = pair[0].strip_prefix("alertname:") {
            match pair[1] {
                "exp_alerts: []" => quiet.insert(name.trim().to_owned()),
                "exp_alerts:" => fires.insert(name.trim().to_owned()),
                other => panic!("alerts_test.yml: alertname {name} is followed by {other:?}"),
            };
        }
    }
    for name in &names {
        assert!(
            fires.contains(name),
            "alerts_test.yml never expects {name} to fire"
        );
        assert!(
            quiet.contains(name),
            "alerts_test.yml never expects {name} to stay quiet"
        );
    }
    let mut test_rules = Command::new(prometheus_tool("promtool"));
    test_rules
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(prometheus_dir());
    let output = run_tool(test_rules, "promtool test rules alerts_test.yml");
    assert!(output.contains("SUCCESS"), "{output}");
}

/// Runs `entrypoint.sh` with `tokens` as HTTP_AUTH_TOKENS and `cat` as the program it starts;
/// returns the token file's content and what the program printed.
fn entrypoint_with(tokens: &str) -> (String, String) {
    let directory = temporary_directory("entrypoint");
    let token_file = directory.join("token");
    let mut command = Command::new("sh");
    command
        .arg(prometheus_dir().join("entrypoint.sh"))
        .args(["echo", "started with", "*"])
        .env("HTTP_AUTH_TOKENS", tokens)
        .env("ORDERSTORE_TOKEN_FILE", &token_file);
    let printed = run_tool(command, "monitoring/prometheus/entrypoint.sh");
    let written = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|error| panic!("entrypoint.sh wrote no token file: {error}"));
    (written, printed)
}

#[test]
fn the_entrypoint_hands_prometheus_the_first_token_and_starts_it() {
    let (written, printed) =
        entrypoint_with(" , first-token-of-enough-length , second-token-of-enough-length");
    assert_eq!(written, "first-token-of-enough-length");
    // The program and its arguments pass unchanged, a `*` included.
    assert_eq!(printed, "started with *\n");
    let (written, _) = entrypoint_with("");
    assert_eq!(written, "", "no token must leave the token file empty");
}

#[test]
fn only_the_monitoring_profile_adds_services_and_it_pins_their_images() {
    let compose = crate::compose::compose();
    let services = compose["services"]
        .as_object()
        .unwrap_or_else(|| panic!("compose.yaml has no services: {compose}"));
    let mut default_stack = BTreeSet::new();
    let mut monitoring = BTreeSet::new();
    for (name, service) in services {
        match &service["profiles"] {
            Value::Null => default_stack.insert(name.as_str()),
            profiles => {
                assert_eq!(
                    profiles,
                    &serde_json::json!(["monitoring"]),
                    "service {name} must be in the monitoring profile only"
                );
                monitoring.insert(name.as_str())
            }
        };
    }
    assert_eq!(
        default_stack,
        BTreeSet::from(["kafka", "postgres", "orderstore"]),
        "without --profile monitoring the stack must be kafka, postgres and orderstore"
    );
    assert_eq!(
        monitoring,
        BTreeSet::from(["prometheus", "grafana", "kafka-ui"])
    );
    for name in monitoring {
        let service = &services[name];
        let image = service["image"].as_str().unwrap_or_default();
        let tag = image
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or_default();
        assert!(
            !tag.is_empty() && tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
            "service {name} must pin its image's version, uses {image:?}"
        );
        // Neither Prometheus nor Kafka UI asks for a login: this machine only.
        let ports = service["ports"].as_array().cloned().unwrap_or_default();
        assert!(!ports.is_empty(), "service {name} publishes no port");
        for port in ports {
            let published = port.as_str().unwrap_or_default();
            assert!(
                published.starts_with("127.0.0.1:"),
                "service {name} must publish on 127.0.0.1 only, publishes {port}"
            );
        }
    }
    // Prometheus gets the tokens orderstore gets.
    assert_eq!(
        services["prometheus"]["environment"]["HTTP_AUTH_TOKENS"],
        services["orderstore"]["environment"]["HTTP_AUTH_TOKENS"]
    );
}

/// The dashboard's queries, each with the panel it is in, as Grafana would send them with
/// `$__rate_interval` at one minute (Prometheus scrapes every second in the test).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = read_monitoring_file("grafana/dashboards/orderstore.json");
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("orderstore.json is not JSON: {error}"));
    let datasources = read_monitoring_file("grafana/provisioning/datasources/prometheus.yml");
    let panels = dashboard["panels"]
        .as_array()
        .unwrap_or_else(|| panic!("orderstore.json has no panels"));
    let mut queries = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let uid = target["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                !uid.is_empty() && datasources.contains(&format!("uid: {uid}\n")),
                "panel {title:?} reads data source {uid:?}, which is not provisioned"
            );
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a query of panel {title:?} has no expr"))
                .replace("$__rate_interval", "1m");
            assert!(
                !expr.contains('$'),
                "panel {title:?} uses a Grafana variable the test does not know: {expr}"
            );
            queries.push((title.clone(), expr));
        }
    }
    queries
}

/// `text` percent-encoded for a URL's query string.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A Prometheus started by the test, on a port of its own; killed when dropped.
struct TestPrometheus {
    port: u16,
    log: LogFile,
    _process: KillOnDrop,
}

impl TestPrometheus {
    /// Starts Prometheus the way compose does, through `entrypoint.sh` with `tokens` as
    /// HTTP_AUTH_TOKENS, with compose's configuration pointed at orderstore on
    /// `orderstore_port`, scraping every second.
    async fn start(orderstore_port: u16, tokens: &str) -> TestPrometheus {
        let prometheus = prometheus_tool("prometheus");
        let directory = temporary_directory("prometheus");
        let token_file = directory.join("token");
        let config = prometheus_config_in(
            &directory,
            &token_file,
            Some(&format!("127.0.0.1:{orderstore_port}")),
        );
        let port = free_port();
        let log = LogFile::new("prometheus");
        let child = Command::new("sh")
            .arg(prometheus_dir().join("entrypoint.sh"))
            .arg(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                directory.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .env("HTTP_AUTH_TOKENS", tokens)
            .env("ORDERSTORE_TOKEN_FILE", &token_file)
            .stdin(Stdio::null())
            .stdout(log.stdio())
            .stderr(log.stdio())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start prometheus: {error}"));
        let started = TestPrometheus {
            port,
            log,
            _process: KillOnDrop(child),
        };
        wait_for(
            "Prometheus to be ready",
            Duration::from_secs(30),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                    && http(port, "GET", "/-/ready").await.status == 200
            },
        )
        .await;
        started
    }

    /// The answer of Prometheus's HTTP API at `path`, its `data` member.
    async fn api(&self, path: &str) -> Value {
        let answer = http(self.port, "GET", path).await;
        let body = answer.json();
        assert!(
            answer.status == 200 && body["status"] == "success",
            "Prometheus answered {path} with {}: {body}\nits log:\n{}",
            answer.status,
            self.log.text()
        );
        body["data"].clone()
    }

    /// The series an instant query returns, each as its labels and value.
    async fn query(&self, expr: &str) -> Vec<(Value, String)> {
        let data = self
            .api(&format!("/api/v1/query?query={}", percent_encoded(expr)))
            .await;
        assert_eq!(data["resultType"], "vector", "{expr} returned {data}");
        data["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|series| {
                let value = series["value"][1].as_str().unwrap_or_default().to_owned();
                (series["metric"].clone(), value)
            })
            .collect()
    }

    /// The one value of a query that returns one series, if it does.
    async fn scalar(&self, expr: &str) -> Option<f64> {
        match self.query(expr).await.as_slice() {
            [(_, value)] => value.parse().ok(),
            _ => None,
        }
    }

    /// Waits until Prometheus has scraped the value `expected` for `expr`.
    async fn wait_for_value(&self, expr: &str, expected: f64) {
        wait_for(
            &format!("Prometheus to scrape {expr} == {expected}"),
            Duration::from_secs(30),
            || async { self.scalar(expr).await == Some(expected) },
        )
        .await;
    }
}

/// The hostile records of one wave: one of every invalid kind, then a resend of `duplicate`.
fn hostile_records(duplicate: &[u8]) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    let mut records: Vec<Vec<u8>> = INVALID_KINDS
        .iter()
        .map(|kind| invalid_record_of_kind(kind, &mut rng, now))
        .collect();
    records.push(duplicate.to_vec());
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_prometheus_that_scraped_orderstore() {
    // Fail on a missing tool before anything starts.
    prometheus_tool("prometheus");
    let queries = dashboard_queries();
    let bed = TestBed::new(3).await;

    // orderstore wants a token, so the scrape works only if entrypoint.sh handed Prometheus
    // the right one: the first of the list, trimmed.
    let token = "monitoring-test-token-0123456789";
    let other_token = "another-token-of-enough-length";
    let authorization = format!("Bearer {token}");
    let port = http_port();
    let mut env = binary_env(&bed.database, &bed.topic, port);
    env.push(("HTTP_AUTH_TOKENS".into(), format!("{token},{other_token}")));
    let _orderstore = start_binary(&env, Stdio::inherit());
    wait_for(
        "orderstore to be ready",
        Duration::from_secs(30),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
                && http(port, "GET", "/health/ready").await.status == 200
        },
    )
    .await;
    let prometheus = TestPrometheus::start(port, &format!(" {token} , {other_token}")).await;
    prometheus
        .wait_for_value(r#"up{job="orderstore"}"#, 1.0)
        .await;

    // Two waves of valid and hostile records, each scraped before the next, so that every
    // rate over the last minute sees the counters move.
    let valid = valid_orders(240);
    let mut n_stored = 0;
    let mut n_rejected = 0;
    for wave in valid.chunks(valid.len() / 2) {
        let mut values: Vec<Option<Vec<u8>>> =
            wave.iter().map(|(_, json)| Some(json.clone())).collect();
        values.extend(hostile_records(&wave[0].1).into_iter().map(Some));
        for (index, partition) in bed.partitions.iter().enumerate() {
            produce(
                partition,
                values
                    .iter()
                    .skip(index)
                    .step_by(bed.partitions.len())
                    .cloned()
                    .collect(),
            )
            .await;
        }
        n_stored += wave.len();
        n_rejected += INVALID_KINDS.len();
        bed.wait_until_caught_up().await;
        for (uid, _) in wave.iter().take(5) {
            let answer = http_with(
                port,
                "GET",
                &format!("/orders/uid/{uid}"),
                &[("Authorization", &authorization)],
            )
            .await;
            assert_eq!(answer.status, 200, "GET /orders/uid/{uid}");
        }
        let refused = http(port, "GET", "/orders/abc").await;
        assert_eq!(refused.status, 401, "GET /orders/abc without the token");
        prometheus
            .wait_for_value("sum(orderstore_orders_stored_total)", n_stored as f64)
            .await;
        prometheus
            .wait_for_value("sum(orderstore_records_rejected_total)", n_rejected as f64)
            .await;
        prometheus
            .wait_for_value("sum(orderstore_consumer_lag_records)", 0.0)
            .await;
    }

    // Every query returns at least one series with a number (not NaN, which a quantile of a
    // histogram that did not move in the window would be).
    let mut failures = Vec::new();
    for (panel, expr) in &queries {
        let series = prometheus.query(expr).await;
        let numbers = series
            .iter()
            .filter(|(_, value)| value.parse::<f64>().is_ok_and(f64::is_finite))
            .count();
        if numbers == 0 {
            failures.push(format!("panel {panel:?}: {expr} returned {series:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "dashboard queries without data:\n{}",
        failures.join("\n")
    );

    // The rates saw what was sent: records stored and rejected per reason moved.
    let reasons = prometheus
        .query("sum by (reason) (increase(orderstore_records_rejected_total[1m])) > 0")
        .await;
    let reasons: BTreeSet<String> = reasons
        .iter()
        .filter_map(|(labels, _)| labels["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reasons.len() >= 2,
        "the rejects by reason must show the hostile records' kinds, show {reasons:?}"
    );

    // The alerting rules evaluate against real data without error, and nothing fires for
    // this healthy run.
    wait_for(
        "Prometheus to evaluate every alerting rule",
        Duration::from_secs(30),
        || async {
            let groups = prometheus.api("/api/v1/rules").await["groups"].clone();
            let rules: Vec<Value> = groups
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            assert_eq!(rules.len(), alert_names().len(), "rules loaded: {groups}");
            for rule in &rules {
                assert_ne!(rule["health"], "err", "rule failed: {rule}");
            }
            rules.iter().all(|rule| rule["health"] == "ok")
        },
    )
    .await;
    let alerts = prometheus.api("/api/v1/alerts").await["alerts"].clone();
    let firing: Vec<&Value> = alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|alert| alert["state"] == "firing")
        .collect();
    assert!(
        firing.is_empty(),
        "alerts fire for a healthy run: {firing:?}"
    );
}
