//! Several instances on one database and topic share the partitions through leases in
//! PostgreSQL: three split eight partitions 3/3/2 and each answers any order; one killed with
//! SIGKILL has its partitions taken over within `LEASE_TTL` + 2 s; one frozen (SIGSTOP) past
//! its lease is fenced, changes nothing when it wakes, and rejoins; a newcomer gets its half;
//! SIGTERM hands partitions over at once, and a rolling restart leaves no partition still for
//! more than 2 s; one frozen in the middle of a batch transaction holds up no takeover; memory
//! follows the leases. Through all of it every order is stored exactly once and no stored
//! offset ever moves backwards.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

const LEASE_TTL: Duration = Duration::from_secs(2);

/// An instance of the binary, with its id and HTTP port.
struct Instance {
    id: String,
    port: u16,
    process: Option<KillOnDrop>,
    log: LogFile,
}

impl Instance {
    fn start(bed: &TestBed, id: &str) -> Instance {
        Instance::start_with(bed, id, &[("MEMORY_RESTORE", "false")])
    }

    fn start_with(bed: &TestBed, id: &str, settings: &[(&str, &str)]) -> Instance {
        let port = http_port();
        let mut env = binary_env(&bed.database, &bed.topic, port);
        env.extend([
            ("INSTANCE_ID".to_string(), id.to_string()),
            ("LEASE_TTL".to_string(), "2s".to_string()),
        ]);
        env.extend(
            settings
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        env.retain(|(name, _)| name != "LOG_LEVEL");
        env.push(("LOG_LEVEL".to_string(), "info,rskafka=error".to_string()));
        let log = LogFile::new(&format!("fleet-{id}"));
        Instance {
            id: id.to_string(),
            port,
            process: Some(start_binary(&env, log.stdio())),
            log,
        }
    }

    /// SIGTERM, and an exit status of 0.
    fn stop(mut self) {
        if let Some(process) = self.process.take() {
            process.terminate();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .process
            .as_ref()
            .map(|process| process.0.id())
            .unwrap_or(0);
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap_or_else(|error| panic!("cannot signal {}: {error}", self.id));
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Each partition's owner, from the lease table (empty until an instance made it).
async fn owners(db: &tokio_postgres::Client, topic: &str) -> BTreeMap<i32, Option<String>> {
    db.query(
        "SELECT kafka_partition, owner FROM partition_leases WHERE kafka_topic = $1 \
         AND (owner IS NULL OR expires_at > now())",
        &[&topic],
    )
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// How many partitions each owner holds, sorted by count.
async fn split(db: &tokio_postgres::Client, topic: &str) -> Vec<usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for owner in owners(db, topic).await.into_values().flatten() {
        *counts.entry(owner).or_default() += 1;
    }
    let mut counts: Vec<usize> = counts.into_values().collect();
    counts.sort_unstable();
    counts
}

/// Three instances named `ids`, once they have split the eight partitions 3/3/2.
async fn three_instances(bed: &TestBed, ids: [&str; 3]) -> Vec<Instance> {
    let instances: Vec<Instance> = ids.iter().map(|id| Instance::start(bed, id)).collect();
    wait_for("a 3/3/2 split", Duration::from_secs(60), || async {
        split(&bed.db, &bed.topic).await == vec![2, 3, 3]
    })
    .await;
    instances
}

/// Whether all eight partitions are owned, none of them by `id`.
async fn all_owned_without(db: &tokio_postgres::Client, topic: &str, id: &str) -> bool {
    let owners = owners(db, topic).await;
    owners.len() == 8
        && owners
            .values()
            .all(|owner| owner.as_deref().is_some_and(|owner| owner != id))
}

/// A steady producer: 40 orders every 50 ms, round-robin, until stopped; returns every uid.
struct SteadyProducer {
    running: Arc<AtomicBool>,
    uids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SteadyProducer {
    fn start(bed: &TestBed) -> SteadyProducer {
        let running = Arc::new(AtomicBool::new(true));
        let uids = Arc::new(Mutex::new(Vec::new()));
        let partitions = bed.partitions.clone();
        let (flag, sent) = (Arc::clone(&running), Arc::clone(&uids));
        let task = tokio::spawn(async move {
            while flag.load(Ordering::Relaxed) {
                let orders = valid_orders(40);
                produce_spread(&partitions, &orders).await;
                sent.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(orders.into_iter().map(|(uid, _)| uid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        SteadyProducer {
            running,
            uids,
            task,
        }
    }

    async fn stop(self) -> Vec<String> {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        let uids = self
            .uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        uids.clone()
    }
}

/// Watches the stored offsets: fails if any ever moves backwards.
async fn offsets_never_move_back(
    db: &tokio_postgres::Client,
    topic: &str,
    seen: &Mutex<HashMap<i32, i64>>,
) {
    let offsets = stored_offsets(db, topic).await;
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (partition, offset) in offsets {
        let previous = seen.insert(partition, offset).unwrap_or(0);
        assert!(
            offset >= previous,
            "partition {partition}'s stored offset moved back from {previous} to {offset}"
        );
    }
}

/// Every produced order is stored exactly once, once ingestion has caught up.
async fn every_order_once(bed: &TestBed, produced: &[String]) {
    wait_until_caught_up(
        &bed.db,
        &bed.topic,
        &bed.partitions,
        Duration::from_secs(120),
    )
    .await;
    let row = bed
        .db
        .query_one(
            "SELECT count(*), count(DISTINCT order_uid) FROM orders",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, distinct);
    assert_eq!(
        rows,
        produced.len() as i64,
        "every produced order is stored"
    );
}

/// Waits (for `what`, at most `limit`) until `id` owns all eight partitions, watching that no
/// stored offset moves back meanwhile.
async fn all_taken_by(
    bed: &TestBed,
    seen: &Mutex<HashMap<i32, i64>>,
    id: &str,
    what: &str,
    limit: Duration,
) {
    wait_for(what, limit, || async {
        offsets_never_move_back(&bed.db, &bed.topic, seen).await;
        let owners = owners(&bed.db, &bed.topic).await;
        owners.len() == 8 && owners.values().all(|owner| owner.as_deref() == Some(id))
    })
    .await;
}

/// Waits (for `what`, at most `limit`) until every partition's stored offset has moved past
/// `before`, watching that no stored offset moves back meanwhile: each partition is being
/// stored again, by whoever owns it now.
async fn every_partition_stored_past(
    bed: &TestBed,
    seen: &Mutex<HashMap<i32, i64>>,
    before: &HashMap<i32, i64>,
    what: &str,
    limit: Duration,
) {
    wait_for(what, limit, || async {
        offsets_never_move_back(&bed.db, &bed.topic, seen).await;
        let now = stored_offsets(&bed.db, &bed.topic).await;
        (0..8).all(|partition| now.get(&partition) > before.get(&partition))
    })
    .await;
}

/// Waits until `instance`'s log holds `line` (colours aside), watching that no stored offset
/// moves back meanwhile; fails with the log after `limit`.
async fn wait_for_log_line(
    bed: &TestBed,
    seen: &Mutex<HashMap<i32, i64>>,
    instance: &Instance,
    line: &str,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        offsets_never_move_back(&bed.db, &bed.topic, seen).await;
        let log = without_colours(&instance.log.text());
        if log.contains(line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not log {line} within {limit:?}:\n{log}",
            instance.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a frozen instance of two woke up: the 4/4 split is back, and once the producer
/// stops, every order is stored once and no stored offset ever moved back.
async fn rejoined_with_every_order_once(
    bed: &TestBed,
    producer: SteadyProducer,
    seen: &Mutex<HashMap<i32, i64>>,
) {
    wait_for(
        "the woken instance rejoining",
        Duration::from_secs(30),
        || async {
            offsets_never_move_back(&bed.db, &bed.topic, seen).await;
            split(&bed.db, &bed.topic).await == vec![4, 4]
        },
    )
    .await;
    let produced = producer.stop().await;
    every_order_once(bed, &produced).await;
    offsets_never_move_back(&bed.db, &bed.topic, seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_split_answer_and_survive_a_kill() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let mut instances = three_instances(&bed, ["a", "b", "c"]).await;
    // Any instance answers any order: its own from memory, the others' from PostgreSQL.
    wait_for("stored orders", Duration::from_secs(30), || async {
        count_if_exists(&bed.db, "SELECT count(*) FROM orders").await > 100
    })
    .await;
    let sample: Vec<String> = bed
        .db
        .query(
            "SELECT order_uid FROM orders ORDER BY random() LIMIT 5",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    for instance in &instances {
        for uid in &sample {
            let answer = http(instance.port, "GET", &format!("/orders/uid/{uid}")).await;
            assert_eq!(answer.status, 200, "{} on {uid}", instance.id);
        }
        let ready = http(instance.port, "GET", "/health/ready").await;
        assert_eq!(ready.status, 200, "{}", instance.id);
        assert_eq!(ready.json()["instance"], instance.id.as_str());
        let owned = ready.json()["partitions"].as_array().map(Vec::len);
        assert!(matches!(owned, Some(2 | 3)), "{}: {owned:?}", instance.id);
        let expected = [
            format!("orderstore_instance_info{{instance=\"{}\"}} 1", instance.id),
            format!("orderstore_partitions_owned {}", owned.unwrap_or(0)),
            "orderstore_partition_stalled_seconds{partition=".to_string(),
            "orderstore_lease_changes_total{cause=\"taken\"}".to_string(),
        ];
        // The gauges are set every second.
        wait_for(
            &format!("{}'s fleet metrics", instance.id),
            Duration::from_secs(10),
            || async {
                let metrics = http(instance.port, "GET", "/metrics").await;
                let text = String::from_utf8_lossy(&metrics.body).to_string();
                expected.iter().all(|line| text.contains(line))
            },
        )
        .await;
    }

    let seen = Mutex::new(HashMap::new());
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    let killed = instances.remove(2);
    killed.signal("-KILL");
    let started = Instant::now();
    wait_for(
        "the killed instance's partitions to be taken over",
        LEASE_TTL + Duration::from_secs(2),
        || all_owned_without(&bed.db, &bed.topic, "c"),
    )
    .await;
    let takeover = started.elapsed();
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    assert_eq!(
        split(&bed.db, &bed.topic).await,
        vec![4, 4],
        "taken over in {takeover:?}"
    );
    drop(killed);

    // The survivors go on under the stream: every partition, the killed instance's among
    // them, stores new orders under its new owner before the producer stops.
    let at_takeover = stored_offsets(&bed.db, &bed.topic).await;
    every_partition_stored_past(
        &bed,
        &seen,
        &at_takeover,
        "every partition storing again after the takeover",
        Duration::from_secs(10),
    )
    .await;
    let produced = producer.stop().await;
    every_order_once(&bed, &produced).await;
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    for instance in instances {
        instance.stop();
    }
    // SIGTERM released the leases at once.
    assert!(owners(&bed.db, &bed.topic)
        .await
        .values()
        .all(Option::is_none));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_is_fenced_then_rejoins_and_a_newcomer_gets_its_half() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let first = Instance::start(&bed, "first");
    wait_for(
        "one instance owning all",
        Duration::from_secs(60),
        || async { split(&bed.db, &bed.topic).await == vec![8] },
    )
    .await;
    let second = Instance::start(&bed, "second");
    wait_for(
        "a newcomer getting half",
        Duration::from_secs(30),
        || async { split(&bed.db, &bed.topic).await == vec![4, 4] },
    )
    .await;

    let seen = Mutex::new(HashMap::new());
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    second.signal("-STOP");
    all_taken_by(
        &bed,
        &seen,
        "first",
        "the frozen instance's partitions taken",
        LEASE_TTL + Duration::from_secs(4),
    )
    .await;
    // Frozen past its lease while the stream goes on: the new owner stores every partition
    // past where it stood at the takeover, so what the frozen instance still holds (its
    // leases, its records in flight) is stale when it wakes up.
    let at_takeover = stored_offsets(&bed.db, &bed.topic).await;
    every_partition_stored_past(
        &bed,
        &seen,
        &at_takeover,
        "every partition stored past the takeover by the new owner",
        Duration::from_secs(10),
    )
    .await;
    second.signal("-CONT");
    // The woken instance notices it lost its leases (its renewal or its batch's lease check
    // finds another epoch) and changes nothing meanwhile.
    wait_for_log_line(
        &bed,
        &seen,
        &second,
        "cause=\"fenced\"",
        Duration::from_secs(30),
    )
    .await;
    rejoined_with_every_order_once(&bed, producer, &seen).await;
    for instance in [first, second] {
        instance.stop();
    }
}

/// The database's clock, which `orders.stored_at` is read from.
async fn database_now(db: &tokio_postgres::Client) -> chrono::DateTime<chrono::Utc> {
    db.query_one("SELECT now()", &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .get(0)
}

/// For each partition, the longest time between two orders stored from it in `[from, to]`:
/// how long the partition stood still, as the database saw it.
async fn longest_still(
    db: &tokio_postgres::Client,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> BTreeMap<i32, f64> {
    db.query(
        "SELECT kafka_partition, extract(epoch FROM max(gap))::float8 FROM ( \
             SELECT kafka_partition, stored_at - lag(stored_at) \
                 OVER (PARTITION BY kafka_partition ORDER BY stored_at) AS gap \
             FROM orders WHERE stored_at BETWEEN $1 AND $2) AS gaps \
         GROUP BY kafka_partition",
        &[&from, &to],
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"))
    .into_iter()
    .map(|row| (row.get(0), row.get::<_, Option<f64>>(1).unwrap_or(0.0)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_stores_every_order_once() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let mut instances = three_instances(&bed, ["r1", "r2", "r3"]).await;
    let seen = Mutex::new(HashMap::new());
    let restart_began = database_now(&bed.db).await;
    for instance in instances.iter_mut() {
        let id = instance.id.clone();
        if let Some(process) = instance.process.take() {
            process.terminate();
        }
        // SIGTERM released its leases: the others take them at their next round, well
        // before the leases would have expired.
        wait_for(
            &format!("{id}'s partitions taken over after SIGTERM"),
            LEASE_TTL,
            || async {
                offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
                all_owned_without(&bed.db, &bed.topic, &id).await
            },
        )
        .await;
        *instance = Instance::start(&bed, &id);
        wait_for(
            "the restarted instance's share",
            Duration::from_secs(30),
            || async {
                offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
                split(&bed.db, &bed.topic).await == vec![2, 3, 3]
            },
        )
        .await;
    }
    // Under a steady stream, no partition stood still for more than 2 s.
    let restart_ended = database_now(&bed.db).await;
    let produced = producer.stop().await;
    every_order_once(&bed, &produced).await;
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;
    let still = longest_still(&bed.db, restart_began, restart_ended).await;
    assert_eq!(still.len(), 8, "{still:?}");
    assert!(
        still.values().all(|seconds| *seconds <= 2.0),
        "a partition stood still for more than 2 s during the rolling restart: {still:?}"
    );
    for instance in instances {
        instance.stop();
    }
}

/// SIGSTOPs `instance` until it is frozen with a batch transaction open (its session holds
/// lease rows and has a transaction running), and returns that session's state
/// (`active`: in the middle of a statement such as the COPY; `idle in transaction`: between
/// two) and when it was frozen.
async fn freeze_mid_transaction(
    db: &tokio_postgres::Client,
    instance: &Instance,
) -> (String, Instant) {
    let name = orderstore::store::postgres::leases::session_name(&instance.id);
    let open_state = || async {
        db.query_opt(
            "SELECT activity.state FROM pg_stat_activity AS activity \
             WHERE activity.application_name = $1 AND activity.xact_start IS NOT NULL \
             AND EXISTS (SELECT 1 FROM pg_locks AS held WHERE held.pid = activity.pid \
                         AND held.relation = 'partition_leases'::regclass) LIMIT 1",
            &[&name],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .map(|row| row.get::<_, String>(0))
    };
    for attempt in 0..400 {
        instance.signal("-STOP");
        let frozen_at = Instant::now();
        if open_state().await.is_some() {
            // The server may still be working through what the client sent before it froze
            // (a statement that then ends): the state it settles in is the one to judge by.
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(state) = open_state().await {
                return (state, frozen_at);
            }
        }
        instance.signal("-CONT");
        // A pause that varies from one attempt to the next, so the attempts do not fall in
        // step with the batch writers' rhythm and miss every transaction.
        tokio::time::sleep(Duration::from_millis(7 + (attempt * 13) % 50)).await;
    }
    panic!(
        "{} was never caught with a batch transaction open",
        instance.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_frozen_mid_transaction_holds_no_takeover_up() {
    let bed = TestBed::new(8).await;
    let producer = SteadyProducer::start(&bed);
    let first = Instance::start(&bed, "steady");
    let second = Instance::start(&bed, "frozen");
    wait_for("a 4/4 split", Duration::from_secs(60), || async {
        split(&bed.db, &bed.topic).await == vec![4, 4]
    })
    .await;
    let seen = Mutex::new(HashMap::new());
    offsets_never_move_back(&bed.db, &bed.topic, &seen).await;

    let (state, frozen_at) = freeze_mid_transaction(&bed.db, &second).await;
    all_taken_by(
        &bed,
        &seen,
        "steady",
        &format!("the partitions of an instance frozen mid-transaction ({state}) taken"),
        // Counted from the freeze, not from the end of the state's settling.
        (LEASE_TTL + Duration::from_secs(2)).saturating_sub(frozen_at.elapsed()),
    )
    .await;
    let taken_after = frozen_at.elapsed();
    eprintln!("frozen with its batch transaction {state}; taken after {taken_after:?}");
    // The new owner's writes of the frozen batch's orders wait on nobody: every partition
    // stores again.
    let before = stored_offsets(&bed.db, &bed.topic).await;
    every_partition_stored_past(
        &bed,
        &seen,
        &before,
        "every partition storing again",
        Duration::from_secs(4),
    )
    .await;

    second.signal("-CONT");
    rejoined_with_every_order_once(&bed, producer, &seen).await;
    if state == "active" {
        // Only the taker ends a transaction stopped mid-statement: PostgreSQL's own timeouts
        // do not apply while it waits for the client.
        let steady = without_colours(&first.log.text());
        assert!(
            steady.contains("ended a PostgreSQL transaction left open"),
            "frozen while active, taken after {taken_after:?}, but never ended:\n{steady}"
        );
    }
    for instance in [first, second] {
        instance.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_follows_the_leases() {
    let bed = TestBed::new(8).await;
    let orders = valid_orders(400);
    produce_spread(&bed.partitions, &orders).await;
    // Readiness and orders in memory; (0, None) while the instance is not listening yet.
    let in_memory = |instance: &Instance| {
        let port = instance.port;
        async move {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                return (0, None);
            }
            let ready = http(port, "GET", "/health/ready").await;
            (ready.status, ready.json()["orders_in_memory"].as_i64())
        }
    };
    let stored_in = |partitions: Vec<i32>| {
        let db = &bed.db;
        async move {
            db.query_one(
                "SELECT count(*) FROM orders WHERE kafka_partition = ANY($1)",
                &[&partitions],
            )
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .get::<_, i64>(0)
        }
    };
    let owned_by = |id: &'static str| {
        let (db, topic) = (&bed.db, &bed.topic);
        async move {
            owners(db, topic)
                .await
                .into_iter()
                .filter(|(_, owner)| owner.as_deref() == Some(id))
                .map(|(partition, _)| partition)
                .collect::<Vec<i32>>()
        }
    };

    let first = Instance::start_with(&bed, "first", &[]);
    wait_for(
        "the first instance ready",
        Duration::from_secs(60),
        || async { in_memory(&first).await.0 == 200 },
    )
    .await;
    bed.wait_until_caught_up().await;
    first.stop();
    // Restarted alone, it owns every partition and is ready once all 400 are in memory.
    let first = Instance::start_with(&bed, "first", &[]);
    wait_for(
        "the first instance ready",
        Duration::from_secs(60),
        || async { in_memory(&first).await == (200, Some(400)) },
    )
    .await;

    // A second takes half: each holds exactly the orders of the partitions it owns, the
    // first having evicted what it gave up and the second loaded what it took.
    let second = Instance::start_with(&bed, "second", &[]);
    wait_for("a 4/4 split", Duration::from_secs(60), || async {
        split(&bed.db, &bed.topic).await == vec![4, 4]
    })
    .await;
    for (instance, id) in [(&first, "first"), (&second, "second")] {
        let expected = stored_in(owned_by(id).await).await;
        assert!(expected > 0 && expected < 400);
        wait_for(
            &format!("{id} holding the {expected} orders of its partitions"),
            Duration::from_secs(20),
            || async { in_memory(instance).await == (200, Some(expected)) },
        )
        .await;
    }

    // The first stops: the second takes everything, and loads it.
    first.stop();
    wait_for(
        "the second holding all 400",
        Duration::from_secs(20),
        || async { in_memory(&second).await == (200, Some(400)) },
    )
    .await;
    second.stop();
}
