//! What the status page reads from PostgreSQL, in one round trip per refresh: every
//! partition's lease and stored offset (so every instance shows the whole fleet, not only its
//! own partitions), the live instances, the rejects of the last hour by kind with the latest
//! ten, the rejects still waiting for the dead-letter topic, and the latest orders stored.

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// Most rejects the status page lists.
pub const LATEST_REJECTS: i64 = 10;

/// One partition's row in `partition_leases`, with its stored offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    /// The partition.
    pub partition: i32,
    /// Who holds its lease now; `None` when nobody does or the lease expired.
    pub owner: Option<String>,
    /// `kafka_offsets.next_offset`, when one was stored.
    pub stored_offset: Option<i64>,
}

/// A live instance (its heartbeat has not expired) and the partitions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMember {
    /// `INSTANCE_ID`.
    pub instance: String,
    /// Its partitions, sorted.
    pub partitions: Vec<i32>,
}

/// A recent reject, as the status page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentReject {
    /// Its id in `rejected_records`, for `/rejects/{id}`.
    pub id: i64,
    /// The kind of rejection (`unclassified` for one recorded before kinds were).
    pub kind: String,
    /// Its source partition.
    pub partition: i32,
    /// Its source offset.
    pub offset: i64,
    /// When it was recorded.
    pub rejected_at: DateTime<Utc>,
}

/// A stored order, as the search page lists the latest ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestOrder {
    /// Its id.
    pub id: i64,
    /// Its `order_uid`.
    pub order_uid: String,
    /// When PostgreSQL stored it.
    pub stored_at: DateTime<Utc>,
}

/// The PostgreSQL part of the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseStatus {
    /// Every partition with a lease row, sorted.
    pub partitions: Vec<PartitionRow>,
    /// The live instances, sorted.
    pub fleet: Vec<FleetMember>,
    /// Rejects of the last hour per kind, most frequent first.
    pub rejects_by_kind: Vec<(String, i64)>,
    /// The latest rejects, newest first, at most [`LATEST_REJECTS`].
    pub latest_rejects: Vec<RecentReject>,
    /// Rejects not yet published to the dead-letter topic.
    pub pending_rejects: i64,
}

impl Database {
    /// The PostgreSQL part of the status page. Five small statements in one pipeline on one
    /// connection: each reads an index or a table of a few rows per partition, apart from
    /// the hour of rejects, which reads the rejects of that hour.
    pub async fn status(&self) -> Result<DatabaseStatus, DbError> {
        let client = self.pool.get().await?;
        let topic = &self.topic;
        let by_topic: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [topic];
        let latest_parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [topic, &LATEST_REJECTS];
        let (partitions, fleet, by_kind, latest, pending) = tokio::try_join!(
            client.query(
                "SELECT lease.kafka_partition, \
                        CASE WHEN lease.expires_at > now() THEN lease.owner END, \
                        offsets.next_offset \
                 FROM partition_leases AS lease \
                 LEFT JOIN kafka_offsets AS offsets \
                   ON offsets.kafka_topic = lease.kafka_topic \
                  AND offsets.kafka_partition = lease.kafka_partition \
                 WHERE lease.kafka_topic = $1 ORDER BY lease.kafka_partition",
                &by_topic,
            ),
            client.query(
                "SELECT instance.instance_id, \
                        coalesce(array_agg(lease.kafka_partition ORDER BY lease.kafka_partition) \
                                 FILTER (WHERE lease.kafka_partition IS NOT NULL), '{}') \
                 FROM orderstore_instances AS instance \
                 LEFT JOIN partition_leases AS lease \
                   ON lease.kafka_topic = instance.kafka_topic \
                  AND lease.owner = instance.instance_id AND lease.expires_at > now() \
                 WHERE instance.kafka_topic = $1 AND instance.expires_at > now() \
                 GROUP BY instance.instance_id ORDER BY instance.instance_id",
                &by_topic,
            ),
            client.query(
                "SELECT coalesce(reason_kind, 'unclassified'), count(*) FROM rejected_records \
                 WHERE kafka_topic = $1 AND rejected_at > now() - interval '1 hour' \
                 GROUP BY 1 ORDER BY 2 DESC, 1",
                &by_topic,
            ),
            client.query(
                "SELECT id, coalesce(reason_kind, 'unclassified'), kafka_partition, \
                        kafka_offset, rejected_at \
                 FROM rejected_records WHERE kafka_topic = $1 ORDER BY id DESC LIMIT $2",
                &latest_parameters,
            ),
            client.query_one(
                "SELECT count(*) FROM rejected_records \
                 WHERE kafka_topic = $1 AND published_at IS NULL",
                &by_topic,
            ),
        )?;
        Ok(DatabaseStatus {
            partitions: partitions
                .iter()
                .map(|row| {
                    Ok(PartitionRow {
                        partition: row.try_get(0)?,
                        owner: row.try_get(1)?,
                        stored_offset: row.try_get(2)?,
                    })
                })
                .collect::<Result<_, DbError>>()?,
            fleet: fleet
                .iter()
                .map(|row| {
                    Ok(FleetMember {
                        instance: row.try_get(0)?,
                        partitions: row.try_get(1)?,
                    })
                })
                .collect::<Result<_, DbError>>()?,
            rejects_by_kind: by_kind
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, DbError>>()?,
            latest_rejects: latest
                .iter()
                .map(|row| {
                    Ok(RecentReject {
                        id: row.try_get(0)?,
                        kind: row.try_get(1)?,
                        partition: row.try_get(2)?,
                        offset: row.try_get(3)?,
                        rejected_at: row.try_get(4)?,
                    })
                })
                .collect::<Result<_, DbError>>()?,
            pending_rejects: pending.try_get(0)?,
        })
    }

    /// The latest `limit` orders stored for this topic, newest first (by id, the primary key,
    /// so it reads `limit` index entries).
    pub async fn latest_orders(&self, limit: i64) -> Result<Vec<LatestOrder>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, order_uid, stored_at FROM orders \
                 WHERE kafka_topic = $1 ORDER BY id DESC LIMIT $2",
                &[&self.topic, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LatestOrder {
                    id: row.try_get(0)?,
                    order_uid: row.try_get(1)?,
                    stored_at: row.try_get(2)?,
                })
            })
            .collect()
    }
}
