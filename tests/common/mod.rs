//! The integration-test harness: real PostgreSQL and a real Kafka-protocol broker (tansu),
//! started here on free ports, or taken from `DATABASE_URL` / `KAFKA_BROKERS` when set.
//!
//! Services are started once per test binary and shared; every test gets its own database and
//! topic. A watchdog process stops the services and deletes their files when the test binary
//! exits, however it exits. A missing service is a failure that says what is missing, never a
//! skip.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use orderstore::config::Settings;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The canonical order of the contract.
pub const CANONICAL: &str = include_str!("../data/canonical-order.json");

/// Services shared by every test of one test binary.
pub struct Services {
    /// A superuser connection string for the shared PostgreSQL server.
    pub admin_url: String,
    /// Kafka bootstrap address.
    pub kafka_brokers: String,
    _cluster: Option<PgCluster>,
    /// The broker process when the harness started it; the watchdog stops it.
    _broker: Option<std::process::Child>,
}

static SERVICES: OnceLock<Services> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The shared services, started on first use.
pub fn services() -> &'static Services {
    SERVICES.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            orderstore::telemetry::init(
                &std::env::var("TEST_LOG").unwrap_or_default(),
                orderstore::config::LogFormat::Text,
            );
        }
        let (admin_url, cluster) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let cluster = PgCluster::start();
                (cluster.admin_url(), Some(cluster))
            }
        };
        let (kafka_brokers, broker) = match std::env::var("KAFKA_BROKERS") {
            Ok(brokers) if !brokers.is_empty() => (brokers, None),
            _ => {
                let port = free_port();
                let child = start_tansu(port, port);
                (format!("127.0.0.1:{port}"), Some(child))
            }
        };
        Services {
            admin_url,
            kafka_brokers,
            _cluster: cluster,
            _broker: broker,
        }
    })
}

/// A unique name for a test's database or topic.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|error| panic!("no free TCP port: {error}"))
}

fn find_program(name: &str, extra_dirs: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let home_cargo = std::env::var("HOME")
        .map(|home| format!("{home}/.cargo/bin"))
        .unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .chain([PathBuf::from(home_cargo)])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in PATH and {extra_dirs:?}); \
                 run scripts/test, which installs what the tests need"
            )
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when the tests run as root (initdb refuses
/// to run as root).
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a process that waits for this test binary to exit, then runs `cleanup` (a shell
/// command), so services never outlive the tests.
fn watchdog(cleanup: &str) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        std::process::id()
    );
    let spawned = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(error) = spawned {
        panic!("cannot start the cleanup watchdog: {error}");
    }
}

/// A throwaway PostgreSQL cluster in a temporary folder.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    pg_ctl: PathBuf,
}

const PG_BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
];

impl PgCluster {
    /// initdb + pg_ctl start on a free port.
    pub fn start() -> PgCluster {
        let initdb = find_program("initdb", PG_BIN_DIRS);
        let pg_ctl = find_program("pg_ctl", PG_BIN_DIRS);
        let dir = std::env::temp_dir().join(unique_name("orderstore-pg"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        if is_root() {
            run(
                {
                    let mut command = Command::new("chown");
                    command.arg("postgres:postgres").arg(&dir);
                    command
                },
                "chown of the PostgreSQL folder",
            );
        }
        let data = dir.join("data");
        let mut init = pg_command(&initdb);
        init.args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data);
        run(init, "initdb");
        let cluster = PgCluster {
            dir: dir.clone(),
            port: free_port(),
            pg_ctl: pg_ctl.clone(),
        };
        watchdog(&format!(
            "{} {} -D {} stop -m immediate; rm -rf {}",
            if is_root() {
                "runuser -u postgres --"
            } else {
                ""
            },
            pg_ctl.display(),
            data.display(),
            dir.display()
        ));
        cluster.start_server();
        cluster
    }

    /// Starts (again) the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let mut start = pg_command(&self.pg_ctl);
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(start, "pg_ctl start");
    }

    /// Stops the server at once, as a crash or an outage would.
    pub fn stop_server(&self) {
        let mut stop = pg_command(&self.pg_ctl);
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop");
    }

    /// A superuser URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// Starts tansu with in-memory storage listening on `port`, telling clients to connect to
/// `advertised_port` (a proxy's, in the Kafka outage test).
pub fn start_tansu(port: u16, advertised_port: u16) -> std::process::Child {
    let tansu = match std::env::var_os("TANSU_BIN") {
        Some(path) => PathBuf::from(path),
        None => find_program("tansu", &[]),
    };
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{advertised_port}");
    let log_path = std::env::temp_dir()
        .join(unique_name("orderstore-tansu"))
        .with_extension("log");
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    let stderr = log
        .try_clone()
        .unwrap_or_else(|error| panic!("cannot share the tansu log: {error}"));
    let child = Command::new(&tansu)
        .args(["broker", "--kafka-listener-url", &url])
        .args(["--kafka-advertised-listener-url", &advertised])
        .args(["--storage-engine", "memory://tansu/"])
        .env_remove("LISTENER_URL")
        .env_remove("ADVERTISED_LISTENER_URL")
        .env_remove("STORAGE_ENGINE")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", tansu.display()));
    watchdog(&format!(
        "kill -9 {}; rm -f {}",
        child.id(),
        log_path.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on port {port} within 30 s; see {}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Creates a fresh database on `admin_url`'s server and returns its connection config.
pub async fn create_database(admin_url: &str) -> tokio_postgres::Config {
    let name = unique_name("orderstore_test");
    let admin = connect(admin_url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
    let mut config: tokio_postgres::Config = admin_url
        .parse()
        .unwrap_or_else(|error| panic!("bad admin URL: {error}"));
    config.dbname(&name);
    config
}

/// A plain connection for the test's own checks.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|error| panic!("bad database URL: {error}"));
    connect_config(&config).await
}

/// A plain connection for the test's own checks.
pub async fn connect_config(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to PostgreSQL: {error}"));
    tokio::spawn(connection);
    client
}

/// Settings for a test instance: the test's database and topic, HTTP on a free port, short
/// intervals. `overrides` set any other variable.
pub fn settings(
    database: &tokio_postgres::Config,
    topic: &str,
    overrides: &[(&str, &str)],
) -> Settings {
    let mut values: HashMap<String, String> = [
        ("KAFKA_BROKERS", services().kafka_brokers.as_str()),
        ("KAFKA_TOPIC", topic),
        ("KAFKA_PARTITIONS", "4"),
        ("KAFKA_FETCH_MAX_WAIT", "100ms"),
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("HTTP_WORKERS", "2"),
        ("HANDLERS", "2"),
        ("DB_POOL_SIZE", "4"),
        ("OFFSET_COMMIT_INTERVAL", "50ms"),
        ("MEMORY_MAX_AGE", "0"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    for (name, value) in overrides {
        values.insert(name.to_string(), value.to_string());
    }
    let mut settings = Settings::from_lookup(|name| values.get(name).cloned())
        .unwrap_or_else(|error| panic!("test settings are invalid: {error}"));
    settings.database_url = database.clone();
    settings
}

/// `Application::build` with a time limit: start-up waits for PostgreSQL forever (by design),
/// and a test must fail, not hang, when it never comes.
pub async fn build_app(
    settings: Settings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<orderstore::app::Application, orderstore::app::StartError> {
    const LIMIT: Duration = Duration::from_secs(120);
    tokio::time::timeout(
        LIMIT,
        orderstore::app::Application::build(settings, shutdown),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("the application did not start within {LIMIT:?}; is PostgreSQL reachable?")
    })
}

/// The application running in this process, started the way every test starts it.
pub struct RunningApp {
    port: u16,
    memory: Arc<orderstore::store::memory::MemoryStore>,
    events: Arc<orderstore::events::Events>,
    offsets: Arc<orderstore::offsets::OffsetTracker>,
    shutdown: tokio_util::sync::CancellationToken,
    running: tokio::task::JoinHandle<Result<(), orderstore::shutdown::ComponentFailure>>,
}

impl RunningApp {
    /// Builds the application (see [`build_app`]) and runs it in a task.
    pub async fn start(settings: Settings) -> RunningApp {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let app = build_app(settings, shutdown.clone())
            .await
            .unwrap_or_else(|error| panic!("the application did not start: {error}"));
        RunningApp {
            port: app.http_port(),
            memory: app.memory(),
            events: app.events(),
            offsets: app.offsets(),
            shutdown,
            running: tokio::spawn(app.run_until_stopped()),
        }
    }

    /// The port HTTP listens on.
    pub fn http_port(&self) -> u16 {
        self.port
    }

    /// Orders in memory.
    pub fn memory(&self) -> Arc<orderstore::store::memory::MemoryStore> {
        Arc::clone(&self.memory)
    }

    /// The pipeline's events and counters.
    pub fn events(&self) -> Arc<orderstore::events::Events> {
        Arc::clone(&self.events)
    }

    /// The offsets in flight and done.
    pub fn offsets(&self) -> Arc<orderstore::offsets::OffsetTracker> {
        Arc::clone(&self.offsets)
    }

    /// Whether the application stopped, which it must not do by itself.
    pub fn is_finished(&self) -> bool {
        self.running.is_finished()
    }

    /// Stops the application as a signal would, and fails unless it stops cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = self.running.await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "the application did not stop cleanly: {stopped:?}"
        );
    }
}

/// Environment variables that start the binary like [`settings`] configures the library.
pub fn binary_env(
    database: &tokio_postgres::Config,
    topic: &str,
    http_port: u16,
) -> Vec<(String, String)> {
    let host = match database.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let url = format!(
        "postgres://{}@{}:{}/{}",
        database.get_user().unwrap_or("postgres"),
        host,
        database.get_ports().first().copied().unwrap_or(5432),
        database.get_dbname().unwrap_or("postgres")
    );
    [
        ("DATABASE_URL", url),
        ("KAFKA_BROKERS", services().kafka_brokers.clone()),
        ("KAFKA_TOPIC", topic.to_string()),
        ("KAFKA_FETCH_MAX_WAIT", "100ms".into()),
        ("HTTP_ADDR", format!("127.0.0.1:{http_port}")),
        ("OFFSET_COMMIT_INTERVAL", "50ms".into()),
        ("MEMORY_MAX_AGE", "0".into()),
        ("LOG_LEVEL", "warn".into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port for a binary's HTTP server.
pub fn http_port() -> u16 {
    free_port()
}

/// A Kafka client on the test broker.
pub async fn kafka_client() -> Client {
    kafka_client_at(&services().kafka_brokers).await
}

/// A Kafka client on `brokers`.
pub async fn kafka_client_at(brokers: &str) -> Client {
    ClientBuilder::new(vec![brokers.to_string()])
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to Kafka at {brokers}: {error}"))
}

/// Creates `topic` with `partitions` partitions and returns a client per partition.
pub async fn create_topic(
    client: &Client,
    topic: &str,
    partitions: i32,
) -> Vec<Arc<PartitionClient>> {
    client
        .controller_client()
        .unwrap_or_else(|error| panic!("no controller: {error}"))
        .create_topic(topic, partitions, 1, 10_000)
        .await
        .unwrap_or_else(|error| panic!("cannot create topic {topic}: {error}"));
    let mut clients = Vec::new();
    for partition in 0..partitions {
        let partition_client = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap_or_else(|error| panic!("cannot open {topic}/{partition}: {error}"));
        clients.push(Arc::new(partition_client));
    }
    clients
}

/// A test's own database and topic on the shared services.
pub struct TestBed {
    /// The test's database.
    pub database: tokio_postgres::Config,
    /// A connection to it, for the test's checks.
    pub db: tokio_postgres::Client,
    /// The test's topic.
    pub topic: String,
    /// A client per partition of the topic.
    pub partitions: Vec<Arc<PartitionClient>>,
}

impl TestBed {
    /// A fresh database and a fresh topic with `n_partitions` partitions.
    pub async fn new(n_partitions: i32) -> TestBed {
        let database = create_database(&services().admin_url).await;
        let db = connect_config(&database).await;
        let topic = unique_name("orders");
        let partitions = create_topic(&kafka_client().await, &topic, n_partitions).await;
        TestBed {
            database,
            db,
            topic,
            partitions,
        }
    }
}

/// Produces the orders round-robin over the partitions: order `i` to partition `i % n`.
pub async fn produce_spread(partitions: &[Arc<PartitionClient>], orders: &[(String, Vec<u8>)]) {
    for (index, partition) in partitions.iter().enumerate() {
        let values = orders
            .iter()
            .skip(index)
            .step_by(partitions.len())
            .map(|(_, json)| Some(json.clone()))
            .collect();
        produce(partition, values).await;
    }
}

/// Produces `values` to `partition`, in batches, and returns their offsets.
pub async fn produce(partition: &PartitionClient, values: Vec<Option<Vec<u8>>>) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(values.len());
    let records: Vec<Record> = values
        .into_iter()
        .map(|value| Record {
            key: None,
            value,
            headers: Default::default(),
            timestamp: rskafka::chrono::Utc::now(),
        })
        .collect();
    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        let batch: Vec<Record> = records.by_ref().take(200).collect();
        let produced = partition
            .produce(batch, Compression::NoCompression)
            .await
            .unwrap_or_else(|error| panic!("produce failed: {error}"));
        offsets.extend(produced);
    }
    offsets
}

/// Each partition's high watermark, read from a fetch response (tansu answers
/// ListOffsets(latest) differently from Kafka).
pub async fn high_watermarks(partitions: &[Arc<PartitionClient>]) -> HashMap<i32, i64> {
    let mut marks = HashMap::new();
    for client in partitions {
        let (_, high_watermark) = client
            .fetch_records(0, 1..2, 0)
            .await
            .unwrap_or_else(|error| panic!("fetch failed: {error}"));
        marks.insert(client.partition(), high_watermark);
    }
    marks
}

/// The offsets orderstore stored for `topic`.
pub async fn stored_offsets(db: &tokio_postgres::Client, topic: &str) -> HashMap<i32, i64> {
    db.query(
        "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE kafka_topic = $1",
        &[&topic],
    )
    .await
    .unwrap_or_else(|error| panic!("cannot read offsets: {error}"))
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// Waits until `condition` holds, polling; fails with `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the stored offsets of `topic` reach the partitions' high watermarks.
pub async fn wait_until_caught_up(
    db: &tokio_postgres::Client,
    topic: &str,
    partitions: &[Arc<PartitionClient>],
    limit: Duration,
) {
    let marks = high_watermarks(partitions).await;
    wait_for(
        "stored offsets to reach the high watermarks",
        limit,
        || async { stored_offsets(db, topic).await == marks },
    )
    .await;
}

/// Counts rows; 0 while the table does not exist yet.
pub async fn count_if_exists(db: &tokio_postgres::Client, sql: &str) -> i64 {
    match db.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(_) => 0,
    }
}

/// Counts rows.
pub async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .get(0)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A plain HTTP/1.1 GET (or other method) on 127.0.0.1:`port`.
pub async fn http(port: u16, method: &str, path: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to port {port}: {error}"));
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|error| panic!("cannot send the request: {error}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .unwrap_or_else(|error| panic!("cannot read the answer: {error}"));
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|value| value == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = raw.windows(2).position(|window| window == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
    body
}

/// `n` random valid orders as JSON, with their uids.
pub fn valid_orders(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    (0..n)
        .map(|_| orderstore::fake_data::random_order_json(&mut rng, now))
        .collect()
}
