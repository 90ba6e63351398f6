//! The lease protocol against real PostgreSQL, instance by instance, as the service's lease
//! keeper runs it: heartbeats, the fair share, takeover of expired leases at a new epoch,
//! release, and the end of a transaction a frozen owner left open.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::SinkExt;

use crate::common::*;
use orderstore::fleet::share::{fair_share, round};
use orderstore::store::postgres::leases::{session_name, Lease};
use orderstore::store::postgres::Database;

const PARTITIONS: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// One round of the lease loop for `instance`, as the service will run it.
async fn lease_round(database: &Database, instance: &str, held: &mut Vec<Lease>, ttl: Duration) {
    let live = database
        .heartbeat(instance, ttl)
        .await
        .unwrap_or_else(|error| panic!("heartbeat: {error}"));
    let rank = live.iter().position(|id| id == instance).unwrap_or(0);
    let share = fair_share(PARTITIONS.len(), live.len(), rank);
    *held = database
        .renew_leases(instance, held, ttl)
        .await
        .unwrap_or_else(|error| panic!("renew: {error}"));
    let owned: Vec<i32> = held.iter().map(|lease| lease.partition).collect();
    let plan = round(&owned, share);
    let released: Vec<Lease> = held
        .iter()
        .filter(|lease| plan.release.contains(&lease.partition))
        .copied()
        .collect();
    database
        .release_leases(instance, &released)
        .await
        .unwrap_or_else(|error| panic!("release: {error}"));
    held.retain(|lease| !plan.release.contains(&lease.partition));
    let taken = database
        .acquire_leases(instance, plan.acquire, ttl)
        .await
        .unwrap_or_else(|error| panic!("acquire: {error}"));
    held.extend(taken.iter().map(|taken| taken.lease));
    held.sort();
}

async fn fleet_database() -> Database {
    fleet_database_and_config().await.0
}

async fn fleet_database_and_config() -> (Database, tokio_postgres::Config) {
    let config = create_database(&services().admin_url).await;
    create_tables(&config, "orders").await;
    let database = orderstore_database(&config, "orders");
    database
        .ensure_leases(&PARTITIONS)
        .await
        .unwrap_or_else(|error| panic!("ensure: {error}"));
    (database, config)
}

/// Whether `instance`'s heartbeat and every lease it holds have expired by the database's
/// clock: every lease decision reads `now()` there, so that is the clock a takeover waits on.
async fn expired_by_database_clock(observer: &tokio_postgres::Client, instance: &str) -> bool {
    observer
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM orderstore_instances \
                                WHERE instance_id = $1 AND expires_at > now()) \
                AND NOT EXISTS (SELECT 1 FROM partition_leases \
                                WHERE owner = $1 AND expires_at > now())",
            &[&instance],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .get(0)
}

/// How long, by the database's clock, the transaction in which `instance`'s session holds
/// lease rows has been open; `None` when it has none open. This is the age
/// `end_stale_transactions` compares with the TTL.
async fn lease_transaction_age(
    observer: &tokio_postgres::Client,
    instance: &str,
) -> Option<Duration> {
    let row = observer
        .query_opt(
            "SELECT (extract(epoch FROM now() - activity.xact_start) * 1000)::bigint \
             FROM pg_stat_activity AS activity \
             WHERE activity.application_name = $1 AND activity.datname = current_database() \
               AND activity.xact_start IS NOT NULL \
               AND EXISTS (SELECT 1 FROM pg_locks AS held \
                           WHERE held.pid = activity.pid AND held.locktype = 'relation' \
                             AND held.relation = 'partition_leases'::regclass) \
             LIMIT 1",
            &[&session_name(instance)],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"))?;
    let millis: i64 = row.get(0);
    Some(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
}

/// Waits until `instance`'s transaction holding lease rows has been open for `age` by the
/// database's clock; fails if it ends first.
async fn wait_until_open_for(observer: &tokio_postgres::Client, instance: &str, age: Duration) {
    wait_for(
        &format!("{instance}'s transaction to be open for {age:?}"),
        age + Duration::from_secs(30),
        || async {
            match lease_transaction_age(observer, instance).await {
                Some(open_for) => open_for >= age,
                None => panic!("{instance}'s transaction holding lease rows ended by itself"),
            }
        },
    )
    .await;
}

/// Who owns what, from the table.
async fn owners(database: &Database) -> BTreeMap<i32, Option<String>> {
    database
        .lease_table()
        .await
        .unwrap_or_else(|error| panic!("lease table: {error}"))
        .into_iter()
        .map(|row| (row.partition, row.owner))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_split_eight_partitions_three_three_two() {
    let database = fleet_database().await;
    let ttl = Duration::from_secs(30);
    let names = ["a", "b", "c"];
    let mut held: Vec<Vec<Lease>> = vec![Vec::new(); 3];
    // All three are alive before the first round, as after a simultaneous start.
    for name in names {
        database
            .heartbeat(name, ttl)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    }
    for _ in 0..3 {
        for (index, name) in names.iter().enumerate() {
            lease_round(&database, name, &mut held[index], ttl).await;
        }
    }
    let counts: Vec<usize> = held.iter().map(Vec::len).collect();
    assert_eq!(counts, vec![3, 3, 2]);
    let table = owners(&database).await;
    let mut seen = HashSet::new();
    for (index, name) in names.iter().enumerate() {
        for lease in &held[index] {
            assert_eq!(table[&lease.partition].as_deref(), Some(*name));
            assert!(
                seen.insert(lease.partition),
                "partition {} owned twice",
                lease.partition
            );
        }
    }
    assert_eq!(seen.len(), PARTITIONS.len(), "every partition is owned");
    // Further rounds with the same instances move nothing.
    let before = held.clone();
    for (index, name) in names.iter().enumerate() {
        lease_round(&database, name, &mut held[index], ttl).await;
    }
    assert_eq!(held, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_moves_at_a_new_epoch_and_its_old_owner_is_fenced() {
    let (database, config) = fleet_database_and_config().await;
    let observer = connect_config(&config).await;
    let ttl = Duration::from_millis(800);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    database
        .heartbeat("b", ttl)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    lease_round(&database, "a", &mut a, ttl).await;
    lease_round(&database, "b", &mut b, ttl).await;
    assert_eq!((a.len(), b.len()), (4, 4));
    // b freezes: no heartbeat, no renewal, until its TTL has run out on the database's clock.
    wait_for(
        "b's heartbeat and leases to expire",
        ttl + Duration::from_secs(30),
        || expired_by_database_clock(&observer, "b"),
    )
    .await;
    lease_round(&database, "a", &mut a, ttl).await;
    assert_eq!(a.len(), 8, "a took b's expired leases");
    for lease in b.iter() {
        let taken = a
            .iter()
            .find(|held| held.partition == lease.partition)
            .unwrap_or_else(|| panic!("partition {} was not taken", lease.partition));
        assert_eq!(
            taken.epoch,
            lease.epoch + 1,
            "taking a lease increments its epoch"
        );
    }
    // b wakes: its renewal finds nothing, and its release of what it no longer owns is a no-op.
    let renewed = database
        .renew_leases("b", &b, ttl)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(renewed.is_empty(), "a fenced instance renewed {renewed:?}");
    database
        .release_leases("b", &b)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(owners(&database)
        .await
        .values()
        .all(|owner| owner.as_deref() == Some("a")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_gets_half_as_the_first_releases_its_surplus() {
    let database = fleet_database().await;
    let ttl = Duration::from_secs(30);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    lease_round(&database, "first", &mut first, ttl).await;
    assert_eq!(first.len(), 8, "alone, an instance owns every partition");
    lease_round(&database, "second", &mut second, ttl).await;
    assert!(
        second.is_empty(),
        "nothing is free until the first releases"
    );
    lease_round(&database, "first", &mut first, ttl).await;
    assert_eq!(
        first.iter().map(|l| l.partition).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    lease_round(&database, "second", &mut second, ttl).await;
    assert_eq!(
        second.iter().map(|l| l.partition).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert!(
        second.iter().all(|lease| lease.epoch == 2),
        "taken once by each: {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_taking_leases_at_once_never_share_one() {
    let database = fleet_database().await;
    let ttl = Duration::from_secs(30);
    let (left, right) = tokio::join!(
        database.acquire_leases("left", 8, ttl),
        database.acquire_leases("right", 8, ttl),
    );
    let left = left.unwrap_or_else(|error| panic!("{error}"));
    let right = right.unwrap_or_else(|error| panic!("{error}"));
    let mut all: Vec<i32> = left
        .iter()
        .chain(&right)
        .map(|taken| taken.lease.partition)
        .collect();
    all.sort_unstable();
    assert_eq!(all, PARTITIONS.to_vec(), "left {left:?}, right {right:?}");
    assert!(left.iter().chain(&right).all(|taken| !taken.from_expired));
}

/// A frozen instance stopped halfway through sending a batch's COPY keeps its transaction
/// open, and with it the `FOR SHARE` locks on its lease rows: every taker skips them, and
/// neither `statement_timeout` nor `idle_in_transaction_session_timeout` ends a COPY that
/// waits for data. The taker ends it once the owner's leases expired, then takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_mid_copy_by_a_frozen_owner_does_not_hold_the_takeover() {
    let (database, config) = fleet_database_and_config().await;
    let ttl = Duration::from_millis(800);
    let taken = database
        .acquire_leases("zombie", 8, ttl)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(taken.len(), 8);
    let (partitions, epochs): (Vec<i32>, Vec<i64>) = taken
        .iter()
        .map(|taken| (taken.lease.partition, taken.lease.epoch))
        .unzip();

    // The zombie's batch transaction, as a batch writer opens it: the session timeouts, the
    // lease rows locked FOR SHARE, then a COPY of which only half a row ever arrives.
    let mut zombie_config = config.clone();
    zombie_config.application_name(session_name("zombie"));
    let mut zombie = connect_config(&zombie_config).await;
    let transaction = zombie
        .transaction()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    transaction
        .batch_execute(
            "SET LOCAL lock_timeout = 800; SET LOCAL statement_timeout = 800; \
             SET LOCAL idle_in_transaction_session_timeout = 800;",
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let locked = transaction
        .query(
            "SELECT kafka_partition FROM partition_leases \
             WHERE kafka_topic = 'orders' AND kafka_partition = ANY($1) AND epoch = ANY($2) \
             AND owner = 'zombie' FOR SHARE",
            &[&partitions, &epochs],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(locked.len(), 8);
    let sink = transaction
        .copy_in::<_, bytes::Bytes>(
            "COPY orders (order_uid, date_created, body, body_text, kafka_topic, \
             kafka_partition, kafka_offset) FROM STDIN",
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"zombie-1\t2026-12-01 10:00:00+00\t{",
    ))
    .await
    .unwrap_or_else(|error| panic!("{error}"));

    // Past its lease and past every timeout it set (the TTL each). This wait is time passing
    // on purpose: the claim is that no timeout ends the COPY, so every timeout must have had
    // its time. It is counted on the database's clock, the one the timeouts and
    // `end_stale_transactions` read, and fails at once if the transaction ends. The COPY
    // still holds the lease rows.
    let observer = connect_config(&config).await;
    wait_until_open_for(&observer, "zombie", 3 * ttl).await;
    let skipped = database
        .acquire_leases("taker", 8, ttl)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        skipped.is_empty(),
        "the open transaction's locks did not hold the takeover: {skipped:?}"
    );

    // What the lease keeper does before taking leases: end that transaction, then take.
    let started = Instant::now();
    let ended = database
        .end_stale_transactions("taker", ttl)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].owner, "zombie");
    assert!(ended[0].ended);
    let mut taken = Vec::new();
    while taken.len() < 8 && started.elapsed() < Duration::from_secs(5) {
        taken.extend(
            database
                .acquire_leases("taker", 8 - taken.len(), ttl)
                .await
                .unwrap_or_else(|error| panic!("{error}")),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(taken.len(), 8, "the taker took {taken:?}");
    assert!(taken.iter().all(|taken| taken.from_expired));
    assert!(
        taken
            .iter()
            .all(|taken| epochs.contains(&(taken.lease.epoch - 1))),
        "every lease moved at a new epoch: {taken:?}"
    );
    // The zombie's session is gone: nothing it sends now is stored.
    assert!(
        sink.finish().await.is_err(),
        "the zombie's COPY went through"
    );

    // A live owner's transaction is never ended, however long it has been open: its leases
    // have not expired.
    let held: Vec<Lease> = taken.iter().map(|taken| taken.lease).collect();
    let renewed = database
        .renew_leases("taker", &held, Duration::from_secs(60))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(renewed.len(), 8);
    let mut live_config = config.clone();
    live_config.application_name(session_name("taker"));
    let mut live = connect_config(&live_config).await;
    let transaction = live
        .transaction()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    transaction
        .query(
            "SELECT 1 FROM partition_leases WHERE owner = 'taker' FOR SHARE",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // Time passing on purpose again: open for longer than the TTL by the database's clock,
    // so its age alone would have it ended; only its unexpired leases keep it.
    wait_until_open_for(&observer, "taker", 2 * ttl).await;
    let ended = database
        .end_stale_transactions("newcomer", ttl)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        ended.is_empty(),
        "a live owner's transaction was ended: {ended:?}"
    );
    transaction
        .commit()
        .await
        .unwrap_or_else(|error| panic!("the live owner's transaction was ended: {error}"));
}
