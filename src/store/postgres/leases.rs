//! Partition leases and instance heartbeats: how several orderstore instances on one database
//! and topic share the topic's partitions, with PostgreSQL as the coordinator. Every time is
//! the database's `now()`, so instances' clocks never need to agree.
//!
//! A lease row per partition holds its owner (or NULL), an epoch and an expiry. Taking a lease
//! (free, released, or expired) increments its epoch; renewing and releasing require the
//! epoch the owner took, so an instance that lost a lease cannot renew or release what is now
//! somebody else's. At most one instance holds a partition's lease for a given epoch.

use std::time::Duration;

use super::{Database, DbError};

/// A held lease: the partition and the epoch it was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lease {
    /// The partition.
    pub partition: i32,
    /// The epoch the lease was taken at.
    pub epoch: i64,
}

/// A lease just taken, and whether somebody else held it until it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The lease.
    pub lease: Lease,
    /// Whether another instance still owned it, its lease expired (a crash or a freeze).
    pub from_expired: bool,
}

/// A partition's lease as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The partition.
    pub partition: i32,
    /// The owner, if any.
    pub owner: Option<String>,
    /// The epoch.
    pub epoch: i64,
    /// Whether the lease is past its expiry.
    pub expired: bool,
}

/// The `application_name` of `instance`'s PostgreSQL sessions, as `pg_stat_activity` shows
/// it (PostgreSQL keeps 63 bytes; an `INSTANCE_ID` is ASCII). It names the instance for
/// operators, and tells a taker which sessions belong to the owner whose lease expired.
pub fn session_name(instance: &str) -> String {
    let mut name = format!("orderstore {instance}");
    name.truncate(63);
    name
}

/// A session of an instance whose leases expired, ended by [`Database::end_stale_transactions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// The instance that owned the expired leases.
    pub owner: String,
    /// The server process of its session.
    pub pid: i32,
    /// Whether PostgreSQL ended it (false: it had ended meanwhile).
    pub ended: bool,
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn split(leases: &[Lease]) -> (Vec<i32>, Vec<i64>) {
    leases
        .iter()
        .map(|lease| (lease.partition, lease.epoch))
        .unzip()
}

/// What guards a batch's transaction: the instance and the leases its records were read
/// under, and the TTL that bounds the transaction's waits.
#[derive(Debug, Clone, Copy)]
pub struct LeaseGuard<'a> {
    /// This instance.
    pub instance: &'a str,
    /// The (partition, epoch) of every record in the batch.
    pub leases: &'a [Lease],
    /// `LEASE_TTL`.
    pub ttl: Duration,
}

/// Inside a batch's transaction: bounds every wait by the TTL (a lock, a statement, and the
/// session idling mid-transaction, so PostgreSQL ends the transaction of a frozen instance
/// and frees what it locked), then checks that the instance still holds every lease of the
/// batch at its epoch and locks those lease rows until the transaction ends, so no takeover
/// slips in between the check and the commit. `DbError::Fenced` names the partitions lost.
pub(super) async fn check_leases(
    transaction: &deadpool_postgres::Transaction<'_>,
    topic: &str,
    guard: &LeaseGuard<'_>,
) -> Result<(), DbError> {
    let ttl_ms = millis(guard.ttl);
    transaction
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = {ttl_ms}; SET LOCAL statement_timeout = {ttl_ms}; \
             SET LOCAL idle_in_transaction_session_timeout = {ttl_ms};"
        ))
        .await?;
    let (partitions, epochs) = split(guard.leases);
    let statement = transaction
        .prepare_cached(
            "SELECT lease.kafka_partition FROM partition_leases AS lease \
             JOIN unnest($2::integer[], $3::bigint[]) AS held (partition, epoch) \
               ON lease.kafka_partition = held.partition AND lease.epoch = held.epoch \
             WHERE lease.kafka_topic = $1 AND lease.owner = $4 \
             FOR SHARE OF lease",
        )
        .await?;
    let held: Vec<i32> = transaction
        .query(&statement, &[&topic, &partitions, &epochs, &guard.instance])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let lost: Vec<i32> = guard
        .leases
        .iter()
        .map(|lease| lease.partition)
        .filter(|partition| !held.contains(partition))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(DbError::Fenced(lost))
    }
}

impl Database {
    /// Records that `instance` lives for `ttl` more, and returns the live instances of this
    /// topic (itself included), sorted.
    pub async fn heartbeat(&self, instance: &str, ttl: Duration) -> Result<Vec<String>, DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO orderstore_instances (kafka_topic, instance_id, expires_at) \
                 VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (kafka_topic, instance_id) DO UPDATE \
                 SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at",
                &[&self.topic, &instance, &millis(ttl)],
            )
            .await?;
        let rows = client
            .query(
                "SELECT instance_id FROM orderstore_instances \
                 WHERE kafka_topic = $1 AND expires_at > now() ORDER BY instance_id",
                &[&self.topic],
            )
            .await?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    /// Removes `instance`'s heartbeat (it is stopping), and those dead for an hour.
    pub async fn leave(&self, instance: &str) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM orderstore_instances WHERE kafka_topic = $1 \
                 AND (instance_id = $2 OR expires_at < now() - interval '1 hour')",
                &[&self.topic, &instance],
            )
            .await?;
        Ok(())
    }

    /// Makes sure every partition has a lease row (free, epoch 0, when new).
    pub async fn ensure_leases(&self, partitions: &[i32]) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO partition_leases (kafka_topic, kafka_partition) \
                 SELECT $1, partition FROM unnest($2::integer[]) AS partition \
                 ON CONFLICT (kafka_topic, kafka_partition) DO NOTHING",
                &[&self.topic, &partitions],
            )
            .await?;
        Ok(())
    }

    /// Extends `held` by `ttl`; returns the leases still held (one missing was taken by
    /// another instance after it expired). A lease that expired but was not taken is renewed:
    /// nobody else has written under it.
    pub async fn renew_leases(
        &self,
        instance: &str,
        held: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<Lease>, DbError> {
        let (partitions, epochs) = split(held);
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "UPDATE partition_leases AS lease \
                 SET expires_at = now() + $5::bigint * interval '1 millisecond' \
                 FROM unnest($3::integer[], $4::bigint[]) AS held (partition, epoch) \
                 WHERE lease.kafka_topic = $1 AND lease.owner = $2 \
                   AND lease.kafka_partition = held.partition AND lease.epoch = held.epoch \
                 RETURNING lease.kafka_partition, lease.epoch",
                &[&self.topic, &instance, &partitions, &epochs, &millis(ttl)],
            )
            .await?;
        let mut renewed: Vec<Lease> = rows
            .into_iter()
            .map(|row| Lease {
                partition: row.get(0),
                epoch: row.get(1),
            })
            .collect();
        renewed.sort();
        Ok(renewed)
    }

    /// Ends the open transactions of instances whose leases expired that still lock lease
    /// rows and began more than `ttl` ago: a frozen instance stopped in the middle of a batch
    /// transaction. Its `FOR SHARE` locks would make every taker skip those leases, and the
    /// row locks of its uncommitted orders would hold up the new owner's writes of the same
    /// orders, for as long as it stays frozen: `idle_in_transaction_session_timeout` ends a
    /// transaction idle between statements, but nothing ends a COPY whose data stopped
    /// coming (`statement_timeout` is not checked while the server waits for COPY data).
    /// A live owner renews its leases long before they expire, and its own timeouts end its
    /// transactions within `ttl`, so only a stuck one is ever ended here.
    pub async fn end_stale_transactions(
        &self,
        instance: &str,
        ttl: Duration,
    ) -> Result<Vec<EndedSession>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT stale.owner, activity.pid, pg_terminate_backend(activity.pid) \
                 FROM (SELECT DISTINCT owner FROM partition_leases \
                       WHERE kafka_topic = $1 AND owner <> $2 AND expires_at <= now()) AS stale \
                 JOIN pg_stat_activity AS activity \
                   ON activity.application_name = left('orderstore ' || stale.owner, 63) \
                 WHERE activity.datname = current_database() \
                   AND activity.pid <> pg_backend_pid() \
                   AND activity.xact_start <= now() - $3::bigint * interval '1 millisecond' \
                   AND EXISTS (SELECT 1 FROM pg_locks AS held \
                               WHERE held.pid = activity.pid AND held.locktype = 'relation' \
                                 AND held.relation = 'partition_leases'::regclass)",
                &[&self.topic, &instance, &millis(ttl)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| EndedSession {
                owner: row.get(0),
                pid: row.get(1),
                ended: row.get(2),
            })
            .collect())
    }

    /// Takes up to `wanted` leases that are free or expired, lowest partitions first, each at
    /// a new epoch. Leases another instance is taking at the same moment are skipped.
    pub async fn acquire_leases(
        &self,
        instance: &str,
        wanted: usize,
        ttl: Duration,
    ) -> Result<Vec<Taken>, DbError> {
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH free AS ( \
                     SELECT kafka_partition, owner IS NOT NULL AS from_expired \
                     FROM partition_leases \
                     WHERE kafka_topic = $1 AND (owner IS NULL OR expires_at <= now()) \
                     ORDER BY kafka_partition LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE partition_leases AS lease \
                 SET owner = $2, epoch = lease.epoch + 1, \
                     expires_at = now() + $4::bigint * interval '1 millisecond' \
                 FROM free \
                 WHERE lease.kafka_topic = $1 AND lease.kafka_partition = free.kafka_partition \
                 RETURNING lease.kafka_partition, lease.epoch, free.from_expired",
                &[
                    &self.topic,
                    &instance,
                    &i64::try_from(wanted).unwrap_or(i64::MAX),
                    &millis(ttl),
                ],
            )
            .await?;
        let mut taken: Vec<Taken> = rows
            .into_iter()
            .map(|row| Taken {
                lease: Lease {
                    partition: row.get(0),
                    epoch: row.get(1),
                },
                from_expired: row.get(2),
            })
            .collect();
        taken.sort_by_key(|taken| taken.lease);
        Ok(taken)
    }

    /// Takes back, at a new epoch, every lease a previous run of `instance` (the same
    /// `INSTANCE_ID`, restarted after a crash) still holds, expired or not, so a restarted
    /// instance resumes at once instead of waiting out its own leases.
    pub async fn reclaim_leases(
        &self,
        instance: &str,
        ttl: Duration,
    ) -> Result<Vec<Lease>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "UPDATE partition_leases SET epoch = epoch + 1, \
                     expires_at = now() + $3::bigint * interval '1 millisecond' \
                 WHERE kafka_topic = $1 AND owner = $2 \
                 RETURNING kafka_partition, epoch",
                &[&self.topic, &instance, &millis(ttl)],
            )
            .await?;
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|row| Lease {
                partition: row.get(0),
                epoch: row.get(1),
            })
            .collect();
        leases.sort();
        Ok(leases)
    }

    /// Gives `leases` up at once, so another instance can take them without waiting for
    /// their expiry. Only leases still held at their epoch are released.
    pub async fn release_leases(&self, instance: &str, leases: &[Lease]) -> Result<(), DbError> {
        let (partitions, epochs) = split(leases);
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE partition_leases AS lease SET owner = NULL, expires_at = now() \
                 FROM unnest($3::integer[], $4::bigint[]) AS held (partition, epoch) \
                 WHERE lease.kafka_topic = $1 AND lease.owner = $2 \
                   AND lease.kafka_partition = held.partition AND lease.epoch = held.epoch",
                &[&self.topic, &instance, &partitions, &epochs],
            )
            .await?;
        Ok(())
    }

    /// Gives up every lease `instance` holds, and its heartbeat (an orderly stop, after the
    /// last offsets are stored).
    pub async fn release_all(&self, instance: &str) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE partition_leases SET owner = NULL, expires_at = now() \
                 WHERE kafka_topic = $1 AND owner = $2",
                &[&self.topic, &instance],
            )
            .await?;
        drop(client);
        self.leave(instance).await
    }

    /// Every lease of the topic, by partition.
    pub async fn lease_table(&self) -> Result<Vec<LeaseRow>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT kafka_partition, owner, epoch, expires_at <= now() \
                 FROM partition_leases WHERE kafka_topic = $1 ORDER BY kafka_partition",
                &[&self.topic],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| LeaseRow {
                partition: row.get(0),
                owner: row.get(1),
                epoch: row.get(2),
                expired: row.get(3),
            })
            .collect())
    }
}
