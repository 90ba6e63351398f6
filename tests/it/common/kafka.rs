//! Kafka for tests: tansu started on a free port, topics, producing records, and waiting until
//! the service has stored offsets up to the high watermarks.

use super::*;

/// Starts tansu with in-memory storage listening on `port`, telling clients to connect to
/// `advertised_port` (a proxy's, in the Kafka outage test).
pub fn start_tansu(port: u16, advertised_port: u16) -> std::process::Child {
    start_tansu_with(
        port,
        &format!("tcp://127.0.0.1:{advertised_port}"),
        "memory://tansu/",
        &[],
        &std::env::temp_dir(),
    )
}

/// The tansu program: `TANSU_BIN`, or `tansu` on PATH or in ~/.cargo/bin.
pub fn tansu_program() -> PathBuf {
    match std::env::var_os("TANSU_BIN") {
        Some(path) => PathBuf::from(path),
        None => find_program("tansu", &[]),
    }
}

/// Starts `tansu broker` on `port` with `storage`, advertising `advertised`, with `extra`
/// arguments, in `dir` (where a `sqlite://` storage file lives), and waits until it listens.
pub fn start_tansu_with(
    port: u16,
    advertised: &str,
    storage: &str,
    extra: &[&str],
    dir: &Path,
) -> std::process::Child {
    let tansu = tansu_program();
    let url = format!("tcp://127.0.0.1:{port}");
    let log_path = std::env::temp_dir()
        .join(unique_name("orderstore-tansu"))
        .with_extension("log");
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    let stderr = log
        .try_clone()
        .unwrap_or_else(|error| panic!("cannot share the tansu log: {error}"));
    let mut child = Command::new(&tansu)
        .args(["broker", "--kafka-listener-url", &url])
        .args(["--kafka-advertised-listener-url", advertised])
        .args(["--storage-engine", storage])
        .args(extra)
        .current_dir(dir)
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
        let exited = child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "tansu did not listen on port {port} within 30 s ({}); {}:\n{}",
            exited.map(|status| status.to_string()).unwrap_or_default(),
            log_path.display(),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
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

/// `n` random valid orders as JSON, with their uids.
pub fn valid_orders(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rng();
    let now = chrono::Utc::now();
    (0..n)
        .map(|_| orderstore::fake_data::random_order_json(&mut rng, now))
        .collect()
}
