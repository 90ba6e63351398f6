//! The application under test: settings for a test instance, the app run in this process,
//! the environment that starts the binary, and a test's own database and topic.

use super::*;

/// What every test instance runs with, in this process ([`settings`]) or as the binary
/// ([`binary_env`]): short intervals, few threads and connections, no age limit on memory.
const TEST_DEFAULTS: &[(&str, &str)] = &[
    ("KAFKA_PARTITIONS", "4"),
    ("KAFKA_FETCH_MAX_WAIT", "100ms"),
    ("HTTP_WORKERS", "2"),
    ("HANDLERS", "2"),
    ("DB_POOL_SIZE", "4"),
    ("OFFSET_COMMIT_INTERVAL", "50ms"),
    ("MEMORY_MAX_AGE", "0"),
];

/// Settings for a test instance: the test's database and topic, HTTP on a free port, and
/// [`TEST_DEFAULTS`]. `overrides` set any other variable.
pub fn settings(
    database: &tokio_postgres::Config,
    topic: &str,
    overrides: &[(&str, &str)],
) -> Settings {
    let mut values: HashMap<String, String> = [
        ("KAFKA_BROKERS", services().kafka_brokers.as_str()),
        ("KAFKA_TOPIC", topic),
        ("HTTP_ADDR", "127.0.0.1:0"),
    ]
    .iter()
    .chain(TEST_DEFAULTS)
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    for (name, value) in overrides {
        values.insert(name.to_string(), value.to_string());
    }
    let mut settings = Settings::from_lookup(|name| values.get(name).cloned())
        .unwrap_or_else(|error| panic!("test settings are invalid: {error}"));
    settings.database.url = database.clone();
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
    state: Arc<orderstore::state::ServiceState>,
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
            state: app.state(),
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

    /// What the instance is doing now: Kafka health, owned and halted partitions, the restore.
    pub fn state(&self) -> Arc<orderstore::state::ServiceState> {
        Arc::clone(&self.state)
    }

    /// The offsets in flight and done.
    pub fn offsets(&self) -> Arc<orderstore::offsets::OffsetTracker> {
        Arc::clone(&self.offsets)
    }

    /// Waits until memory holds what the instance took at start-up (its leases are taken
    /// once Kafka answers, and their orders loaded).
    pub async fn restored(&self) {
        let state = self.state();
        wait_for("memory to be restored", Duration::from_secs(60), || {
            let restored = state.is_restored();
            async move { restored }
        })
        .await;
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

/// Starts the `orderstore` binary with `env`, its log going to `stderr`.
pub fn start_binary(env: &[(String, String)], stderr: Stdio) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .envs(
            env.iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
        .stdin(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start the orderstore binary: {error}"));
    KillOnDrop(child)
}

/// Environment variables that start the binary like [`settings`] configures the library:
/// the same database, topic and [`TEST_DEFAULTS`], HTTP on `http_port`, and logs at WARN.
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
        ("HTTP_ADDR", format!("127.0.0.1:{http_port}")),
        ("LOG_LEVEL", "warn".into()),
    ]
    .into_iter()
    .chain(
        TEST_DEFAULTS
            .iter()
            .map(|(name, value)| (*name, value.to_string())),
    )
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// A free port for a binary's HTTP server.
pub fn http_port() -> u16 {
    free_port()
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

    /// Waits until the stored offsets reach every partition's high watermark.
    pub async fn wait_until_caught_up(&self) {
        wait_until_caught_up(
            &self.db,
            &self.topic,
            &self.partitions,
            Duration::from_secs(60),
        )
        .await;
    }
}

/// `n` random orders produced to a fresh one-partition topic and stored by an app started
/// with `overrides`: the app, a connection to its database, and the orders.
pub async fn app_with_stored_orders(
    n: usize,
    overrides: &[(&str, &str)],
) -> (RunningApp, tokio_postgres::Client, Vec<(String, Vec<u8>)>) {
    let TestBed {
        database,
        db,
        topic,
        partitions,
    } = TestBed::new(1).await;
    let orders = valid_orders(n);
    produce_spread(&partitions, &orders).await;
    let app = RunningApp::start(settings(&database, &topic, overrides)).await;
    wait_for(
        "the orders to be stored",
        Duration::from_secs(60),
        || async { count_if_exists(&db, "SELECT count(*) FROM orders").await == n as i64 },
    )
    .await;
    (app, db, orders)
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

/// Whether the instance on `port` says (in `/status.json`) that its consumer group mirror's
/// last round succeeded for `group` and that the group, as read back from the broker, holds
/// the stored offset of every partition it reads.
pub async fn group_shows_stored_offsets(port: u16, group: &str) -> bool {
    let status = http(port, "GET", "/status.json").await.json();
    let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
    let read_here: Vec<&serde_json::Value> = partitions
        .iter()
        .filter(|partition| partition["high_watermark"].is_i64())
        .collect();
    status["consumer_group"]["group"] == group
        && status["consumer_group"]["ok"] == true
        && !read_here.is_empty()
        && read_here.iter().all(|partition| {
            partition["group_committed_offset"] == partition["stored_offset"]
                && partition["group_lag"] == 0
        })
}
